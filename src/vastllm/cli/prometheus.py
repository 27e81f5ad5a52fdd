"""The few numbers ``vastllm status`` reads from the proxy's Prometheus text exposition
(parsed by :mod:`vastllm.prometheus`)."""

from __future__ import annotations

from dataclasses import dataclass

from vastllm import prometheus

HITS = "vastllm_proxy_cache_hits_total"
MISSES = "vastllm_proxy_cache_misses_total"
RATIO = "vastllm_proxy_cache_hit_ratio"
OUTSTANDING = "vastllm_proxy_upstream_outstanding"
OUTPUT_RATE = "vastllm_proxy_output_tokens_per_second"


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    hit_ratio: float | None  # None before the first cacheable request


def cache_stats(text: str) -> CacheStats | None:
    """Hits, misses and hit ratio of the proxy's cache since it started; None when the text
    has no cache counters."""
    exposition = prometheus.parse(text)
    hit_total, miss_total = exposition.total(HITS), exposition.total(MISSES)
    if hit_total is None or miss_total is None:
        return None
    hits, misses = int(hit_total), int(miss_total)
    looked = hits + misses
    ratio = exposition.total(RATIO) if looked else None
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
    exposition = prometheus.parse(text)
    outstanding, rate = exposition.total(OUTSTANDING), exposition.total(OUTPUT_RATE)
    if outstanding is None and rate is None:
        return None
    return ProxyLoad(int(outstanding or 0), rate)
