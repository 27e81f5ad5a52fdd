"""Several worker processes on one port (``workers`` > 1), run by a WorkerPool in the first process.

One event loop serves requests one at a time: with 32 clients in flight a cache hit waits for
the 31 before it, so its latency is about 32 x the ~100 us a hit costs (bench/RESULTS.md). More
cores help only through more processes. The pool (the first process) starts ``workers`` copies of
``python -m vastllm.proxy``; each binds the port with ``SO_REUSEPORT``, so the kernel spreads new
connections over them. SIGTERM/SIGINT stop them all; a worker that dies stops the others and the
pool exits 1, so the service manager restarts the whole proxy (a half-dead proxy is not
kept). Workers die with the pool (``PR_SET_PDEATHSIG``) so none keeps the port orphaned.

Per worker, by design: request coalescing, ``max_outstanding``, upstream health and ``/health``.
``/metrics`` adds up every worker's counters (see :mod:`vastllm.proxy.worker_metrics`).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from vastllm.proxy.settings import ProxySettings

log = logging.getLogger(__name__)

WORKER_ENV = "_VASTLLM_PROXY_WORKER"  # index of this worker (set by the pool only)
SHARED_ENV = "_VASTLLM_PROXY_SHARED_DIR"  # where the workers' metrics snapshots live
STOP_SECONDS = 10.0
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class WorkerRole:
    index: int
    count: int
    shared_dir: Path


def worker_role(settings: ProxySettings) -> WorkerRole | None:
    """This process's place among the workers, or None when it is not a supervised worker."""
    index = os.environ.get(WORKER_ENV)
    shared = os.environ.get(SHARED_ENV)
    if index is None or not shared:
        return None
    return WorkerRole(int(index), settings.workers, Path(shared))


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return
    libc = ctypes.CDLL(libc_name, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class WorkerPool:
    def __init__(self, settings: ProxySettings) -> None:
        self.count = settings.workers
        self.stopping = False
        self.procs: list[subprocess.Popen[bytes]] = []

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if not self.stopping:
            log.warning("received %s, stopping %d workers", signal.Signals(signum).name, self.count)
        self._stop_all()

    def _stop_all(self) -> None:
        self.stopping = True
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)

    def run(self) -> int:
        shared = Path(tempfile.mkdtemp(prefix="vastllm-proxy-workers-"))
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        failed = False
        try:
            for i in range(self.count):
                env = {**os.environ, WORKER_ENV: str(i), SHARED_ENV: str(shared)}
                self.procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "vastllm.proxy"],
                        env=env,
                        preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads here yet
                    )
                )
            deadline: float | None = None
            while any(p.poll() is None for p in self.procs):
                if not self.stopping:
                    dead = [
                        (i, p.returncode) for i, p in enumerate(self.procs) if p.poll() is not None
                    ]
                    if dead:
                        i, code = dead[0]
                        print(
                            f"vastllm-proxy: worker {i} exited with {code}; stopping the others",
                            file=sys.stderr,
                            flush=True,
                        )
                        failed = True
                        self._stop_all()
                if self.stopping:
                    deadline = deadline or time.monotonic() + STOP_SECONDS
                    if time.monotonic() > deadline:
                        for p in self.procs:
                            if p.poll() is None:
                                p.kill()
                time.sleep(0.1)
        finally:
            self._stop_all()
            for p in self.procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(STOP_SECONDS)
            shutil.rmtree(shared, ignore_errors=True)
        return 1 if failed else 0
