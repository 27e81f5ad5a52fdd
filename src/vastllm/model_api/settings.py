"""Settings of the model API: environment (``VASTLLM_MODEL_API_*``) over an optional config file.

Precedence, highest first: keyword arguments, environment variables, the file named by
``VASTLLM_MODEL_API_CONFIG`` (JSON when it ends in ``.json``, YAML otherwise), defaults.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ENV_PREFIX = "VASTLLM_MODEL_API_"
CONFIG_ENV = f"{ENV_PREFIX}CONFIG"

Dtype = Literal["auto", "float16", "bfloat16", "float32"]
Device = Literal["auto", "cpu", "cuda"]


class ConfigFileError(ValueError):
    """The config file named by VASTLLM_MODEL_API_CONFIG cannot be read or parsed."""


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a JSON or YAML mapping; raise ConfigFileError with the path on any problem."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigFileError(f"cannot read config file {path}: {e.strerror}") from e
    data: object
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as e:
            raise ConfigFileError(f"cannot parse config file {path}: {e}") from e
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigFileError(f"cannot parse config file {path}: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigFileError(f"config file {path} must hold a mapping, got {type(data).__name__}")
    return data


class ConfigFileSource(PydanticBaseSettingsSource):
    """Settings source reading the file named by VASTLLM_MODEL_API_CONFIG, when set."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self._data = read_config_file(path) if path is not None else {}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


class ModelApiSettings(BaseSettings):
    """Everything the model API server can be told. Field docs are the reference."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    model_path: Path = Field(description="Local directory with config.json, weights, tokenizer.")
    model_id: str | None = Field(
        default=None, description="Served model name; default: the model directory's name."
    )
    host: str = Field(default="127.0.0.1", description="Listen address (loopback by default).")
    port: int = Field(default=8081, ge=1, le=65535)
    dtype: Dtype = Field(
        default="auto",
        description="auto: bf16 on GPUs that support it else fp16; on CPU bf16 if it works "
        "else fp32.",
    )
    device: Device = Field(default="auto", description="auto: cuda when available, else cpu.")
    cpu_threads: int | None = Field(
        default=None,
        ge=1,
        description="torch intra-op threads (torch.set_num_threads); default: torch's choice. "
        "1 is much faster on a CPU shared with other busy processes.",
    )
    max_concurrent: int | None = Field(
        default=None, ge=1, description="Generations at once; default 1 on CPU, 2 on GPU."
    )
    max_queue: int = Field(
        default=16, ge=0, description="Requests waiting for a slot; 429 beyond that."
    )
    max_new_tokens_default: int = Field(
        default=512, ge=1, description="max_tokens when a request gives none."
    )
    context_length: int | None = Field(
        default=None, ge=1, description="Override of the model's context window (tokens)."
    )
    temperature_default: float = Field(
        default=1.0, ge=0.0, le=2.0, description="Temperature when a request gives none."
    )
    retry_after_s: int = Field(default=1, ge=1, description="Retry-After sent with 429.")
    loading_retry_after_s: int = Field(
        default=5, ge=1, description="Retry-After sent with 503 while the model loads."
    )
    shutdown_grace_s: float = Field(
        default=5.0, ge=0.0, description="How long running requests may finish on shutdown."
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    @field_validator("model_path", mode="before")
    @classmethod
    def _non_empty(cls, v: object) -> object:
        if isinstance(v, str) and not v.strip():
            raise ValueError("must be a directory path, not empty")
        return v

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, v: object) -> object:
        return v.lower() if isinstance(v, str) else v

    @property
    def served_model_id(self) -> str:
        return self.model_id or self.model_path.resolve().name

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        raw = os.environ.get(CONFIG_ENV)
        path = Path(raw) if raw else None
        return (init_settings, env_settings, ConfigFileSource(settings_cls, path))
