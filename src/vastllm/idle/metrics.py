"""What the watcher reads from the host proxy's ``GET /metrics`` (Prometheus text).

Two families of :mod:`vastllm.proxy.metrics`: ``vastllm_proxy_requests_total`` summed over the
routes that serve models (the operational ``/``, ``/health`` and ``/metrics``, which the tunnel
and this watcher call themselves, and unmatched paths do not count) and
``vastllm_proxy_upstream_outstanding`` summed over the upstreams (a stream still open).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import NamedTuple

from vastllm import prometheus

REQUESTS = "vastllm_proxy_requests_total"
OUTSTANDING = "vastllm_proxy_upstream_outstanding"
IGNORED_ROUTES = frozenset({"/", "/health", "/metrics", "unmatched"})


class MetricsUnreadable(Exception):
    """No /metrics answer, or one without the proxy's families."""


class Reading(NamedTuple):
    requests: float  # model requests answered so far (a counter)
    outstanding: float  # requests in flight now


def parse(text: str) -> Reading:
    """The two sums of a /metrics text; :class:`MetricsUnreadable` when neither family is in it
    (not the vastllm proxy)."""
    exposition = prometheus.parse(text)
    seen = exposition.families | {s.name for s in exposition.samples}
    if not {REQUESTS, OUTSTANDING} & seen:
        raise MetricsUnreadable("the answer has none of the proxy's request metrics")
    requests = sum(
        s.value for s in exposition.named(REQUESTS) if s.labels.get("route") not in IGNORED_ROUTES
    )
    return Reading(requests, exposition.total(OUTSTANDING) or 0.0)


def read(url: str, timeout: float) -> Reading:
    """GET ``url`` and :func:`parse` it."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback
            text = resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        raise MetricsUnreadable(f"HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise MetricsUnreadable(str(getattr(exc, "reason", exc))) from None
    return parse(text)
