"""The path every chat request takes once translated: model resolution, context check, cache
lookup, coalescing, upstream call, cache store. Front ends only translate and render."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from vastllm.proxy import errors, tokens
from vastllm.proxy.cache.store import ResponseCache, cache_key
from vastllm.proxy.flights import Flight
from vastllm.proxy.metrics import Metrics
from vastllm.proxy.models import ModelCatalog
from vastllm.proxy.neutral import ChatRequest, ChatResult, Event, accumulate
from vastllm.proxy.settings import ProxySettings
from vastllm.proxy.upstreams.router import Router

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Execution:
    """How one request is answered: from the cache (``result``) or from a flight."""

    status: str  # "hit" | "miss" | "bypass": the x-vastllm-cache header
    result: ChatResult | None = None
    flight: Flight | None = None
    coalesced: bool = False

    async def events(self) -> AsyncGenerator[Event, None]:
        if self.result is not None:
            for ev in self.result.events():
                yield ev
            return
        assert self.flight is not None  # noqa: S101 - one of the two is always set
        async with contextlib.aclosing(self.flight.subscribe()) as sub:
            async for ev in sub:
                yield ev

    async def final(self) -> ChatResult:
        if self.result is not None:
            return self.result
        return accumulate([ev async for ev in self.events()])


async def _nothing(_: Flight) -> None:
    return None


class ChatService:
    def __init__(
        self,
        settings: ProxySettings,
        catalog: ModelCatalog,
        router: Router,
        cache: ResponseCache | None,
        metrics: Metrics,
    ) -> None:
        self.catalog = catalog
        self.router = router
        self.cache = cache
        self.metrics = metrics
        self._mode = settings.cache_mode
        self._max_outstanding = settings.max_outstanding
        self._inflight: dict[str, Flight] = {}

    def prepare(self, req: ChatRequest) -> None:
        """Resolve the model, estimate the prompt, refuse overflows, clamp max_tokens."""
        target = self.catalog.resolve(req.model)
        req.target = target
        req.prompt_tokens = n = tokens.estimate(req)
        ctx = target.context_length
        if n >= ctx:
            raise errors.InvalidRequest(
                f"prompt is too long: {n} tokens > {ctx} maximum (the prompt's estimated "
                f"tokens exceed the {ctx}-token context of model '{target.name}')"
            )
        room = ctx - n
        req.num_predict = room if req.max_tokens is None else min(req.max_tokens, room)

    def _cacheable(self, req: ChatRequest) -> bool:
        if self.cache is None or self._mode == "off":
            return False
        return self._mode == "all" or req.deterministic()

    def _check_capacity(self) -> None:
        if self._max_outstanding and self.router.outstanding() >= self._max_outstanding:
            raise errors.Overloaded(
                f"the proxy already has {self._max_outstanding} requests in flight; retry shortly"
            )

    async def execute(
        self, req: ChatRequest, *, no_cache: bool = False, no_store: bool = False
    ) -> Execution:
        if not self._cacheable(req):
            self._check_capacity()
            self.metrics.cache["bypass"] += 1
            return Execution("bypass", flight=Flight(self.router.events(req), _nothing))
        assert self.cache is not None  # noqa: S101 - _cacheable checked it
        key = cache_key(req)
        if not no_cache:
            flight = self._inflight.get(key)
            if flight is None:
                raw = await self.cache.get(key)
                if raw is not None:
                    try:
                        result = ChatResult.from_json(raw)
                    except (ValueError, KeyError, TypeError):
                        log.warning("dropping an unreadable cache entry")
                    else:
                        self.metrics.cache["hit"] += 1
                        return Execution("hit", result=result)
                flight = self._inflight.get(key)
            if flight is not None:
                self.metrics.cache["coalesced"] += 1
                self.metrics.cache["miss"] += 1
                return Execution("miss", flight=flight, coalesced=True)
        self._check_capacity()
        self.metrics.cache["bypass" if no_cache else "miss"] += 1
        flight = Flight(self.router.events(req), self._storer(key, store=not no_store))
        self._inflight.setdefault(key, flight)
        return Execution("bypass" if no_cache else "miss", flight=flight)

    def _storer(self, key: str, *, store: bool) -> _Store:
        return _Store(self, key, store)

    async def finish_flight(self, key: str, flight: Flight, store: bool) -> None:
        try:
            if store and flight.error is None and self.cache is not None:
                await self.cache.put(key, accumulate(flight.events).to_json())
        finally:
            if self._inflight.get(key) is flight:
                del self._inflight[key]


class _Store:
    """Completion hook of a cacheable flight: store the final message, then unregister."""

    __slots__ = ("_key", "_service", "_store")

    def __init__(self, service: ChatService, key: str, store: bool) -> None:
        self._service = service
        self._key = key
        self._store = store

    async def __call__(self, flight: Flight) -> None:
        await self._service.finish_flight(self._key, flight, self._store)
