"""Operational routes: ``GET|HEAD /``, ``GET /health``, ``GET /metrics`` (no API key needed)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from vastllm.proxy import http_io, metrics
from vastllm.proxy.state import state_of

PATHS = frozenset({"/", "/health", "/metrics"})


async def root(request: web.Request) -> web.Response:
    return web.Response(text="vastllm proxy is running\n")


async def health(request: web.Request) -> web.Response:
    """Proxy ``ok`` or ``degraded`` (Redis down, or an upstream failing its health check)."""
    st = state_of(request)
    redis = "disabled"
    if st.cache is not None:
        redis = "ok" if await st.cache.ping() else "down"
    upstreams = [
        {
            "name": u.name,
            "kind": u.client.kind,
            "base_url": u.client.base_url,
            "healthy": u.healthy,
            "outstanding": u.outstanding,
            "last_error": u.last_error or None,
        }
        for u in st.router.upstreams
    ]
    active = st.catalog.active()
    degraded = redis == "down" or not all(u.healthy for u in st.router.upstreams)
    body: dict[str, Any] = {
        "status": "degraded" if degraded else "ok",
        "redis": redis,
        "cache_mode": st.settings.cache_mode,
        "upstreams": upstreams,
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
    body = st.metrics.render(st.router.gauges(), redis_up)
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", root)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics_text)
