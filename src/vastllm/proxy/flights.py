"""One upstream call shared by every identical request that arrives while it runs.

A :class:`Flight` pumps the upstream's items (neutral events, or the raw byte chunks of a
pass-through answer) into a list in its own task; each client
subscribes and reads the list from the start, then waits for more. A client that joins late gets
the events so far at once and the rest live, so a streamed answer is coalesced too. When the last
subscriber leaves before the end, the upstream call is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from vastllm.proxy import errors

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(slots=True)
class Served:
    """The upstream that answers a flight: the router sets it before the first item goes out
    (the ``x-vastllm-upstream`` header; a paid upstream's answer is not cached)."""

    upstream: str = ""
    paid: bool = False


class Flight(Generic[T]):
    __slots__ = ("_changed", "done", "error", "events", "served", "subscribers", "task")

    def __init__(
        self,
        source: AsyncIterator[T],
        on_done: Callable[[Flight[T]], Awaitable[None]],
        served: Served | None = None,
    ) -> None:
        self.served = served  # which upstream answers, as the source records it
        self.events: list[T] = []
        self.done = False
        self.error: errors.ProxyError | None = None
        self.subscribers = 0
        self._changed = asyncio.Event()
        self.task = asyncio.create_task(self._pump(source, on_done))

    async def _pump(
        self, source: AsyncIterator[T], on_done: Callable[[Flight[T]], Awaitable[None]]
    ) -> None:
        try:
            async for ev in source:
                self.events.append(ev)
                self._wake()
        except errors.ProxyError as e:
            self.error = e
        except asyncio.CancelledError:
            self.error = errors.UpstreamFailed("request cancelled")
            raise
        except Exception as e:
            log.exception("upstream call failed unexpectedly")
            self.error = errors.UpstreamFailed(f"upstream call failed: {type(e).__name__}")
        finally:
            self.done = True
            self._wake()
            try:
                await on_done(self)
            except Exception:
                log.exception("flight completion hook failed")

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def subscribe(self) -> AsyncGenerator[T, None]:
        """All items from the first; raises the flight's error after the last one."""
        self.subscribers += 1
        i = 0
        try:
            while True:
                while i < len(self.events):
                    yield self.events[i]
                    i += 1
                if self.done:
                    if self.error is not None:
                        raise self.error
                    return
                await self._changed.wait()
        finally:
            self.subscribers -= 1
            if self.subscribers == 0 and not self.done:
                self.task.cancel()
