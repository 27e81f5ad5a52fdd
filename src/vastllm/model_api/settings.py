"""Settings of the model API: environment (``VASTLLM_MODEL_API_*``) over an optional config file.

Precedence, highest first: keyword arguments, environment variables, the file named by
``VASTLLM_MODEL_API_CONFIG`` (JSON when it ends in ``.json``, YAML otherwise), defaults. List
settings in the environment are JSON or comma-separated (``VASTLLM_MODEL_API_ALLOWED_HOSTS=a,b``).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    SettingsConfigDict,
)

from vastllm.config_file import (
    AllowedHosts,
    CorsOrigins,
    FileBackedSettings,
    is_loopback_bind,
)
from vastllm.defaults import MODEL_API_PORT

ENV_PREFIX = "VASTLLM_MODEL_API_"
CONFIG_ENV = f"{ENV_PREFIX}CONFIG"

Dtype = Literal["auto", "float16", "bfloat16", "float32"]
Device = Literal["auto", "cpu", "cuda"]


class ModelApiSettings(FileBackedSettings):
    """Everything the model API server can be told. Field docs are the reference."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)
    config_env: ClassVar[str] = CONFIG_ENV

    model_path: Path = Field(description="Local directory with config.json, weights, tokenizer.")
    model_id: str | None = Field(
        default=None, description="Served model name; default: the model directory's name."
    )
    host: str = Field(default="127.0.0.1", description="Listen address (loopback by default).")
    port: int = Field(default=MODEL_API_PORT, ge=1, le=65535)
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
        "Generation runs one request at a time, so these are all the cores it uses. "
        "1 is much faster on a CPU shared with other busy processes.",
    )
    max_concurrent: int | None = Field(
        default=None,
        ge=1,
        description="Requests admitted at once (slots); default 1 on CPU, 2 on GPU. An admitted "
        "request holds its slot from admission to the end of its generation: tokenized, then "
        "waiting for its turn, then generating. Generation itself runs one request at a time "
        "(in the order they are ready) whatever this says: decode loops run side by side only "
        "share the cores or the GPU and lose total throughput.",
    )
    max_queue: int = Field(
        default=16,
        ge=0,
        description="Requests waiting for a slot (tokenized meanwhile) beyond the max_concurrent "
        "admitted; 429 beyond that.",
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
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted, in bytes; 413 beyond that.",
    )
    allowed_hosts: AllowedHosts = Field(
        default_factory=list,
        description="Host header values answered besides localhost, 127.0.0.1, [::1] (any port) "
        "and the listen address: 'name' (any port), 'name:port', or '*' for any; others get 421 "
        "(a web page that rebinds its DNS name to this machine sends its own name).",
    )
    cors_origins: CorsOrigins = Field(
        default_factory=list,
        description="Browser origins (scheme://host[:port]) allowed to call the API; they get "
        "CORS headers and their preflights answered. Any other Origin header gets 403.",
    )
    allow_public_without_keys: bool = Field(
        default=False,
        description="Allow listening on a non-loopback address; this server has no API keys, "
        "so anyone who reaches the port can use it.",
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

    @model_validator(mode="after")
    def _public_needs_consent(self) -> ModelApiSettings:
        if not self.allow_public_without_keys and not is_loopback_bind(self.host):
            raise ValueError(
                f"host {self.host!r} is not a loopback address and the model API has no API "
                "keys, so anyone who reaches the port could use it: listen on 127.0.0.1 and go "
                "through the proxy or the SSH tunnel, or set allow_public_without_keys: true "
                "(VASTLLM_MODEL_API_ALLOW_PUBLIC_WITHOUT_KEYS) to accept that"
            )
        return self

    @property
    def served_model_id(self) -> str:
        return self.model_id or self.model_path.resolve().name
