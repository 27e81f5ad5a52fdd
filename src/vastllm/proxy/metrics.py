"""In-process counters and their Prometheus text exposition (format 0.0.4).

Written by hand: a handful of counters, one histogram family and a few gauges do not justify a
client library, and plain dict increments keep the hot path cheap.
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)
LATENCY = "vastllm_proxy_upstream_latency_seconds"
VRAM_FRACTION = "vastllm_proxy_upstream_model_vram_fraction"
OUTPUT_RATE = "vastllm_proxy_output_tokens_per_second"
RATE_WINDOW = 60  # seconds the output token rate is taken over
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(value: float) -> str:
    return (
        repr(float(value))
        if isinstance(value, float) and not value.is_integer()
        else str(int(value))
    )


@dataclass(slots=True)
class Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds


@dataclass(slots=True)
class UpstreamGauge:
    name: str
    healthy: bool
    outstanding: int


@dataclass(slots=True)
class ModelVramGauge:
    upstream: str
    model: str
    fraction: float  # size_vram / size of a loaded model


class RateWindow:
    """What was counted in the last :data:`RATE_WINDOW` seconds, in per-second buckets
    (``[second, count]``, oldest first); ``merged`` holds other workers' window totals."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: deque[list[int]] = deque()
        self.merged = 0

    def _trim(self, now: int) -> None:
        while self._buckets and self._buckets[0][0] <= now - RATE_WINDOW:
            self._buckets.popleft()

    def add(self, n: int) -> None:
        now = int(self._clock())
        if self._buckets and self._buckets[-1][0] == now:
            self._buckets[-1][1] += n
        else:
            self._buckets.append([now, n])
        self._trim(now)

    def total(self) -> int:
        self._trim(int(self._clock()))
        return sum(count for _, count in self._buckets) + self.merged


