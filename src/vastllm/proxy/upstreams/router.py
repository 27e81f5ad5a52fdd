"""Upstream pool: background health checks, routing by priority and load, failover, the paid
last resort.

A request goes to an upstream of its engine (the wire protocol the active model is served over:
``ollama``, ``openai`` or ``anthropic``; an upstream with a ``model`` of its own serves any):

1. of the **ready** ones (healthy, below their ``max_outstanding``), the local ones of the lowest
   ``priority``, the one with the fewest requests in flight (ties rotate);
2. when no local upstream is ready, a **paid** one (``paid: true``: Anthropic's or OpenAI's API),
   in the same order, while the day's budget of paid requests lasts
   (:mod:`vastllm.proxy.upstreams.paid`);
3. when none is ready, a local one anyway (a health check can be stale), never a paid one.

When none of the local upstreams the request could use is reachable and ``wake_command`` is set,
the request waits for them to be woken (:mod:`vastllm.proxy.wake`), then is routed again; a wake
that fails or takes longer than ``wake_wait`` is a 529 with ``retry-after``. A paid upstream that
answers meanwhile does not wait: the wake starts, and the paid one answers.

If the upstream cannot be reached, or answers 429 or a 5xx (503, 529: busy), before any part of
the answer was passed on, the next one is tried; once an item went out, a failure is the
client's to see. The same holds for pass-through answers (:meth:`Router.raw`), whose items are
bytes. Which upstream answered is kept in a :class:`Served` (the ``x-vastllm-upstream`` header).
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

from vastllm.proxy import background, errors
from vastllm.proxy.anthropic import passthrough
from vastllm.proxy.anthropic.passthrough import RawRequest
from vastllm.proxy.flights import Served
from vastllm.proxy.metrics import Metrics, UpstreamGauge
from vastllm.proxy.neutral import ChatRequest, Event, Finish, ModelTarget
from vastllm.proxy.settings import ProxySettings, UpstreamSettings
from vastllm.proxy.upstreams.affinity import Affinity, conversation_key
from vastllm.proxy.upstreams.anthropic import AnthropicClient
from vastllm.proxy.upstreams.base import Failover, UpstreamClient
from vastllm.proxy.upstreams.ollama import OllamaClient
from vastllm.proxy.upstreams.openai import OpenAIClient
from vastllm.proxy.upstreams.paid import Counter, PaidBudget
from vastllm.proxy.wake import Waker

log = logging.getLogger(__name__)
T = TypeVar("T")


class Upstream:
    __slots__ = ("cfg", "client", "healthy", "last_error", "outstanding")

    def __init__(self, cfg: UpstreamSettings, client: UpstreamClient) -> None:
        self.cfg = cfg  # what it was built from: a reload keeps it when this is unchanged
        self.client = client
        self.healthy = True  # optimistic until the first check says otherwise
        self.outstanding = 0
        self.last_error = ""

    @property
    def name(self) -> str:
        return self.client.name

    @property
    def ready(self) -> bool:
        """Healthy and below its ``max_outstanding``."""
        limit = self.client.max_outstanding
        return self.healthy and not (limit and self.outstanding >= limit)

    @property
    def rank(self) -> tuple[bool, int]:
        return self.client.paid, self.client.priority


class Router:
    def __init__(
        self,
        settings: ProxySettings,
        session: aiohttp.ClientSession,
        metrics: Metrics,
        paid_counter: Counter | None = None,
    ) -> None:
        self._session = session
        self._keep_alive = settings.ollama_keep_alive
        self.upstreams: list[Upstream] = [self._upstream(cfg) for cfg in settings.upstreams]
        self._affinity = Affinity()
        self._metrics = metrics
        self.budget = PaidBudget(settings.paid_requests_per_day, settings.workers, paid_counter)
        self._interval = settings.health_interval
        self._affinity_slack = settings.affinity_max_imbalance
        self._rr = itertools.count()
        self._task: asyncio.Task[None] | None = None
        # wake on request: None unless wake_command is set
        self.wake = Waker(settings, self.check_all) if settings.wake_command else None

    def _upstream(self, cfg: UpstreamSettings) -> Upstream:
        client: UpstreamClient
        if cfg.kind == "ollama":
            client = OllamaClient(cfg, self._session, self._keep_alive)
        elif cfg.kind == "anthropic":
            client = AnthropicClient(cfg, self._session)
        else:
            client = OpenAIClient(cfg, self._session)
        return Upstream(cfg, client)

    def reload(self, upstreams: list[UpstreamSettings]) -> tuple[list[str], list[str]]:
        """Serve ``upstreams`` from now on: an unchanged one keeps its state (health, requests
        in flight), a changed or new one starts fresh, a removed one is dropped; requests in
        flight finish where they are. Returns (added or changed, removed) names."""
        old = {u.name: u for u in self.upstreams}
        kept: list[Upstream] = []
        changed: list[str] = []
        for cfg in upstreams:
            up = old.get(cfg.name)
            if up is not None and up.cfg == cfg:  # keys too: SecretStr compares its value
                kept.append(up)
            else:
                kept.append(self._upstream(cfg))
                changed.append(cfg.name)
        names = {cfg.name for cfg in upstreams}
        removed = [name for name in old if name not in names]
        for name in removed + changed:
            self._affinity.forget(name)
        self.upstreams = kept
        if changed and self.wake is not None:
            self.wake.changed()  # a new upstream is healthy until checked: waiters try it
        return changed, removed

    # -- health -------------------------------------------------------------------------------
    async def check_all(self) -> None:
        checked = list(self.upstreams)  # a reload during the checks does not mix them up
        results = await asyncio.gather(*(u.client.health() for u in checked))
        flipped = False
        for up, ok in zip(checked, results, strict=True):
            if ok != up.healthy:
                log.warning("upstream %s is now %s", up.name, "healthy" if ok else "unhealthy")
                flipped = True
            up.healthy = ok
            if ok:
                up.last_error = ""
            elif not up.last_error:
                up.last_error = "health check failed"
        if flipped and self.wake is not None:
            self.wake.changed()

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
        await background.cancel(self._task)
        if self.wake is not None:
            await self.wake.stop()

    def gauges(self) -> list[UpstreamGauge]:
        return [UpstreamGauge(u.name, u.healthy, u.outstanding) for u in self.upstreams]

    def outstanding(self) -> int:
        return sum(u.outstanding for u in self.upstreams)

    # -- routing ------------------------------------------------------------------------------
    def _pick(
        self,
        engine: str | None,
        tried: set[str],
        *,
        messages: bool = False,
        prompt: int = 0,
        paid: bool = True,
        prefer: str | None = None,
    ) -> Upstream | None:
        """The next upstream to try, in the order of the module docstring (``paid``: whether a
        paid one may be chosen; ``prefer``: the conversation's upstream, taken when it is ready,
        ranks with the best of the ready ones and has at most ``affinity_max_imbalance`` more
        requests in flight than the least busy of them)."""
        pool = [
            u
            for u in self.upstreams
            if u.name not in tried
            and (engine is None or u.client.kind == engine or u.client.model is not None)
            and (not messages or self._takes(u, prompt))
        ]
        ready = [u for u in pool if u.ready and (paid or not u.client.paid)]
        if prefer is not None and ready:
            best = min(u.rank for u in ready)
            low = min(u.outstanding for u in ready if u.rank == best)
            for u in ready:
                if u.name == prefer and u.rank == best:
                    if u.outstanding <= low + self._affinity_slack:
                        return u
                    break
        return self._least_busy(ready or [u for u in pool if not u.client.paid])

    def _pool(self, engine: str | None, messages: bool, prompt: int) -> list[Upstream]:
        """The upstreams that can take a request for ``engine`` (speaking the Messages API and
        holding a ``prompt``-token prompt with ``messages``)."""
        return [
            u
            for u in self.upstreams
            if (engine is None or u.client.kind == engine or u.client.model is not None)
            and (not messages or self._takes(u, prompt))
        ]

    def _local_up(self, engine: str | None, messages: bool, prompt: int) -> bool | None:
        """Whether a local upstream that can take the request is healthy; None: there is none."""
        local = [u for u in self._pool(engine, messages, prompt) if not u.client.paid]
        return any(u.healthy for u in local) if local else None

    def _least_busy(self, pool: list[Upstream]) -> Upstream | None:
        """Of the best-ranked (local first, then by priority), the one with the fewest requests
        in flight; ties rotate."""
        if not pool:
            return None
        rank = min(u.rank for u in pool)
        tier = [u for u in pool if u.rank == rank]
        low = min(u.outstanding for u in tier)
        best = [u for u in tier if u.outstanding == low]
        return best[next(self._rr) % len(best)]

    async def events(
        self, req: ChatRequest, served: Served | None = None
    ) -> AsyncGenerator[Event, None]:
        """The answer from the best upstream, failing over while nothing was passed on."""
        engine = req.target.engine if req.target is not None else None
        call = self._answer(
            engine, lambda c: c.events(req), served=served, conversation=self._conversation(req)
        )
        async with contextlib.aclosing(call) as answer:
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
            if u.client.kind == target.engine and not u.client.paid and self._takes(u, prompt)
        ]
        return max(rooms) if rooms else None

    async def raw(
        self, req: ChatRequest, raw: RawRequest, served: Served | None = None
    ) -> AsyncGenerator[bytes, None]:
        """A pass-through answer's bytes from the best upstream that speaks Messages."""
        seen: list[bytes] = []
        engine = req.target.engine if req.target is not None else None
        call = self._answer(
            engine,
            lambda c: c.send_raw(raw),
            messages=True,
            prompt=req.prompt_tokens,
            served=served,
            conversation=self._conversation(req),
        )
        async with contextlib.aclosing(call) as answer:
            async for chunk in answer:
                seen.append(chunk)
                yield chunk
        self._metrics.tokens(*passthrough.usage(b"".join(seen), raw.stream))

    async def count_tokens(self, target: ModelTarget, raw: RawRequest) -> bytes | None:
        """A local upstream's own token count; None when none of them has the endpoint."""
        tried: set[str] = set()
        while (up := self._pick(target.engine, tried, messages=True, paid=False)) is not None:
            tried.add(up.name)
            try:
                counted = await up.client.count_tokens(raw)
            except Failover as f:
                up.last_error = f.error.message
                continue
            if counted is not None:
                return counted
        return None

    def _conversation(self, req: ChatRequest) -> str | None:
        """The conversation's key where there is a choice of upstream to keep it on: hashing the
        system prompt (tens of KB from Claude Code) buys nothing with one upstream."""
        return conversation_key(req) if len(self.upstreams) > 1 else None

    def _answered(self, conversation: str, prefer: str | None, up: Upstream) -> None:
        """``up`` answers a ``conversation`` last answered by ``prefer``: count and remember it
        (a paid upstream's answer is not remembered: the conversation returns home)."""
        self._metrics.affinity(
            "new" if prefer is None else "kept" if up.name == prefer else "moved"
        )
        if not up.client.paid:
            self._affinity.answered(conversation, up.name)

    def _answer(
        self,
        engine: str | None,
        call: Callable[[UpstreamClient], AsyncGenerator[T, None]],
        *,
        messages: bool = False,
        prompt: int = 0,
        served: Served | None = None,
        conversation: str | None = None,
    ) -> AsyncGenerator[T, None]:
        """``call`` on the best upstream for ``engine`` (of those that speak the Messages API
        with ``messages``; the ``conversation``'s own while it is ready), failing over while
        nothing was passed on; once an item went out, a failure is the client's to see. When
        no local upstream for it is reachable, a wake (when set) and a wait, then again."""

        def attempt() -> AsyncGenerator[T, None]:
            return self._attempt(
                engine,
                call,
                messages=messages,
                prompt=prompt,
                served=served,
                conversation=conversation,
            )

        if self.wake is None:  # no wrapper on the way of every item
            return attempt()
        return self._waking(self.wake, attempt, lambda: self._local_up(engine, messages, prompt))

    @staticmethod
    async def _waking(
        wake: Waker, attempt: Callable[[], AsyncGenerator[T, None]], up: Callable[[], bool | None]
    ) -> AsyncGenerator[T, None]:
        """``attempt()`` again after each wait for a wake (``up()``: whether a local upstream for
        the request is healthy, None when it has none), while nothing went out."""
        deadline: float | None = None
        if up() is False:  # a paid upstream may answer now: the hosts come back meanwhile
            wake.kick()
        while True:
            sent = False
            try:
                async with contextlib.aclosing(attempt()) as items:
                    async for item in items:
                        sent = True
                        yield item
                return
            except errors.Unavailable:
                if sent or up() is not False:
                    raise
            if deadline is None:
                deadline = wake.deadline()
            await wake.until_up(lambda: up() is True, deadline)

    async def _attempt(
        self,
        engine: str | None,
        call: Callable[[UpstreamClient], AsyncGenerator[T, None]],
        *,
        messages: bool,
        prompt: int,
        served: Served | None,
        conversation: str | None,
    ) -> AsyncGenerator[T, None]:
        """One round of :meth:`_answer`: each upstream at most once, in the module's order."""
        tried: set[str] = set()
        last: errors.ProxyError | None = None
        capped = False
        prefer = self._affinity.preferred(conversation)
        while (
            up := self._pick(
                engine, tried, messages=messages, prompt=prompt, paid=not capped, prefer=prefer
            )
        ) is not None:
            tried.add(up.name)
            if up.client.paid:
                if not await self.budget.take():
                    capped = True
                    continue
                self._metrics.paid_sent(up.name)
            sent = False
            ok = False
            up.outstanding += 1
            t0 = time.monotonic()
            try:
                async with contextlib.aclosing(call(up.client)) as items:
                    async for item in items:
                        if not sent:
                            if served is not None:
                                served.upstream, served.paid = up.name, up.client.paid
                            if conversation is not None:
                                self._answered(conversation, prefer, up)
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
        if capped:
            self._metrics.paid_refused += 1
            why = f" ({last.message})" if last is not None else ""
            raise errors.Overloaded(
                f"no local upstream could take the request{why}, and the paid fallback is not "
                f"used: {self.budget.reason}"
            )
        if last is None:
            raise errors.Unavailable(f"no upstream serves engine {engine!r}")
        if isinstance(last, errors.Unavailable):
            names = ", ".join(u.name for u in self.upstreams)
            raise errors.Unavailable(f"no upstream reachable ({names}): {last.message}")
        raise last
