"""Scheduler: slots, FIFO hand-over, the bounded line, cancellation while waiting."""

from __future__ import annotations

import asyncio

import pytest

from vastllm.model_api.scheduler import QueueFull, Scheduler


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_slots_then_line_then_full() -> None:
    s = Scheduler(max_concurrent=2, max_queue=1)
    await s.acquire()
    await s.acquire()
    assert (s.active, s.waiting) == (2, 0)
    third = asyncio.create_task(s.acquire())
    await settle()
    assert (s.active, s.waiting) == (2, 1)
    with pytest.raises(QueueFull):
        await s.acquire()
    s.release()
    await third
    assert (s.active, s.waiting) == (2, 0)
    s.release()
    s.release()
    assert (s.active, s.waiting) == (0, 0)


async def test_zero_queue_refuses_at_once_when_busy() -> None:
    s = Scheduler(max_concurrent=1, max_queue=0)
    await s.acquire()
    with pytest.raises(QueueFull):
        await s.acquire()
    s.release()
    await s.acquire()  # free again


async def test_waiters_are_served_in_arrival_order() -> None:
    s = Scheduler(max_concurrent=1, max_queue=3)
    await s.acquire()
    order: list[int] = []

    async def wait(i: int) -> None:
        await s.acquire()
        order.append(i)

    tasks = [asyncio.create_task(wait(i)) for i in range(3)]
    await settle()
    for _ in range(3):
        s.release()
        await settle()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]
    assert s.active == 1


async def test_cancelled_waiter_leaves_the_line() -> None:
    s = Scheduler(max_concurrent=1, max_queue=1)
    await s.acquire()
    waiter = asyncio.create_task(s.acquire())
    await settle()
    assert s.waiting == 1
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert s.waiting == 0
    s.release()
    assert s.active == 0


async def test_slot_handed_to_a_waiter_that_was_just_cancelled_is_passed_on() -> None:
    s = Scheduler(max_concurrent=1, max_queue=2)
    await s.acquire()
    first = asyncio.create_task(s.acquire())
    second = asyncio.create_task(s.acquire())
    await settle()
    s.release()  # the slot goes to ``first``...
    first.cancel()  # ...which gives up before it runs
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.wait_for(second, timeout=1)
    assert (s.active, s.waiting) == (1, 0)


def test_release_without_acquire_is_a_bug() -> None:
    with pytest.raises(RuntimeError):
        Scheduler(1, 1).release()


async def test_enter_admits_at_once_and_leave_gives_back_the_place_or_the_slot() -> None:
    """What the service does: enter (a slot or a place in line, or QueueFull) before it
    tokenizes, and leave when the prompt is refused before the slot is used."""
    s = Scheduler(max_concurrent=1, max_queue=1)
    running = s.enter()
    assert running.done()  # a free slot: taken at once
    waiting = s.enter()
    assert not waiting.done()
    assert (s.active, s.waiting) == (1, 1)
    with pytest.raises(QueueFull):
        s.enter()  # refused without waiting
    s.leave(waiting)  # refused while in line: the place is free again
    assert (s.active, s.waiting) == (1, 0)
    again = s.enter()
    s.release()  # the running one ends: the slot goes to ``again``
    assert again.done()
    assert (s.active, s.waiting) == (1, 0)
    s.leave(again)  # refused after the slot came: the slot is freed
    assert (s.active, s.waiting) == (0, 0)
