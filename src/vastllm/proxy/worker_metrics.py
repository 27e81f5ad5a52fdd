"""``/metrics`` over all workers: each worker writes its counters to a file in the directory the
WorkerPool made, every :data:`INTERVAL` seconds (atomically: write, then rename); the worker that
answers a scrape writes its own first and adds up every file. Another worker's figures are at
most :data:`INTERVAL` old. Gauges that are one state for all (upstream up, Redis up, residency)
come from the answering worker; requests in flight are summed."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import orjson

from vastllm.proxy import background
from vastllm.proxy.metrics import Metrics, UpstreamGauge
from vastllm.proxy.upstreams.router import Router
from vastllm.proxy.workers import WorkerRole

log = logging.getLogger(__name__)

INTERVAL = 1.0


class WorkerMetrics:
    def __init__(self, role: WorkerRole, metrics: Metrics, router: Router) -> None:
        self._dir = role.shared_dir
        self._path = role.shared_dir / f"worker-{role.index}.json"
        self._metrics = metrics
        self._router = router
        self._task: asyncio.Task[None] | None = None

    def write(self) -> None:
        snap = self._metrics.snapshot()
        snap["outstanding"] = {u.name: u.outstanding for u in self._router.upstreams}
        tmp = self._path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(orjson.dumps(snap))
        os.replace(tmp, self._path)

    def merged(self) -> tuple[Metrics, list[UpstreamGauge]]:
        """Every worker's counters added up, and the upstream gauges with summed in-flight."""
        self.write()
        total = Metrics()
        outstanding: dict[str, int] = {}
        for path in sorted(self._dir.glob("worker-*.json")):
            try:
                snap: dict[str, Any] = orjson.loads(path.read_bytes())
                total.add(snap)
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.warning("skipping unreadable worker metrics %s: %s", path, e)
                continue
            for name, n in snap.get("outstanding", {}).items():
                outstanding[name] = outstanding.get(name, 0) + int(n)
        gauges = [
            UpstreamGauge(g.name, g.healthy, outstanding.get(g.name, g.outstanding))
            for g in self._router.gauges()
        ]
        return total, gauges

    async def _loop(self) -> None:
        while True:
            try:
                self.write()
            except OSError as e:
                log.warning("cannot write worker metrics %s: %s", self._path, e)
            await asyncio.sleep(INTERVAL)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="worker-metrics")

    async def stop(self) -> None:
        await background.cancel(self._task)
