"""Admission and the generation turn.

Two FIFO stages, both on the event loop:

- **Admission**: at most ``max_concurrent`` requests hold a slot at once, at most ``max_queue``
  more wait in line for one; a request that finds the line full gets :class:`QueueFull` at once
  (answered 429). A slot is held from admission to the end of the request's generation.
  :meth:`Scheduler.enter` takes the place in line without waiting, so a request can be admitted
  before it is tokenized and tokenize while it waits (see :mod:`vastllm.model_api.service`).
- **The turn**: one generation runs at a time. An admitted, tokenized request takes its turn
  (:meth:`Scheduler.take_turn`) and waits for the one running before it; turns go in the order
  requests asked for them. Several decode loops at once on one model only share the same cores
  (or GPU) and lose total throughput to the contention, so ``max_concurrent`` bounds how many
  requests are admitted (slots), never how many decode at once.

A request cancelled while waiting (for a slot or for its turn) leaves that line at once; whoever
ends a generation gives back the turn and then the slot (the worker thread, through the event
loop).
"""

from __future__ import annotations

import asyncio
from collections import deque


class QueueFull(Exception):
    """No slot free and ``max_queue`` requests already waiting."""


class _Gate:
    """``capacity`` places handed over in arrival order (not thread-safe: the loop only)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._waiters if not f.done())

    def enter(self, max_waiting: int | None = None) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.held < self.capacity and self.waiting == 0:
            self.held += 1
            fut.set_result(None)
            return fut
        if max_waiting is not None and self.waiting >= max_waiting:
            raise QueueFull
        self._waiters.append(fut)
        return fut

    def leave(self, fut: asyncio.Future[None]) -> None:
        if fut.done() and not fut.cancelled():
            self.release()  # the place was ours (perhaps handed over just as we gave up)
            return
        fut.cancel()
        if fut in self._waiters:
            self._waiters.remove(fut)

    def release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the place changes hands; ``held`` is unchanged
                return
        if self.held <= 0:
            raise RuntimeError("release() without a matching acquire()")
        self.held -= 1


class Scheduler:
    """FIFO slots and the single generation turn (not thread-safe: call from the loop only)."""

    def __init__(self, max_concurrent: int, max_queue: int) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be >= 1")
        if max_queue < 0:
            raise ValueError("max_queue must be >= 0")
        self.max_queue = max_queue
        self._slots = _Gate(max_concurrent)
        self._turn = _Gate(1)

    @property
    def max_concurrent(self) -> int:
        return self._slots.capacity

    @max_concurrent.setter
    def max_concurrent(self, value: int) -> None:
        if value < 1:
            raise ValueError("max_concurrent must be >= 1")
        self._slots.capacity = value

    @property
    def active(self) -> int:
        """Requests admitted (holding a slot): the one generating and those waiting to."""
        return self._slots.held

    @property
    def waiting(self) -> int:
        """Requests in line for a slot."""
        return self._slots.waiting

    @property
    def running(self) -> int:
        """Generations running now: 0 or 1."""
        return self._turn.held

    @property
    def waiting_turn(self) -> int:
        """Admitted requests, tokenized, waiting for the generation running to end."""
        return self._turn.waiting

    # -- admission ----------------------------------------------------------------------------

    def enter(self) -> asyncio.Future[None]:
        """Take a slot or a place in line, at once: the future is done when the slot is ours.
        Raise QueueFull when the line is full. Pair with :meth:`leave` if the slot is never used.
        """
        return self._slots.enter(self.max_queue)

    def leave(self, fut: asyncio.Future[None]) -> None:
        """Give up what :meth:`enter` returned: the place in line, or the slot if it came."""
        self._slots.leave(fut)

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
        self._slots.release()

    # -- the generation turn ------------------------------------------------------------------

    def take_turn(self) -> asyncio.Future[None]:
        """Ask for the turn to generate (holding a slot): the future is done when it is ours.
        Pair with :meth:`leave_turn` if the turn is never used, :meth:`end_turn` once used."""
        return self._turn.enter()

    def leave_turn(self, fut: asyncio.Future[None]) -> None:
        """Give up what :meth:`take_turn` returned: the place in line, or the turn if it came."""
        self._turn.leave(fut)

    def end_turn(self) -> None:
        """The generation ended: the next in line generates."""
        self._turn.release()
