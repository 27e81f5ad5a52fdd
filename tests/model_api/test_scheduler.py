"""Scheduler: slots, FIFO hand-over, the bounded line, cancellation while waiting, and the
single generation turn."""

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


# -- the generation turn: one at a time, whatever max_concurrent admits ---------------------------


async def test_one_turn_at_a_time_for_all_the_admitted() -> None:
    s = Scheduler(max_concurrent=3, max_queue=0)
    for _ in range(3):
        await s.acquire()
    turns = [s.take_turn() for _ in range(3)]
    assert [t.done() for t in turns] == [True, False, False]
    assert (s.active, s.running, s.waiting) == (3, 1, 0)
    s.end_turn()
    assert [t.done() for t in turns] == [True, True, False]
    assert s.running == 1  # handed over, never two at once
    s.end_turn()
    s.end_turn()
    assert s.running == 0
    for _ in range(3):
        s.release()
    assert (s.active, s.running, s.waiting) == (0, 0, 0)


async def test_turns_go_in_the_order_they_were_asked_for() -> None:
    s = Scheduler(max_concurrent=4, max_queue=0)
    first = s.take_turn()
    assert first.done()
    order: list[int] = []

    async def wait(i: int) -> None:
        fut = s.take_turn()
        await fut
        order.append(i)

    tasks = [asyncio.create_task(wait(i)) for i in range(3)]
    await settle()
    for _ in range(3):
        s.end_turn()
        await settle()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]
    s.end_turn()
    assert s.running == 0


async def test_leaving_the_turn_line_keeps_the_order_of_the_rest() -> None:
    """A request whose client went away while waiting for its turn leaves at once; a turn
    handed to it just as it gave up goes on to the next."""
    s = Scheduler(max_concurrent=4, max_queue=0)
    s.take_turn()
    gone, second, third = s.take_turn(), s.take_turn(), s.take_turn()
    s.leave_turn(gone)  # left while waiting
    s.end_turn()
    assert second.done()
    assert not third.done()
    s.leave_turn(second)  # had the turn but never used it: passed on
    assert third.done()
    assert s.running == 1
    s.end_turn()
    assert s.running == 0


def test_end_turn_without_a_turn_is_a_bug() -> None:
    with pytest.raises(RuntimeError):
        Scheduler(1, 1).end_turn()


def test_max_concurrent_can_be_raised_once_the_device_is_known() -> None:
    s = Scheduler(1, 0)
    s.max_concurrent = 2  # what the runtime does on a GPU when max_concurrent is unset
    assert s.max_concurrent == 2
    with pytest.raises(ValueError, match="max_concurrent"):
        s.max_concurrent = 0
