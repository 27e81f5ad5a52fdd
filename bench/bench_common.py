"""What the benchmarks in bench/ share: the lock they measure under, the machine's description,
percentiles and the results file. Standard library only: engines_bench.py runs under other
pythons too (a GPU host's, a vLLM venv's).

bench/ is a folder of scripts, not a package: ``.venv/bin/python bench/X.py`` puts bench/ first
on sys.path, so the scripts import this module as ``bench_common``.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "RESULTS.md"
LOCK_PATH = Path("/tmp/vastllm-bench.lock")  # noqa: S108 - the lock all benchmarks agree on


@contextlib.contextmanager
def bench_lock() -> Iterator[None]:
    """Hold the exclusive lock on LOCK_PATH: no two benchmarks measure at once."""
    with LOCK_PATH.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for {LOCK_PATH} (another benchmark is measuring)...", flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        print(f"holding {LOCK_PATH}", flush=True)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
            print(f"released {LOCK_PATH}", flush=True)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1): with few samples, p99 is the largest."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def greedy_exactly(n: int) -> dict[str, Any]:
    """transformers ``model.generate`` keywords: greedy (the generation config's sampling
    settings off), exactly n new tokens (EOS cannot end it early: the equivalent of
    ``ignore_eos``)."""
    return {
        "do_sample": False,
        "temperature": None,
        "top_p": None,
        "top_k": None,
        "max_new_tokens": n,
        "min_new_tokens": n,
    }


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def loadavg() -> str:
    """The load average (1, 5, 15 min) as "a / b / c"; "?" where there is none."""
    with contextlib.suppress(OSError):
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return "?"


def append_result(section: str) -> None:
    """Append a Markdown section to bench/RESULTS.md, one blank line before it, in one write."""
    existing = RESULTS.read_text() if RESULTS.exists() else ""
    sep = "" if not existing or existing.endswith("\n\n") else "\n"
    if existing and not existing.endswith("\n"):
        sep = "\n\n"
    with RESULTS.open("a") as f:
        f.write(sep + section)
    print(f"appended to {RESULTS}")
