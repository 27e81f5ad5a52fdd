"""Upstream pool: background health checks, least-outstanding routing, failover.

A request goes to the healthy upstream of its engine (the wire protocol the active model is
served over: ``ollama``, ``openai`` or ``anthropic``) with the fewest requests in flight (ties
rotate). If that upstream cannot be reached, or fails with a 5xx, before any part of the answer
was passed on, the next one is tried; once an event went out, a failure is the client's to see.
The same holds for pass-through answers (:meth:`Router.raw`), whose items are bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncGenerator, Callable
from typing import TypeVar

import aiohttp

from vastllm.proxy import errors
from vastllm.proxy.anthropic import passthrough
from vastllm.proxy.anthropic.passthrough import RawRequest
from vastllm.proxy.metrics import Metrics, UpstreamGauge
from vastllm.proxy.neutral import ChatRequest, Event, Finish, ModelTarget
from vastllm.proxy.settings import ProxySettings
from vastllm.proxy.upstreams.anthropic import AnthropicClient
from vastllm.proxy.upstreams.base import Failover, UpstreamClient
from vastllm.proxy.upstreams.ollama import OllamaClient
from vastllm.proxy.upstreams.openai import OpenAIClient

log = logging.getLogger(__name__)
T = TypeVar("T")


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
            elif cfg.kind == "anthropic":
                client = AnthropicClient(cfg, session)
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
    def _pick(
        self, engine: str | None, tried: set[str], *, messages: bool = False, prompt: int = 0
    ) -> Upstream | None:
        pool = [
            u
            for u in self.upstreams
            if u.name not in tried
            and (engine is None or u.client.kind == engine)
            and (not messages or self._takes(u, prompt))
        ]
        if not pool:
            return None
        healthy = [u for u in pool if u.healthy] or pool
        low = min(u.outstanding for u in healthy)
        best = [u for u in healthy if u.outstanding == low]
        return best[next(self._rr) % len(best)]

    async def events(self, req: ChatRequest) -> AsyncGenerator[Event, None]:
        """The answer from the best upstream, failing over while nothing was passed on."""
        engine = req.target.engine if req.target is not None else None
        async with contextlib.aclosing(self._answer(engine, lambda c: c.events(req))) as answer:
            async for ev in answer:
                if isinstance(ev, Finish):
                    self._metrics.tokens(ev.input_tokens, ev.output_tokens)
                yield ev

    @staticmethod
    def _takes(u: Upstream, prompt: int) -> bool:
        """``u`` speaks Messages and its context holds a ``prompt``-token prompt."""
        limit = u.client.context_length
        return u.client.speaks_messages and (limit is None or limit > prompt)

    def passthrough_room(self, target: ModelTarget | None, prompt: int) -> int | None:
        """Tokens left for the answer when ``/v1/messages`` for ``target`` goes up untranslated:
        the most an upstream of its engine that speaks Messages and holds the prompt leaves
        (its ``context_length``, else the model's, minus the prompt). None: translate."""
        if target is None or target.engine is None:
            return None
        rooms = [
            (u.client.context_length or target.context_length) - prompt
            for u in self.upstreams
            if u.client.kind == target.engine and self._takes(u, prompt)
        ]
        return max(rooms) if rooms else None

    async def raw(self, req: ChatRequest, raw: RawRequest) -> AsyncGenerator[bytes, None]:
        """A pass-through answer's bytes from the best upstream that speaks Messages."""
        seen: list[bytes] = []
        engine = req.target.engine if req.target is not None else None
        call = self._answer(
            engine, lambda c: c.send_raw(raw), messages=True, prompt=req.prompt_tokens
        )
        async with contextlib.aclosing(call) as answer:
            async for chunk in answer:
                seen.append(chunk)
                yield chunk
        self._metrics.tokens(*passthrough.usage(b"".join(seen), raw.stream))

    async def count_tokens(self, target: ModelTarget, raw: RawRequest) -> bytes | None:
        """An upstream's own token count; None when none of them has the endpoint."""
        tried: set[str] = set()
        while (up := self._pick(target.engine, tried, messages=True)) is not None:
            tried.add(up.name)
            try:
                counted = await up.client.count_tokens(raw)
            except Failover as f:
                up.last_error = f.error.message
                continue
            if counted is not None:
                return counted
        return None

    async def _answer(
        self,
        engine: str | None,
        call: Callable[[UpstreamClient], AsyncGenerator[T, None]],
        *,
        messages: bool = False,
        prompt: int = 0,
    ) -> AsyncGenerator[T, None]:
        """``call`` on the best upstream for ``engine`` (of those that speak the Messages API
        with ``messages``), failing over while nothing was passed on; once an item went out, a
        failure is the client's to see."""
        tried: set[str] = set()
        last: errors.ProxyError | None = None
        while (up := self._pick(engine, tried, messages=messages, prompt=prompt)) is not None:
            tried.add(up.name)
            sent = False
            ok = False
            up.outstanding += 1
            t0 = time.monotonic()
            try:
                async with contextlib.aclosing(call(up.client)) as items:
                    async for item in items:
                        sent = True
                        yield item
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
