"""What the watcher reads from the host proxy's ``GET /metrics`` (Prometheus text).

Two families of :mod:`vastllm.proxy.metrics`: ``vastllm_proxy_requests_total`` summed over the
routes that serve models (the operational ``/``, ``/health`` and ``/metrics``, which the tunnel
and this watcher call themselves, and unmatched paths do not count) and
``vastllm_proxy_upstream_outstanding`` summed over the upstreams (a stream still open).
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from typing import NamedTuple

REQUESTS = "vastllm_proxy_requests_total"
OUTSTANDING = "vastllm_proxy_upstream_outstanding"
IGNORED_ROUTES = frozenset({"/", "/health", "/metrics", "unmatched"})
_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


class MetricsUnreadable(Exception):
    """No /metrics answer, or one without the proxy's families."""


class Reading(NamedTuple):
    requests: float  # model requests answered so far (a counter)
    outstanding: float  # requests in flight now


def parse(text: str) -> Reading:
    """The two sums of a /metrics text; :class:`MetricsUnreadable` when neither family is in it
    (not the vastllm proxy)."""
    requests = outstanding = 0.0
    seen: set[str] = set()
    for line in text.splitlines():
        if line.startswith("#"):
            if line.startswith("# TYPE "):
                seen.add(line.split()[2])
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        name, labels, value = match.groups()
        if name not in (REQUESTS, OUTSTANDING):
            continue
        seen.add(name)
        try:
            number = float(value)
        except ValueError:
            continue
        if name == OUTSTANDING:
            outstanding += number
        elif dict(_LABEL.findall(labels or "")).get("route") not in IGNORED_ROUTES:
            requests += number
    if not {REQUESTS, OUTSTANDING} & seen:
        raise MetricsUnreadable("the answer has none of the proxy's request metrics")
    return Reading(requests, outstanding)


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
