"""Proxy settings: environment variables ``VASTLLM_PROXY_*`` over an optional config file.

Precedence (highest first): explicit keyword arguments, environment variables, the config file
named by ``VASTLLM_PROXY_CONFIG`` (JSON, or YAML when PyYAML is installed), the defaults below.
Complex fields in the environment are JSON (``VASTLLM_PROXY_UPSTREAMS='[{"name": ...}]'``);
``VASTLLM_PROXY_API_KEYS`` may also be a comma-separated list.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from vastllm.config_file import ConfigFileSource
from vastllm.proxy.resp import parse_url

ENV_PREFIX = "VASTLLM_PROXY_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"

UpstreamKind = Literal["ollama", "openai"]
CacheMode = Literal["deterministic", "all", "off"]


class UpstreamSettings(BaseModel):
    """One model server the proxy forwards to."""

    name: str = Field(min_length=1)
    kind: UpstreamKind = "ollama"
    base_url: str = Field(min_length=1)
    api_key: SecretStr | None = None

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        return v.rstrip("/")


def _default_upstreams() -> list[UpstreamSettings]:
    return [UpstreamSettings(name="ollama", kind="ollama", base_url="http://127.0.0.1:11434")]


class ProxySettings(BaseSettings):
    """Every knob of the caching proxy, documented by its default."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8082, ge=0, le=65535)
    # processes serving the port together (SO_REUSEPORT); one event loop is one core, and with
    # many clients in flight a request waits for the others (see proxy/workers.py)
    workers: int = Field(default=1, ge=1, le=64)
    upstreams: list[UpstreamSettings] = Field(default_factory=_default_upstreams, min_length=1)
    # client model name (exact, or an fnmatch pattern) -> upstream model name; "@active" means
    # the active model (active_model_file, else default_model).
    aliases: dict[str, str] = Field(default_factory=lambda: {"claude-*": "@active"})
    default_model: str = ""
    # context window assumed for models the active model file does not describe
    context_length: int = Field(default=8192, ge=256)
    active_model_file: Path = Path("/etc/vastllm/active_model.json")
    # empty string disables the cache entirely
    redis_url: str = "redis://127.0.0.1:6379/0"
    cache_mode: CacheMode = "deterministic"
    cache_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    cache_max_entry_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    request_timeout: float = Field(default=600.0, gt=0)
    connect_timeout: float = Field(default=5.0, gt=0)
    health_interval: float = Field(default=5.0, gt=0)
    # requests in flight to upstreams at once; beyond it the proxy answers 529 (0 = no limit)
    max_outstanding: int = Field(default=0, ge=0)
    # Ollama keep_alive sent with each request (e.g. "-1" keeps the model loaded); None = server's
    ollama_keep_alive: str | None = None
    # Ollama keeps what does not fit in VRAM in system RAM and runs it on the CPU, silently and
    # many times slower: /health reports the active model in that state as degraded unless true
    allow_cpu_offload: bool = False
    # seconds /health and /metrics reuse an Ollama upstream's /api/ps answer (0 = ask every time)
    residency_cache_seconds: float = Field(default=3.0, ge=0)
    log_level: str = "WARNING"

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, v: object) -> object:
        if isinstance(v, str):
            s = v.strip()
            if s.startswith("["):
                return json.loads(s)
            return [k.strip() for k in s.split(",") if k.strip()]
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: str) -> str:
        if v:
            parse_url(v)  # a ValueError names what is wrong
        return v

    @model_validator(mode="after")
    def _workers_need_a_port(self) -> ProxySettings:
        if self.workers > 1 and self.port == 0:
            raise ValueError("workers > 1 share one port: set a port other than 0")
        return self

    @field_validator("upstreams")
    @classmethod
    def _unique_names(cls, v: list[UpstreamSettings]) -> list[UpstreamSettings]:
        names = [u.name for u in v]
        if len(set(names)) != len(names):
            raise ValueError(f"upstream names must be unique: {names}")
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, ConfigFileSource(settings_cls, CONFIG_ENV))
