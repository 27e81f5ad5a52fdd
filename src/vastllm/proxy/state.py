"""Everything a request handler needs, built once per process at startup."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from vastllm.proxy.auth import ApiKeys
from vastllm.proxy.cache.store import ResponseCache
from vastllm.proxy.guard import Guard
from vastllm.proxy.metrics import Metrics
from vastllm.proxy.models import ModelCatalog
from vastllm.proxy.service import ChatService
from vastllm.proxy.settings import ProxySettings
from vastllm.proxy.upstreams.residency import ResidencyProbe
from vastllm.proxy.upstreams.router import Router
from vastllm.proxy.worker_metrics import WorkerMetrics


@dataclass(slots=True)
class ProxyState:
    settings: ProxySettings
    catalog: ModelCatalog
    router: Router
    cache: ResponseCache | None
    metrics: Metrics
    service: ChatService
    keys: ApiKeys
    residency: ResidencyProbe
    guard: Guard
    worker: int = 0  # index of this worker process (0 when there is one)
    worker_metrics: WorkerMetrics | None = None  # set when several workers share the port


STATE = web.AppKey("vastllm_proxy_state", ProxyState)


def state_of(request: web.Request) -> ProxyState:
    return request.app[STATE]
