"""Where an Ollama upstream keeps its loaded models: all in VRAM, partly in system RAM, or none.

Ollama's ``GET /api/ps`` lists the loaded models with ``size`` (bytes the loaded model takes)
and ``size_vram`` (the part in GPU memory). When VRAM is short Ollama keeps the rest in system
RAM and runs those layers on the CPU, many times slower, and says so nowhere else. Each model
gets a state: ``gpu`` (``size_vram == size``), ``partial`` or ``cpu`` (``size_vram == 0``).

:class:`ResidencyProbe` asks each upstream at most once per ``residency_cache_seconds``, within
:data:`PS_TIMEOUT`, one call shared by everyone asking meanwhile, so ``/health`` and ``/metrics``
stay cheap. :func:`assess` turns a snapshot into the ``residency`` object of ``/health`` and, for
an active model that is not wholly in VRAM, the reason the proxy reports ``degraded`` (unless
``allow_cpu_offload``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Literal

from vastllm.cascade.candidates import ollama_name
from vastllm.proxy import errors
from vastllm.proxy.neutral import ModelTarget
from vastllm.proxy.upstreams.ollama import OllamaClient

Placement = Literal["gpu", "partial", "cpu"]

PS_TIMEOUT = 1.0  # seconds /api/ps may take before the snapshot records an error instead


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """One entry of ``/api/ps``."""

    name: str
    model: str
    size: int
    size_vram: int
    context_length: int | None
    expires_at: str | None

    @property
    def vram_fraction(self) -> float:
        return min(1.0, self.size_vram / self.size) if self.size > 0 else 0.0

    @property
    def state(self) -> Placement:
        if self.size_vram <= 0:
            return "cpu"
        return "gpu" if self.size_vram >= self.size else "partial"

    def matches(self, name: str) -> bool:
        wanted = ollama_name(name)
        return wanted in (ollama_name(self.name), ollama_name(self.model))

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "size": self.size,
            "size_vram": self.size_vram,
            "vram_fraction": round(self.vram_fraction, 4),
            "state": self.state,
            "context_length": self.context_length,
            "expires_at": self.expires_at,
        }


def _int(entry: dict[str, Any], key: str) -> int:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"'{key}' of a model must be a non-negative integer, got {value!r}")
    return value


def parse_ps(obj: object) -> tuple[LoadedModel, ...]:
    """The models of an ``/api/ps`` answer; :class:`ValueError` when its shape is not Ollama's."""
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    entries = obj.get("models")
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise ValueError("'models' must be a list")
    out: list[LoadedModel] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise ValueError("each model must be an object")
        name = entry.get("name") or entry.get("model")
        if not isinstance(name, str) or not name:
            raise ValueError("a model has no 'name'")
        model = entry.get("model")
        ctx = entry.get("context_length")
        expires = entry.get("expires_at")
        out.append(
            LoadedModel(
                name=name,
                model=model if isinstance(model, str) and model else name,
                size=_int(entry, "size"),
                size_vram=_int(entry, "size_vram"),
                context_length=ctx if isinstance(ctx, int) and not isinstance(ctx, bool) else None,
                expires_at=expires if isinstance(expires, str) else None,
            )
        )
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One ``/api/ps`` answer (or why there is none) and when it was taken (monotonic)."""

    models: tuple[LoadedModel, ...]
    error: str
    taken: float


class ResidencyProbe:
    """Cached, time-boxed, single-flight ``/api/ps`` per Ollama upstream."""

    def __init__(self, ttl: float, timeout: float = PS_TIMEOUT) -> None:
        self._ttl = ttl
        self._timeout = timeout
        self._snapshots: dict[str, Snapshot] = {}
        self._pending: dict[str, asyncio.Task[Snapshot]] = {}

    async def snapshot(self, client: OllamaClient) -> Snapshot:
        snap = self._snapshots.get(client.name)
        if snap is not None and time.monotonic() - snap.taken < self._ttl:
            return snap
        task = self._pending.get(client.name)
        if task is None:
            task = asyncio.create_task(self._take(client), name=f"api-ps-{client.name}")
            self._pending[client.name] = task
        # a /health caller that goes away must not cancel the call others are waiting for
        return await asyncio.shield(task)

    async def _take(self, client: OllamaClient) -> Snapshot:
        try:
            models = parse_ps(await client.running(self._timeout))
            snap = Snapshot(models, "", time.monotonic())
        except errors.ProxyError as e:
            snap = Snapshot((), e.message, time.monotonic())
        except ValueError as e:
            msg = f"upstream {client.name}: unexpected GET /api/ps answer: {e}"
            snap = Snapshot((), msg, time.monotonic())
        finally:
            self._pending.pop(client.name, None)
        self._snapshots[client.name] = snap
        return snap


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def offload_reason(upstream: str, m: LoadedModel) -> str:
    where = (
        "runs entirely on the CPU"
        if m.state == "cpu"
        else f"is only {m.vram_fraction:.0%} in VRAM, the rest runs on the CPU"
    )
    return (
        f"active model {m.name} on upstream {upstream} {where} ({_size(m.size_vram)} of "
        f"{_size(m.size)} in VRAM): free GPU memory or pick a smaller model, or accept it with "
        "VASTLLM_PROXY_ALLOW_CPU_OFFLOAD=true"
    )


def assess(
    upstream: str,
    snap: Snapshot,
    active: ModelTarget | None,
    allow_cpu_offload: bool,
) -> tuple[dict[str, Any], str | None]:
    """The ``residency`` object of one Ollama upstream in ``/health``, and the reason to report
    ``degraded`` (the active model loaded but not wholly in VRAM), or None."""
    body: dict[str, Any] = {
        "age_seconds": round(max(0.0, time.monotonic() - snap.taken), 3),
        "error": snap.error or None,
        "models": [m.as_json() for m in snap.models],
        "active_model": None,
    }
    if active is None or active.engine not in (None, "ollama"):
        return body, None
    if snap.error:
        body["active_model"] = {
            "name": active.name,
            "loaded": None,
            "state": None,
            "vram_fraction": None,
        }
        return body, None
    loaded = next((m for m in snap.models if m.matches(active.name)), None)
    body["active_model"] = {
        "name": active.name,
        "loaded": loaded is not None,
        "state": None if loaded is None else loaded.state,
        "vram_fraction": None if loaded is None else round(loaded.vram_fraction, 4),
    }
    if loaded is None or loaded.state == "gpu" or allow_cpu_offload:
        return body, None
    return body, offload_reason(upstream, loaded)


def not_checked(why: str) -> dict[str, Any]:
    """The ``residency`` object of an upstream that was not asked."""
    return {"age_seconds": None, "error": why, "models": [], "active_model": None}
