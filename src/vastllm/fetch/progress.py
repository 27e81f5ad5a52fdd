"""Progress reports for long steps, and the stderr printer the CLI uses."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

MiB = 1024 * 1024


@dataclass(frozen=True)
class Progress:
    """`done` of `total` bytes in `phase` ("download", "verify", "repair"), `elapsed` seconds."""

    phase: str
    done: int
    total: int
    elapsed: float
    final: bool = False

    @property
    def rate(self) -> float:
        """Bytes per second so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        if self.rate <= 0 or self.total <= 0:
            return None
        return max(self.total - self.done, 0) / self.rate


ProgressFn = Callable[[Progress], None]


class ProgressTracker:
    """Thread-safe byte counter for one phase; calls `callback` at most every `every` seconds."""

    def __init__(
        self, phase: str, total: int, callback: ProgressFn | None, every: float = 0.5
    ) -> None:
        self.phase = phase
        self.total = total
        self._callback = callback
        self._every = every
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._last = 0.0
        self.done = 0

    def add(self, n: int) -> None:
        with self._lock:
            self.done += n
            now = time.monotonic()
            if self._callback is None or now - self._last < self._every:
                return
            self._last = now
            report = Progress(self.phase, self.done, self.total, now - self._start)
        self._callback(report)

    def finish(self) -> None:
        if self._callback is not None:
            elapsed = time.monotonic() - self._start
            self._callback(Progress(self.phase, self.done, self.total, elapsed, final=True))


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_progress(p: Progress) -> str:
    """One human line: `download 1.20/4.00 GiB (30%) 215.3 MiB/s ETA 0:13`."""
    unit, size = ("GiB", 1024**3) if p.total >= 1024**3 else ("MiB", MiB)
    pct = f" ({100 * p.done / p.total:.0f}%)" if p.total > 0 else ""
    tail = f"done in {p.elapsed:.1f}s" if p.final else f"ETA {_eta(p.eta)}"
    amount = f"{p.done / size:.2f}/{p.total / size:.2f} {unit}"
    return f"{p.phase} {amount}{pct} {p.rate / MiB:.1f} MiB/s {tail}"


class StderrProgress:
    """A progress callback printing a line every `interval` seconds, and a last one.

    A step shorter than one interval prints nothing.
    """

    def __init__(self, interval: float = 5.0, stream: TextIO | None = None) -> None:
        self.interval = interval
        self.stream = stream if stream is not None else sys.stderr
        self._first: dict[str, float] = {}
        self._last: dict[str, float] = {}

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        since = self._last.get(p.phase, self._first.setdefault(p.phase, now))
        if p.final:
            if p.phase not in self._last and p.elapsed < self.interval:
                return
        elif now - since < self.interval:
            return
        self._last[p.phase] = now
        print(f"vastllm.fetch: {format_progress(p)}", file=self.stream, flush=True)
