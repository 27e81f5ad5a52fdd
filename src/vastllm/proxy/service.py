"""The path every chat request takes once parsed: model resolution, context check, cache
lookup, coalescing, upstream call, cache store. Front ends only translate and render.

Two answers share that path: the translated one (neutral events from any upstream kind, cached
as one message and replayed in any dialect) and the pass-through one (``/v1/messages`` to an
Anthropic-kind upstream: the request as the client sent it, the upstream's bytes back unchanged,
cached as those bytes; see :mod:`vastllm.proxy.anthropic.passthrough`)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from vastllm.proxy import errors, tokens
from vastllm.proxy.anthropic.passthrough import RawRequest, complete_answer, raw_cache_key
from vastllm.proxy.cache.store import ResponseCache, cache_key
from vastllm.proxy.flights import Flight, Served
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
    flight: Flight[Event] | None = None
    coalesced: bool = False
    served: Served | None = None  # the flight's upstream, known once its first item is out

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


@dataclass(slots=True)
class RawExecution:
    """A pass-through answer: the upstream's bytes, from the cache (``body``) or a flight."""

    status: str
    body: bytes | None = None
    flight: Flight[bytes] | None = None
    coalesced: bool = False
    served: Served | None = None

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        if self.body is not None:
            yield self.body
            return
        assert self.flight is not None  # noqa: S101 - one of the two is always set
        async with contextlib.aclosing(self.flight.subscribe()) as sub:
            async for chunk in sub:
                yield chunk


T = TypeVar("T")


@dataclass(slots=True, frozen=True)
class _Plan(Generic[T]):
    """What differs between the translated and the pass-through path."""

    key: str
    source: Callable[[Served], AsyncIterator[T]]  # fills in the Served as it picks upstreams
    decode: Callable[[bytes], object]  # a cache value -> what a hit answers with
    encode: Callable[[list[T]], bytes | None]  # a finished flight -> a cache value, or None


async def _nothing(_: Flight[Any]) -> None:
    return None


def _flight(plan: _Plan[T], on_done: Callable[[Flight[T]], Awaitable[None]]) -> Flight[T]:
    served = Served()
    return Flight(plan.source(served), on_done, served)


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
        self._inflight: dict[str, Flight[Any]] = {}

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
        """The translated path: neutral events from any upstream kind, cached as a message."""
        plan: _Plan[Event] = _Plan(
            cache_key(req) if self._cacheable(req) else "",
            lambda served: self.router.events(req, served),
            ChatResult.from_json,
            lambda events: accumulate(events).to_json(),
        )
        status, hit, flight, coalesced = await self._run(plan, no_cache, no_store)
        result = hit if isinstance(hit, ChatResult) else None
        return Execution(status, result, flight, coalesced, self._served(flight))

    async def execute_raw(
        self, req: ChatRequest, raw: RawRequest, *, no_cache: bool = False, no_store: bool = False
    ) -> RawExecution:
        """The pass-through path: an Anthropic-kind upstream's own bytes, cached as they came."""
        plan: _Plan[bytes] = _Plan(
            raw_cache_key(raw) if self._cacheable(req) else "",
            lambda served: self.router.raw(req, raw, served),
            bytes,
            lambda chunks: complete_answer(b"".join(chunks), raw.stream),
        )
        status, hit, flight, coalesced = await self._run(plan, no_cache, no_store)
        body = hit if isinstance(hit, bytes) else None
        return RawExecution(status, body, flight, coalesced, self._served(flight))

    @staticmethod
    def _served(flight: Flight[Any] | None) -> Served | None:
        return None if flight is None else flight.served

    async def _run(
        self, plan: _Plan[T], no_cache: bool, no_store: bool
    ) -> tuple[str, object, Flight[T] | None, bool]:
        """(status, cache hit, flight, coalesced): the cache, then a flight in the air, then a
        new upstream call; one caller's cache directives never change what others get."""
        if not plan.key:
            self._check_capacity()
            self.metrics.cache["bypass"] += 1
            return "bypass", None, _flight(plan, _nothing), False
        assert self.cache is not None  # noqa: S101 - a key is only made when there is a cache
        key = plan.key
        if not no_cache:
            landed = self._landed(key, plan)
            if landed is not None:
                self.metrics.cache["hit"] += 1
                return "hit", landed, None, False
            flight = self._in_air(key)
            if flight is None:
                raw = await self.cache.get(key)
                if raw is not None:
                    try:
                        hit = plan.decode(raw)
                    except (ValueError, KeyError, TypeError):
                        log.warning("dropping an unreadable cache entry")
                    else:
                        self.metrics.cache["hit"] += 1
                        return "hit", hit, None, False
                flight = self._in_air(key)
            if flight is not None:
                self.metrics.cache["coalesced"] += 1
                self.metrics.cache["miss"] += 1
                return "miss", None, flight, True
        self._check_capacity()
        self.metrics.cache["bypass" if no_cache else "miss"] += 1
        new = _flight(plan, _Store(self, key, plan.encode, not no_store))
        if self._in_air(key) is None:
            self._inflight[key] = new
        return ("bypass" if no_cache else "miss"), None, new, False

    def _in_air(self, key: str) -> Flight[Any] | None:
        flight = self._inflight.get(key)
        return flight if flight is not None and not flight.done else None

    def _landed(self, key: str, plan: _Plan[T]) -> object | None:
        """The answer of a flight that finished but whose cache write is still under way (its
        subscribers already have it, so the next identical request may arrive first)."""
        flight = self._inflight.get(key)
        if flight is None or not flight.done or flight.error is not None:
            return None
        if flight.served is not None and flight.served.paid:
            return None  # a paid upstream's answer is not the cache's to give
        value = plan.encode(flight.events)
        return None if value is None else plan.decode(value)

    async def finish_flight(
        self,
        key: str,
        flight: Flight[T],
        encode: Callable[[list[T]], bytes | None],
        store: bool,
    ) -> None:
        try:
            paid = flight.served is not None and flight.served.paid
            if store and not paid and flight.error is None and self.cache is not None:
                value = encode(flight.events)
                if value is not None:
                    await self.cache.put(key, value)
        finally:
            if self._inflight.get(key) is flight:
                del self._inflight[key]


class _Store(Generic[T]):
    """Completion hook of a cacheable flight: store the final answer, then unregister."""

    __slots__ = ("_encode", "_key", "_service", "_store")

    def __init__(
        self,
        service: ChatService,
        key: str,
        encode: Callable[[list[T]], bytes | None],
        store: bool,
    ) -> None:
        self._service = service
        self._key = key
        self._encode = encode
        self._store = store

    async def __call__(self, flight: Flight[T]) -> None:
        await self._service.finish_flight(self._key, flight, self._encode, self._store)