class Metrics:
    """All counters of one proxy process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.cache = {"hit": 0, "miss": 0, "bypass": 0, "coalesced": 0}
        self.tokens_in = 0
        self.tokens_out = 0
        self.output_window = RateWindow(clock)  # output tokens of the last RATE_WINDOW seconds
        self.latency: dict[str, Histogram] = {}
        self.upstream_errors: dict[str, int] = {}
        self.paid: dict[str, int] = {}  # requests sent to each paid upstream
        self.paid_refused = 0  # requests refused because the day's paid budget was spent
        # conversations sent to their own upstream again ("kept"), to another as theirs was not
        # ready ("moved"), or seen for the first time ("new")
        self.affinities = {"kept": 0, "moved": 0, "new": 0}

    def affinity(self, result: str) -> None:
        self.affinities[result] += 1

    def paid_sent(self, name: str) -> None:
        self.paid[name] = self.paid.get(name, 0) + 1

    def request(self, route: str, status: int) -> None:
        key = (route, status)
        self.requests[key] = self.requests.get(key, 0) + 1

    def upstream_done(self, name: str, seconds: float, ok: bool) -> None:
        hist = self.latency.get(name)
        if hist is None:
            hist = self.latency[name] = Histogram()
        hist.observe(seconds)
        if not ok:
            self.upstream_errors[name] = self.upstream_errors.get(name, 0) + 1

    def tokens(self, input_tokens: int, output_tokens: int) -> None:
        self.tokens_in += input_tokens
        self.tokens_out += output_tokens
        if output_tokens:
            self.output_window.add(output_tokens)

    def output_tokens_per_second(self) -> float:
        """Output tokens of the last :data:`RATE_WINDOW` seconds (all workers') per second."""
        return self.output_window.total() / RATE_WINDOW

    def snapshot(self) -> dict[str, Any]:
        """The counters as plain JSON data (another worker adds them with :meth:`add`)."""
        return {
            "requests": [[route, status, n] for (route, status), n in self.requests.items()],
            "cache": dict(self.cache),
            "tokens": [self.tokens_in, self.tokens_out],
            "tokens_out_window": self.output_window.total(),
            "latency": {name: [h.counts, h.total] for name, h in self.latency.items()},
            "upstream_errors": dict(self.upstream_errors),
            "paid": dict(self.paid),
            "paid_refused": self.paid_refused,
            "affinity": dict(self.affinities),
        }

    def add(self, snap: dict[str, Any]) -> None:
        """Add another worker's :meth:`snapshot` to these counters."""
        for route, status, n in snap["requests"]:
            key = (str(route), int(status))
            self.requests[key] = self.requests.get(key, 0) + int(n)
        for key, n in snap["cache"].items():
            self.cache[key] = self.cache.get(key, 0) + int(n)
        self.tokens_in += int(snap["tokens"][0])
        self.tokens_out += int(snap["tokens"][1])
        # a rate sums across workers: each snapshot holds its worker's own window
        self.output_window.merged += int(snap.get("tokens_out_window", 0))
        for name, (counts, total) in snap["latency"].items():
            hist = self.latency.get(name)
            if hist is None:
                hist = self.latency[name] = Histogram()
            hist.counts = [a + int(b) for a, b in zip(hist.counts, counts, strict=True)]
            hist.total += float(total)
        for name, n in snap["upstream_errors"].items():
            self.upstream_errors[name] = self.upstream_errors.get(name, 0) + int(n)
        for name, n in snap.get("paid", {}).items():
            self.paid[name] = self.paid.get(name, 0) + int(n)
        self.paid_refused += int(snap.get("paid_refused", 0))
        for key, n in snap.get("affinity", {}).items():
            self.affinities[key] = self.affinities.get(key, 0) + int(n)

    def render(
        self,
        upstreams: list[UpstreamGauge],
        redis_up: bool | None,
        vram: list[ModelVramGauge] | None = None,
    ) -> bytes:
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")

        family(
            "vastllm_proxy_requests_total",
            "counter",
            "HTTP requests answered, by route and status.",
        )
        for (route, status), n in sorted(self.requests.items()):
            out.append(
                f'vastllm_proxy_requests_total{{route="{_label(route)}",status="{status}"}} {n}'
            )
        for key, name, help_text in (
            ("hit", "vastllm_proxy_cache_hits_total", "Answers served from the cache."),
            ("miss", "vastllm_proxy_cache_misses_total", "Cacheable requests that went upstream."),
            ("bypass", "vastllm_proxy_cache_bypass_total", "Requests that skipped the cache."),
            (
                "coalesced",
                "vastllm_proxy_cache_coalesced_total",
                "Requests that joined an identical request already in flight.",
            ),
        ):
            family(name, "counter", help_text)
            out.append(f"{name} {self.cache[key]}")
        looked = self.cache["hit"] + self.cache["miss"]
        family("vastllm_proxy_cache_hit_ratio", "gauge", "hits / (hits + misses) since start.")
        out.append(
            f"vastllm_proxy_cache_hit_ratio {_num(self.cache['hit'] / looked if looked else 0.0)}"
        )
        family("vastllm_proxy_tokens_total", "counter", "Tokens processed by upstreams.")
        out.append(f'vastllm_proxy_tokens_total{{direction="in"}} {self.tokens_in}')
        out.append(f'vastllm_proxy_tokens_total{{direction="out"}} {self.tokens_out}')
        family(OUTPUT_RATE, "gauge", f"Output tokens per second over the last {RATE_WINDOW} s.")
        out.append(f"{OUTPUT_RATE} {_num(round(self.output_tokens_per_second(), 3))}")
        family(
            "vastllm_proxy_upstream_latency_seconds",
            "histogram",
            "Time from sending a request upstream to its last byte.",
        )
        for name, hist in sorted(self.latency.items()):
            lab = _label(name)
            cumulative = 0
            for bound, count in zip((*BUCKETS, float("inf")), hist.counts, strict=True):
                cumulative += count
                le = "+Inf" if bound == float("inf") else _num(bound)
                labels = f'upstream="{lab}",le="{le}"'
                out.append(f"{LATENCY}_bucket{{{labels}}} {cumulative}")
            out.append(
                f'vastllm_proxy_upstream_latency_seconds_sum{{upstream="{lab}"}} {_num(hist.total)}'
            )
            out.append(
                f'vastllm_proxy_upstream_latency_seconds_count{{upstream="{lab}"}} {cumulative}'
            )
        family("vastllm_proxy_upstream_errors_total", "counter", "Failed upstream calls.")
        for name, n in sorted(self.upstream_errors.items()):
            out.append(f'vastllm_proxy_upstream_errors_total{{upstream="{_label(name)}"}} {n}')
        family(
            "vastllm_proxy_paid_requests_total",
            "counter",
            "Requests sent to a paid upstream (no local one could take them).",
        )
        for name, n in sorted(self.paid.items()):
            out.append(f'vastllm_proxy_paid_requests_total{{upstream="{_label(name)}"}} {n}')
        family(
            "vastllm_proxy_paid_refused_total",
            "counter",
            "Requests answered 529 because the day's paid_requests_per_day was spent.",
        )
        out.append(f"vastllm_proxy_paid_refused_total {self.paid_refused}")
        family(
            "vastllm_proxy_affinity_total",
            "counter",
            "Requests of a known conversation sent to its own upstream (kept) or another (moved),"
            " and first requests of a conversation (new).",
        )
        for key, n in sorted(self.affinities.items()):
            out.append(f'vastllm_proxy_affinity_total{{result="{key}"}} {n}')
        family("vastllm_proxy_upstream_up", "gauge", "1 when the upstream passed its health check.")
        for g in upstreams:
            out.append(f'vastllm_proxy_upstream_up{{upstream="{_label(g.name)}"}} {int(g.healthy)}')
        family("vastllm_proxy_upstream_outstanding", "gauge", "Requests in flight per upstream.")
        for g in upstreams:
            out.append(
                f'vastllm_proxy_upstream_outstanding{{upstream="{_label(g.name)}"}} {g.outstanding}'
            )
        if vram is not None:
            family(
                VRAM_FRACTION,
                "gauge",
                "Share of a loaded model in GPU memory (size_vram / size in Ollama's /api/ps).",
            )
            for v in vram:
                labels = f'upstream="{_label(v.upstream)}",model="{_label(v.model)}"'
                out.append(f"{VRAM_FRACTION}{{{labels}}} {_num(round(v.fraction, 4))}")
        if redis_up is not None:
            family("vastllm_proxy_redis_up", "gauge", "1 when the cache's Redis answers.")
            out.append(f"vastllm_proxy_redis_up {int(redis_up)}")
        out.append("")
        return "\n".join(out).encode()
