"""The day's budget of paid requests (src/vastllm/proxy/upstreams/paid.py): shared through a
counter (the cache's Redis INCR) when there is one, else each worker's share of the cap; a new
UTC day starts from zero. The proxy-level behaviour is in test_paid_fallback.py."""

from __future__ import annotations

import asyncio

import pytest

from vastllm.proxy.upstreams import paid
from vastllm.proxy.upstreams.paid import PaidBudget


def takes(budget: PaidBudget, n: int) -> list[bool]:
    async def run() -> list[bool]:
        return [await budget.take() for _ in range(n)]

    return asyncio.run(run())


def test_without_a_counter_each_worker_takes_its_share_rounded_up() -> None:
    assert takes(PaidBudget(5, workers=2, counter=None), 4) == [True, True, True, False]
    assert takes(PaidBudget(5, workers=1, counter=None), 6) == [True] * 5 + [False]


def test_a_shared_counter_decides_and_is_not_asked_once_the_cap_is_seen() -> None:
    counts = {"n": 7}  # other workers already took 7 today
    asked: list[str] = []

    async def incr(key: str, ttl: int) -> int:
        asked.append(key)
        assert ttl > 86400  # outlives its day
        counts["n"] += 1
        return counts["n"]

    budget = PaidBudget(9, workers=4, counter=incr)
    assert takes(budget, 4) == [True, True, False, False]
    assert len(asked) == 2  # the 2nd count reached the cap: later takes need not ask
    assert asked[0] == "vastllm:paid:" + paid.utc_day()
    assert budget.spent == 9


def test_an_unusable_counter_falls_back_to_the_share() -> None:
    async def down(key: str, ttl: int) -> None:
        return None

    assert takes(PaidBudget(4, workers=2, counter=down), 3) == [True, True, False]


def test_a_new_utc_day_starts_from_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    budget = PaidBudget(1, workers=1, counter=None)
    monkeypatch.setattr(paid, "utc_day", lambda now=None: "2026-12-01")
    assert takes(budget, 2) == [True, False]
    monkeypatch.setattr(paid, "utc_day", lambda now=None: "2026-12-02")
    assert takes(budget, 2) == [True, False]


def test_a_cap_of_zero_never_takes() -> None:
    assert takes(PaidBudget(0, workers=1, counter=None), 1) == [False]
