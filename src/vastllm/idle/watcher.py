"""The loop: poll, decide, act once (the idle clock here, the spend budget in
:mod:`vastllm.idle.budget`; :func:`run` polls both).

The host is idle while the proxy's model request count stays the same, nothing is in flight and
no busy mark is there. Anything else (a request, an open stream, a fetch, a pull, the cascade,
and also a /metrics that cannot be read: never stop on what cannot be seen) starts the idle
time again. Once idle for ``stop_minutes`` the action (stop or destroy) is asked for exactly
once; a refused or unanswered call is tried again at the next poll, a successful one ends the
watching (a stopped instance is not running this process any more; a started one runs a new one).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

from vastllm.busy import Mark
from vastllm.idle.budget import Budget
from vastllm.idle.metrics import MetricsUnreadable, Reading

log = logging.getLogger("vastllm.idle")

Step = Literal["active", "busy", "blind", "idle", "acted", "failed", "done"]


class Watcher:
    """One instance's idle clock. ``read_metrics``, ``read_marks`` and ``act`` are injected
    (tests drive :meth:`step` with their own clock)."""

    def __init__(
        self,
        *,
        stop_seconds: float,
        action: str,
        read_metrics: Callable[[], Reading],
        read_marks: Callable[[], list[Mark]],
        act: Callable[[], None],
        act_errors: tuple[type[Exception], ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stop_seconds = stop_seconds
        self.action = action
        self.read_metrics = read_metrics
        self.read_marks = read_marks
        self.act = act
        self.act_errors = act_errors
        self.clock = clock
        self.idle_since = clock()
        self.last_requests: float | None = None
        self.acted = False
        self._last_step: Step | None = None

    def _restart(self, step: Step, why: str) -> Step:
        if step != self._last_step:
            log.info("%s: the idle time starts again", why)
        self.idle_since = self.clock()
        return step

    def step(self) -> Step:
        """One poll; returns what it saw or did."""
        if self.acted:
            return "done"
        step = self._step()
        self._last_step = step
        return step

    def _step(self) -> Step:
        try:
            reading = self.read_metrics()
        except MetricsUnreadable as exc:
            return self._restart("blind", f"the proxy's /metrics cannot be read ({exc})")
        requests_changed = reading.requests != self.last_requests
        self.last_requests = reading.requests
        if requests_changed or reading.outstanding > 0:
            return self._restart("active", "requests reach the proxy")
        marks = self.read_marks()
        if marks:
            names = ", ".join(sorted({m.what for m in marks}))
            return self._restart("busy", f"busy: {names}")
        idle_for = self.clock() - self.idle_since
        if idle_for < self.stop_seconds:
            return "idle"
        try:
            self.act()
        except self.act_errors as exc:
            log.warning("the %s call failed (%s); trying again at the next poll", self.action, exc)
            return "failed"
        self.acted = True
        log.warning("idle for %.1f minutes: asked Vast.ai to %s this instance",
                    idle_for / 60, self.action)
        return "acted"

    def run(self, poll_seconds: float, sleep: Callable[[float], None] = time.sleep) -> None:
        """Poll until the action was taken."""
        run(self, None, poll_seconds, sleep)


def run(watcher: Watcher | None, budget: Budget | None, poll_seconds: float,
        sleep: Callable[[float], None] = time.sleep) -> None:
    """Poll the budget and the idle clock (either may be off) until one of them acted: one call
    to the API in all. The budget goes first: over it, the instance stops even while in use."""
    while True:
        if budget is not None and budget.step() == "stopped":
            return
        if watcher is not None and watcher.step() == "acted":
            return
        sleep(poll_seconds)
