"""Operational routes: ``GET|HEAD /``, ``GET /health``, ``GET /metrics`` (no API key needed)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from vastllm.proxy import http_io, metrics
from vastllm.proxy.settings import without_credentials
from vastllm.proxy.state import ProxyState, state_of
from vastllm.proxy.upstreams import residency
from vastllm.proxy.upstreams.ollama import OllamaClient
from vastllm.proxy.upstreams.openai import OpenAIClient
from vastllm.seed_health import seed_fields

PATHS = frozenset({"/", "/health", "/metrics"})

UNHEALTHY = "not asked: the upstream failed its health check"


async def root(request: web.Request) -> web.Response:
    return web.Response(text="vastllm proxy is running\n")


async def _redis(st: ProxyState) -> str:
    if st.cache is None:
        return "disabled"
    return "ok" if await st.cache.ping() else "down"


async def _snapshots(st: ProxyState) -> dict[str, residency.Snapshot]:
    """``/api/ps`` of every healthy Ollama upstream (cached and time-boxed by the probe)."""
    asked = [
        u.client for u in st.router.upstreams if u.healthy and isinstance(u.client, OllamaClient)
    ]
    snaps = await asyncio.gather(*(st.residency.snapshot(c) for c in asked))
    return {c.name: s for c, s in zip(asked, snaps, strict=True)}


def _seed(st: ProxyState, snaps: dict[str, residency.Snapshot], healthy: bool) -> dict[str, Any]:
    """The first seed's fields: the GPU figures of the first healthy OpenAI-compatible upstream
    that reports them (the model API's /health), else the VRAM the models of the Ollama upstreams
    take (``size_vram`` in /api/ps; no GPU name or total there); null when unknown."""
    for u in st.router.upstreams:
        if u.healthy and isinstance(u.client, OpenAIClient) and u.client.gpu is not None:
            return {"healthy": healthy, **u.client.gpu}
    used = [sum(m.size_vram for m in s.models) for s in snaps.values() if not s.error]
    return seed_fields(
        healthy=healthy, gpu=None, vram_used=sum(used) if used else None, vram_total=None
    )


async def health(request: web.Request) -> web.Response:
    """Proxy ``ok`` or ``degraded`` (Redis down, an upstream failing its health check, or the
    active model not wholly in an Ollama upstream's VRAM), with the reasons; always HTTP 200.
    ``healthy`` (``ok``), ``gpu``, ``vram_used``, ``vram_total``: the first seed's fields;
    ``wake``: the wake on request's state (:meth:`vastllm.proxy.wake.Waker.status`)."""
    st = state_of(request)
    redis, snaps = await asyncio.gather(_redis(st), _snapshots(st))
    active = st.catalog.active()
    allow = st.settings.allow_cpu_offload
    reasons: list[str] = []
    if redis == "down":
        reasons.append("redis is down: answering without the cache")
    upstreams: list[dict[str, Any]] = []
    for u in st.router.upstreams:
        entry: dict[str, Any] = {
            "name": u.name,
            "kind": u.client.kind,
            "base_url": without_credentials(u.client.base_url),
            "healthy": u.healthy,
            "paid": u.client.paid,
            "priority": u.client.priority,
            "outstanding": u.outstanding,
            "last_error": u.last_error or None,
            "residency": None,
        }
        if not u.healthy:
            reasons.append(f"upstream {u.name} is unhealthy: {u.last_error or 'no answer'}")
        if isinstance(u.client, OllamaClient):
            snap = snaps.get(u.name)
            if snap is None:
                entry["residency"] = residency.not_checked(UNHEALTHY)
            else:
                entry["residency"], reason = residency.assess(u.name, snap, active, allow)
                if reason is not None:
                    reasons.append(reason)
        upstreams.append(entry)
    body: dict[str, Any] = {
        "status": "degraded" if reasons else "ok",
        **_seed(st, snaps, healthy=not reasons),
        "reasons": reasons,
        "redis": redis,
        "cache_mode": st.settings.cache_mode,
        "allow_cpu_offload": allow,
        "worker": st.worker,
        "workers": st.settings.workers,
        "upstreams": upstreams,
        # this worker's view: Redis holds the count of all workers when the cache has it
        "paid_today": {"sent": st.router.budget.spent, "per_day": st.router.budget.per_day},
        # wake on request (wake_command): null when off
        "wake": None if st.router.wake is None else st.router.wake.status(),
        "active_model": None
        if active is None
        else {
            "name": active.name,
            "engine": active.engine,
            "context_length": active.context_length,
        },
    }
    return http_io.json_response(orjson.dumps(body))


async def metrics_text(request: web.Request) -> web.Response:
    st = state_of(request)
    redis_up = None if st.cache is None else bool(st.cache.up)
    snaps = await _snapshots(st)
    vram = [
        metrics.ModelVramGauge(name, m.name, m.vram_fraction)
        for name, snap in sorted(snaps.items())
        for m in snap.models
    ]
    has_ollama = any(isinstance(u.client, OllamaClient) for u in st.router.upstreams)
    counters, gauges = st.metrics, st.router.gauges()
    if st.worker_metrics is not None:
        counters, gauges = st.worker_metrics.merged()
    body = counters.render(gauges, redis_up, vram if has_ollama else None)
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", root)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics_text)
