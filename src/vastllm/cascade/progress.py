"""Pull/fetch progress: one record per NDJSON line, printed at most every few seconds."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from vastllm.cascade.units import gb


@dataclass(frozen=True)
class PullProgress:
    model: str
    status: str
    completed: int | None = None
    total: int | None = None

    @property
    def percent(self) -> float | None:
        if self.total and self.completed is not None:
            return min(100.0, 100.0 * self.completed / self.total)
        return None

    def line(self) -> str:
        text = f"{self.model}: {self.status}"
        if self.percent is not None and self.total is not None and self.completed is not None:
            text += f" {self.percent:.0f}% ({gb(self.completed)} of {gb(self.total)})"
        return text


ProgressFn = Callable[[PullProgress], None]


class ThrottledPrinter:
    """Prints a progress line when ``interval`` seconds passed since the last one, and always
    the first line and the final states (``success``, errors are reported by the caller)."""

    def __init__(
        self,
        interval: float = 5.0,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.stream = stream
        self.clock = clock
        self._last: float | None = None

    def __call__(self, progress: PullProgress) -> None:
        now = self.clock()
        final = progress.status == "success"
        if not final and self._last is not None and now - self._last < self.interval:
            return
        self._last = now
        stream = self.stream or sys.stderr
        stream.write(progress.line() + "\n")
        stream.flush()


def no_progress(progress: PullProgress) -> None:
    """A progress callback that prints nothing."""
