"""Admission control: ``max_concurrent`` generations at once, at most ``max_queue`` waiting.

Slots are handed over in arrival order. A request that finds the queue full gets
:class:`QueueFull` at once (answered 429); one cancelled while waiting leaves the queue; a slot is
released by whoever ends the generation (the worker thread, through the event loop).
:meth:`Scheduler.enter` takes the place in line without waiting, so a request can be admitted
before it is tokenized and tokenize while it waits (see :mod:`vastllm.model_api.service`).
"""

from __future__ import annotations

import asyncio
from collections import deque


class QueueFull(Exception):
    """No slot free and ``max_queue`` requests already waiting."""


class Scheduler:
    """FIFO slots for the event loop (not thread-safe: call from the loop only)."""

    def __init__(self, max_concurrent: int, max_queue: int) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be >= 1")
        if max_queue < 0:
            raise ValueError("max_queue must be >= 0")
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self._active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def active(self) -> int:
        return self._active

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._waiters if not f.done())

    def enter(self) -> asyncio.Future[None]:
        """Take a slot or a place in line, at once: the future is done when the slot is ours.
        Raise QueueFull when the line is full. Pair with :meth:`leave` if the slot is never used.
        """
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._active < self.max_concurrent and self.waiting == 0:
            self._active += 1
            fut.set_result(None)
            return fut
        if self.waiting >= self.max_queue:
            raise QueueFull
        self._waiters.append(fut)
        return fut

    def leave(self, fut: asyncio.Future[None]) -> None:
        """Give up what :meth:`enter` returned: the place in line, or the slot if it came."""
        if fut.done() and not fut.cancelled():
            self.release()  # the slot was ours (perhaps handed over just as we gave up)
            return
        fut.cancel()
        if fut in self._waiters:
            self._waiters.remove(fut)

    async def acquire(self) -> None:
        """Take a slot, waiting in line if needed; raise QueueFull when the line is full."""
        fut = self.enter()
        try:
            await fut
        except asyncio.CancelledError:
            self.leave(fut)
            raise

    def release(self) -> None:
        """Give the slot to the next waiter, or free it."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot changes hands; ``active`` is unchanged
                return
        if self._active <= 0:
            raise RuntimeError("release() without a matching acquire()")
        self._active -= 1
