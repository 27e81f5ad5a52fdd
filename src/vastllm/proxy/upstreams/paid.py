"""The day's budget of requests to paid upstreams (``ProxySettings.paid_requests_per_day``).

A paid upstream (Anthropic's or OpenAI's API, ``paid: true``) answers only when no local one
can; each request it is given counts against one budget per UTC day, shared by every paid
upstream. With the cache's Redis the count is one ``INCR`` on ``vastllm:paid:YYYY-MM-DD``, so all
workers and restarts share it; without Redis (or while it is down) each worker counts for
itself against its share of the cap (the cap divided by the workers, rounded up), which keeps
the total within the cap plus one per worker. A request is counted when it is sent, answered or
not: the budget errs on the side of spending less.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable

KEY_PREFIX = "vastllm:paid:"
# a day's key outlives its day, so a late count never restarts the next day's from zero
KEY_TTL = 2 * 86400

Counter = Callable[[str, int], Awaitable[int | None]]


def utc_day(now: float | None = None) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() if now is None else now))


class PaidBudget:
    """``take()`` one paid request from today's budget, or learn that it is spent."""

    __slots__ = ("_counter", "_day", "_local", "_share", "per_day", "spent")

    def __init__(self, per_day: int, workers: int, counter: Counter | None) -> None:
        self.per_day = per_day
        self._share = math.ceil(per_day / max(workers, 1))
        self._counter = counter  # the cache's Redis INCR, when there is one
        self._day = ""
        self._local = 0  # this worker's count today
        self.spent = 0  # today's count as last seen (all workers when Redis has it)

    @property
    def reason(self) -> str:
        return (
            f"the daily cap of {self.per_day} paid requests (paid_requests_per_day) is reached; "
            "it resets at 00:00 UTC"
        )

    async def take(self) -> bool:
        """Count one paid request; False (and nothing counted) when today's cap is reached."""
        if self.per_day <= 0:
            return False
        day = utc_day()
        if day != self._day:
            self._day, self._local, self.spent = day, 0, 0
        if self.spent >= self.per_day:
            return False
        shared = None if self._counter is None else await self._counter(KEY_PREFIX + day, KEY_TTL)
        if shared is not None:
            self.spent = shared
            return shared <= self.per_day
        if self._local >= self._share:
            return False
        self._local += 1
        self.spent = max(self.spent, self._local)
        return True
