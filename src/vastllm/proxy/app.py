"""The aiohttp application: routes, one middleware (the guard, auth, error shapes, request
metrics) and the lifecycle of the shared upstream session, health checks and Redis client."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web

from vastllm.proxy import errors, http_io, ops
from vastllm.proxy.anthropic import render as anthropic_render
from vastllm.proxy.anthropic import routes as anthropic_routes
from vastllm.proxy.auth import ApiKeys
from vastllm.proxy.cache.store import ResponseCache
from vastllm.proxy.guard import Guard
from vastllm.proxy.metrics import Metrics
from vastllm.proxy.models import ModelCatalog
from vastllm.proxy.openai import render as openai_render
from vastllm.proxy.openai import routes as openai_routes
from vastllm.proxy.reload import ConfigWatcher
from vastllm.proxy.service import ChatService
from vastllm.proxy.settings import ProxySettings
from vastllm.proxy.state import STATE, ProxyState
from vastllm.proxy.upstreams.residency import ResidencyProbe
from vastllm.proxy.upstreams.router import Router
from vastllm.proxy.worker_metrics import WorkerMetrics
from vastllm.proxy.workers import WorkerRole

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _as_proxy_error(exc: web.HTTPException, request: web.Request) -> errors.ProxyError:
    if exc.status == 404:
        return errors.NotFound(f"no route for {request.method} {request.path}")
    if exc.status == 405:
        return errors.MethodNotAllowed(f"method {request.method} is not allowed on {request.path}")
    if exc.status == 413:
        return errors.RequestTooLarge("request body is too large")
    if exc.status < 500:
        return errors.InvalidRequest(exc.reason, status=exc.status)
    return errors.UpstreamFailed(exc.reason, status=exc.status)


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    st = request.app[STATE]
    path = request.path
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    resp: web.StreamResponse
    try:
        preflight = st.guard.check(request)
        if preflight is not None:
            resp = preflight
        else:
            if path not in ops.PATHS:
                st.keys.check(request.headers)
            resp = await handler(request)
    except errors.ProxyError as e:
        resp = _error(e, path)
    except web.HTTPException as e:
        resp = _error(_as_proxy_error(e, request), path)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, path)
        resp = _error(errors.UpstreamFailed("internal proxy error"), path)
    st.metrics.request(route, resp.status)
    return resp


def _error(err: errors.ProxyError, path: str) -> web.Response:
    headers = None if err.retry_after is None else {"retry-after": str(err.retry_after)}
    if path in openai_routes.PATHS:
        body, status = openai_render.error_body(err), err.status_for_openai()
    else:
        body, status = anthropic_render.error_body(err), err.status
    return http_io.json_response(body, status=status, headers=headers)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=300),
        timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=settings.connect_timeout, sock_read=settings.request_timeout
        ),
    )
    metrics = Metrics()
    cache = (
        ResponseCache(
            settings.redis_url,
            settings.cache_ttl_seconds,
            settings.cache_max_entry_bytes,
            password=settings.redis_password.get_secret_value(),
        )
        if settings.redis_url and settings.cache_mode != "off"
        else None
    )
    router = Router(settings, session, metrics, None if cache is None else cache.incr)
    catalog = ModelCatalog(settings)
    role = app.get(ROLE)
    shared = None if role is None else WorkerMetrics(role, metrics, router)
    app[STATE] = ProxyState(
        settings=settings,
        catalog=catalog,
        router=router,
        cache=cache,
        metrics=metrics,
        service=ChatService(settings, catalog, router, cache, metrics),
        keys=ApiKeys(settings.api_keys),
        guard=app[GUARD],
        residency=ResidencyProbe(settings.residency_cache_seconds),
        worker=0 if role is None else role.index,
        worker_metrics=shared,
    )
    router.start()
    watcher = ConfigWatcher(settings, router)
    watcher.start(settings.health_interval)
    if cache is not None:
        cache.start(settings.health_interval)
    if shared is not None:
        shared.start()
    try:
        yield
    finally:
        if shared is not None:
            await shared.stop()
        await watcher.stop()
        await router.stop()
        if cache is not None:
            await cache.close()
        await session.close()


SETTINGS = web.AppKey("vastllm_proxy_settings", ProxySettings)
ROLE = web.AppKey("vastllm_proxy_worker_role", WorkerRole)
GUARD = web.AppKey("vastllm_proxy_guard", Guard)


def build_app(settings: ProxySettings, role: WorkerRole | None = None) -> web.Application:
    # aiohttp refuses bodies over client_max_size; one byte of slack lets read_json name the limit
    app = web.Application(client_max_size=settings.max_body_bytes + 1, middlewares=[_middleware])
    app[SETTINGS] = settings
    app[GUARD] = guard = Guard(settings)
    if guard.cors:
        app.on_response_prepare.append(guard.add_cors_headers)
    if role is not None:
        app[ROLE] = role
    anthropic_routes.add_routes(app)
    openai_routes.add_routes(app)
    ops.add_routes(app)
    app.cleanup_ctx.append(_lifecycle)
    return app
