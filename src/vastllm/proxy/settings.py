"""Proxy settings: environment variables ``VASTLLM_PROXY_*`` over an optional config file.

Precedence (highest first): explicit keyword arguments, environment variables, the config file
named by ``VASTLLM_PROXY_CONFIG`` (JSON, or YAML when PyYAML is installed), the defaults below.
Complex fields in the environment are JSON (``VASTLLM_PROXY_UPSTREAMS='[{"name": ...}]'``);
``VASTLLM_PROXY_API_KEYS``, ``..._ALLOWED_HOSTS`` and ``..._CORS_ORIGINS`` may also be
comma-separated lists.

Messages about a setting never quote its value (it may be a key or hold a password): load the
settings through :func:`vastllm.config_file.load_settings`, and keep validators' messages free
of the input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    NoDecode,
    SettingsConfigDict,
)

from vastllm.config_file import (
    AllowedHosts,
    CorsOrigins,
    FileBackedSettings,
    is_loopback_bind,
    split_list,
)
from vastllm.defaults import OLLAMA_PORT, PROXY_PORT, REDIS_PORT
from vastllm.proxy.cache.redis import parse_url

ENV_PREFIX = "VASTLLM_PROXY_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"

UpstreamKind = Literal["ollama", "openai", "anthropic"]
UpstreamAuth = Literal["bearer", "x-api-key", "both"]
CacheMode = Literal["deterministic", "all", "off"]


def without_credentials(url: str) -> str:
    """``url`` with any ``user:password@`` shown as ``***@``: for the startup line and /health."""
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return "(a URL that cannot be parsed)"
    if "@" not in netloc:
        return url
    return url.replace(netloc, "***@" + netloc.rpartition("@")[2], 1)


class UpstreamSettings(BaseModel):
    """One model server the proxy forwards to."""

    name: str = Field(min_length=1)
    kind: UpstreamKind = "ollama"
    base_url: str = Field(min_length=1)
    api_key: SecretStr | None = None
    # serves Anthropic's Messages API at /v1/messages, so /v1/messages passes through to it:
    # None = by kind (anthropic yes; ollama and openai no). Ollama has it from 0.14.0.
    messages: bool | None = None
    # the longest context this upstream serves a Messages request with (Ollama: its
    # OLLAMA_CONTEXT_LENGTH, as /v1/messages takes no per-request context); a prompt that needs
    # more goes the translated way, which asks for the model's context per request. None: the
    # model's own.
    context_length: int | None = Field(default=None, ge=256)
    # tried in this order (lowest first) among the upstreams of its kind of cost; ties go to the
    # one with the fewest requests in flight
    priority: int = 0
    # a paid API (Anthropic's or OpenAI's): used only when no local upstream can take the
    # request (every one unhealthy, at its max_outstanding, or answering 429/503/529), counted
    # against ProxySettings.paid_requests_per_day, named in the answer's x-vastllm-upstream
    # header, and never cached (the cache holds the answers of your own model)
    paid: bool = False
    # the model this upstream is asked for whatever the client named (a paid API's model, e.g.
    # "claude-sonnet-4-5"); such an upstream serves every model. None: the resolved model
    model: str | None = Field(default=None, min_length=1)
    # requests in flight to this upstream at once before it counts as saturated (0 = no limit)
    max_outstanding: int = Field(default=0, ge=0)
    # how api_key is sent: Authorization: Bearer (OpenAI, vLLM, Ollama), x-api-key (Anthropic's
    # API, which refuses a key sent as Bearer), or both. None: x-api-key for a paid anthropic
    # upstream, both for another anthropic one (vLLM takes Bearer), else bearer
    auth: UpstreamAuth | None = None

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        return v.rstrip("/")

    @model_validator(mode="after")
    def _paid_upstream(self) -> UpstreamSettings:
        if not self.paid:
            return self
        where = f"upstream {self.name!r}"
        if self.kind == "ollama":
            raise ValueError(f"{where}: a paid upstream is kind anthropic or openai")
        if self.api_key is None or not self.api_key.get_secret_value():
            raise ValueError(f"{where}: a paid upstream needs its api_key")
        if self.model is None:
            raise ValueError(f"{where}: a paid upstream needs the model to ask it for (model)")
        try:
            parts = urlsplit(self.base_url)
            host = parts.hostname or ""
        except ValueError:
            raise ValueError(f"{where}: base_url is not a URL") from None
        if parts.scheme != "https" and not is_loopback_bind(host):
            raise ValueError(f"{where}: a paid upstream's key only travels over https")
        return self

    @property
    def auth_header(self) -> UpstreamAuth:
        if self.auth is not None:
            return self.auth
        if self.kind == "anthropic":
            return "x-api-key" if self.paid else "both"
        return "bearer"


def _default_upstreams() -> list[UpstreamSettings]:
    return [
        UpstreamSettings(name="ollama", kind="ollama", base_url=f"http://127.0.0.1:{OLLAMA_PORT}")
    ]


class ProxySettings(FileBackedSettings):
    """Every knob of the caching proxy, documented by its default."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")
    config_env: ClassVar[str] = CONFIG_ENV

    host: str = "127.0.0.1"
    port: int = Field(default=PROXY_PORT, ge=0, le=65535)
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
    # the engine (wire protocol) assumed for such models: None = any upstream, translated; the
    # workstation gateway sets "anthropic", so every request passes through to the GPU hosts'
    # proxies, which know their models
    default_engine: UpstreamKind | None = None
    active_model_file: Path = Path("/etc/vastllm/active_model.json")
    # empty string disables the cache entirely
    redis_url: str = f"redis://127.0.0.1:{REDIS_PORT}/0"
    # the password the cache logs in to Redis with (AUTH), over any in redis_url; empty: the
    # URL's, if any. The llm_proxy role sets it from the redis role's password file through the
    # root-only environment (VASTLLM_PROXY_REDIS_PASSWORD), as it does the API keys
    redis_password: SecretStr = SecretStr("")
    cache_mode: CacheMode = "deterministic"
    cache_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    cache_max_entry_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    api_keys: Annotated[list[SecretStr], NoDecode, BeforeValidator(split_list)] = Field(
        default_factory=list
    )
    # Host header values answered besides localhost, 127.0.0.1, [::1] (any port) and the listen
    # address: "name" (any port), "name:port", or "*" for any. Others get 421: a web page that
    # rebinds its DNS name to this machine sends its own name (see proxy/guard.py).
    allowed_hosts: AllowedHosts = Field(default_factory=list)
    # browser origins allowed to call the proxy (scheme://host[:port]); they get CORS headers and
    # their preflights answered. A request with any other Origin header gets 403.
    cors_origins: CorsOrigins = Field(default_factory=list)
    # listening on a non-loopback address without api_keys is refused unless this is true
    allow_public_without_keys: bool = False
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    request_timeout: float = Field(default=600.0, gt=0)
    connect_timeout: float = Field(default=5.0, gt=0)
    health_interval: float = Field(default=5.0, gt=0)
    # a conversation stays on the upstream that answered it (its prefix cache) unless that one
    # has more than this many requests in flight beyond the least busy ready upstream: then it
    # moves there, so parallel requests of one conversation spread instead of queueing on one
    affinity_max_imbalance: int = Field(default=4, ge=0)
    # requests in flight to upstreams at once; beyond it the proxy answers 529 (0 = no limit)
    max_outstanding: int = Field(default=0, ge=0)
    # requests paid upstreams may take per UTC day, all of them and all workers together (kept
    # in Redis when the cache has one, else per worker: each gets its share); past it a request
    # no local upstream can take gets 529 with the reason. 0: paid upstreams are never used
    paid_requests_per_day: int = Field(default=200, ge=0)
    # Ollama keep_alive sent with each request (e.g. "-1" keeps the model loaded); None = server's
    ollama_keep_alive: str | None = None
    # Ollama keeps what does not fit in VRAM in system RAM and runs it on the CPU, silently and
    # many times slower: /health reports the active model in that state as degraded unless true
    allow_cpu_offload: bool = False
    # seconds /health and /metrics reuse an Ollama upstream's /api/ps answer (0 = ask every time)
    residency_cache_seconds: float = Field(default=3.0, ge=0)
    # wake on request (docs/cost.md): the argv (no shell) run when a request finds no local
    # upstream reachable, e.g. the workstation gateway's `vastllm wake` (the tunnel role sets it
    # from vastllm_wake_on_request). One runs at a time: requests that find no upstream while it
    # runs wait for it instead of starting another; once it ends the upstreams are checked at
    # once. Empty: off, such a request gets 503 at once
    wake_command: list[str] = Field(default_factory=list)
    # seconds a request waits for an upstream to come back once a wake runs; then it gets 529
    # overloaded_error (503 on OpenAI's routes) with retry-after, and so does every waiting
    # request as soon as the wake command fails. 120: a stopped instance started on its own
    # machine is back in one to three minutes, a moved one (new rental, the model fetched again)
    # takes far longer; a client gets no byte while it waits (proxies in between often give up
    # after 60-120 s, the SDKs after 600 s, leaving room for the answer itself), and both SDKs
    # retry a 529/503 after retry-after
    wake_wait: float = Field(default=120.0, gt=0)
    # the retry-after header (seconds) of that answer
    wake_retry_after: int = Field(default=30, ge=1)
    # seconds after a wake ends in which no new one starts: a wake can rent and provision (a
    # host that moved), and clients retry, so one that fails or brings no upstream back is not
    # run again at the pace of their retries. Meanwhile a request waits for what a successful
    # wake brought up, or gets that 529/503 at once after a failed one, its retry-after the
    # seconds left. 300: about one wake of a stopped instance; 0: the next request wakes again
    wake_cooldown: float = Field(default=300.0, ge=0)
    # a file of KEY=VALUE lines added to the wake command's environment, read at every wake (the
    # gateway's: the Vast.ai key and the proxy keys its tunnel play writes back), so no secret is
    # in argv or in the proxy's own environment; a value found in the command's output is
    # logged as ***. None: the proxy's environment only
    wake_env_file: Path | None = None
    log_level: str = "WARNING"

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: str) -> str:
        if v:
            parse_url(v)  # a ValueError names what is wrong, never the URL (it may hold a password)
        return v

    @model_validator(mode="after")
    def _workers_need_a_port(self) -> ProxySettings:
        if self.workers > 1 and self.port == 0:
            raise ValueError("workers > 1 share one port: set a port other than 0")
        return self

    @model_validator(mode="after")
    def _one_waker(self) -> ProxySettings:
        if self.wake_command and self.workers > 1:
            raise ValueError(
                "wake_command runs once per process: with workers > 1 each would start its own "
                "wake, so set workers: 1 (a gateway has one) or leave wake_command empty"
            )
        return self

    @model_validator(mode="after")
    def _public_needs_keys(self) -> ProxySettings:
        has_keys = any(k.get_secret_value() for k in self.api_keys)
        if not has_keys and not self.allow_public_without_keys and not is_loopback_bind(self.host):
            raise ValueError(
                f"host {self.host!r} is not a loopback address and api_keys is empty, so anyone "
                "who reaches the port could use the proxy: set api_keys (VASTLLM_PROXY_API_KEYS),"
                " listen on 127.0.0.1, or set allow_public_without_keys: true "
                "(VASTLLM_PROXY_ALLOW_PUBLIC_WITHOUT_KEYS) to accept that"
            )
        return self

    @field_validator("upstreams")
    @classmethod
    def _unique_names(cls, v: list[UpstreamSettings]) -> list[UpstreamSettings]:
        names = [u.name for u in v]
        if len(set(names)) != len(names):
            raise ValueError(f"upstream names must be unique: {names}")
        return v
