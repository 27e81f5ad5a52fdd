"""The few numbers ``vastllm status`` reads from the proxy's Prometheus text exposition."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
HITS = "vastllm_proxy_cache_hits_total"
MISSES = "vastllm_proxy_cache_misses_total"
RATIO = "vastllm_proxy_cache_hit_ratio"
OUTSTANDING = "vastllm_proxy_upstream_outstanding"
OUTPUT_RATE = "vastllm_proxy_output_tokens_per_second"


def samples(text: str) -> dict[str, float]:
    """``name{labels}`` -> value for every sample line (comments and bad lines skipped)."""
    out: dict[str, float] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        try:
            out[match.group(1) + (match.group(2) or "")] = float(match.group(3))
        except ValueError:
            continue
    return out


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    hit_ratio: float | None  # None before the first cacheable request


def cache_stats(text: str) -> CacheStats | None:
    """Hits, misses and hit ratio of the proxy's cache since it started; None when the text
    has no cache counters."""
    values = samples(text)
    if HITS not in values or MISSES not in values:
        return None
    hits, misses = int(values[HITS]), int(values[MISSES])
    looked = hits + misses
    ratio = values.get(RATIO) if looked else None
    if looked and ratio is None:
        ratio = hits / looked
    return CacheStats(hits, misses, ratio)


@dataclass(frozen=True)
class ProxyLoad:
    in_flight: int  # requests in flight, all upstreams together
    output_tokens_per_second: float | None  # over the last minute; None: a proxy without it


def proxy_load(text: str) -> ProxyLoad | None:
    """Requests in flight (summed over the upstreams) and the output token rate; None when the
    text has neither."""
    values = samples(text)
    outstanding = [v for k, v in values.items() if k.split("{", 1)[0] == OUTSTANDING]
    rate = values.get(OUTPUT_RATE)
    if not outstanding and rate is None:
        return None
    return ProxyLoad(int(sum(outstanding)), rate)
