"""Upstream pool: background health checks, least-outstanding routing, failover.

A request goes to the healthy upstream with the fewest requests in flight (ties rotate). If that
upstream cannot be reached, or fails with a 5xx, before any part of the answer was passed on,
the next one is tried; once an event went out, a failure is the client's to see.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator

import aiohttp

from vastllm.proxy import errors
from vastllm.proxy.metrics import Metrics, UpstreamGauge
from vastllm.proxy.neutral import ChatRequest, Event, Finish
from vastllm.proxy.settings import ProxySettings
from vastllm.proxy.upstreams.base import Failover, UpstreamClient
from vastllm.proxy.upstreams.ollama import OllamaClient
from vastllm.proxy.upstreams.openai import OpenAIClient

log = logging.getLogger(__name__)


class Upstream:
    __slots__ = ("client", "healthy", "last_error", "outstanding")

    def __init__(self, client: UpstreamClient) -> None:
        self.client = client
        self.healthy = True  # optimistic until the first check says otherwise
        self.outstanding = 0
        self.last_error = ""

    @property
    def name(self) -> str:
        return self.client.name


class Router:
    def __init__(
        self, settings: ProxySettings, session: aiohttp.ClientSession, metrics: Metrics
    ) -> None:
        self.upstreams: list[Upstream] = []
        for cfg in settings.upstreams:
            client: UpstreamClient
            if cfg.kind == "ollama":
                client = OllamaClient(cfg, session, settings.ollama_keep_alive)
            else:
                client = OpenAIClient(cfg, session)
            self.upstreams.append(Upstream(client))
        self._metrics = metrics
        self._interval = settings.health_interval
        self._rr = itertools.count()
        self._task: asyncio.Task[None] | None = None

    # -- health -------------------------------------------------------------------------------
    async def check_all(self) -> None:
        results = await asyncio.gather(*(u.client.health() for u in self.upstreams))
        for up, ok in zip(self.upstreams, results, strict=True):
            if ok != up.healthy:
                log.warning("upstream %s is now %s", up.name, "healthy" if ok else "unhealthy")
            up.healthy = ok
            if ok:
                up.last_error = ""
            elif not up.last_error:
                up.last_error = "health check failed"

    async def _loop(self) -> None:
        while True:
            try:
                await self.check_all()
            except Exception:
                log.exception("health check round failed")
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="upstream-health")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def gauges(self) -> list[UpstreamGauge]:
        return [UpstreamGauge(u.name, u.healthy, u.outstanding) for u in self.upstreams]

    def outstanding(self) -> int:
        return sum(u.outstanding for u in self.upstreams)

    # -- routing ------------------------------------------------------------------------------
    def _pick(self, engine: str | None, tried: set[str]) -> Upstream | None:
        pool = [
            u
            for u in self.upstreams
            if u.name not in tried and (engine is None or u.client.kind == engine)
        ]
        if not pool:
            return None
        healthy = [u for u in pool if u.healthy] or pool
        low = min(u.outstanding for u in healthy)
        best = [u for u in healthy if u.outstanding == low]
        return best[next(self._rr) % len(best)]

    async def events(self, req: ChatRequest) -> AsyncIterator[Event]:
        """The answer from the best upstream, failing over while nothing was passed on."""
        engine = req.target.engine if req.target is not None else None
        tried: set[str] = set()
        last: errors.ProxyError | None = None
        while (up := self._pick(engine, tried)) is not None:
            tried.add(up.name)
            sent = False
            ok = False
            up.outstanding += 1
            t0 = time.monotonic()
            try:
                async for ev in up.client.events(req):
                    sent = True
                    if isinstance(ev, Finish):
                        self._metrics.tokens(ev.input_tokens, ev.output_tokens)
                    yield ev
                ok = True
                return
            except (GeneratorExit, asyncio.CancelledError):
                ok = True  # the client went away: not the upstream's fault
                raise
            except Failover as f:
                if f.unreachable:
                    up.healthy = False
                up.last_error = f.error.message
                if sent:
                    raise f.error from f
                last = f.error
                log.warning("upstream %s failed, trying the next: %s", up.name, f.error.message)
            finally:
                up.outstanding -= 1
                self._metrics.upstream_done(up.name, time.monotonic() - t0, ok)
        if last is None:
            raise errors.Unavailable(f"no upstream serves engine {engine!r}")
        if isinstance(last, errors.Unavailable):
            names = ", ".join(u.name for u in self.upstreams)
            raise errors.Unavailable(f"no upstream reachable ({names}): {last.message}")
        raise last
