"""``vastllm status``: one record per GPU host, from the ``vastllm_status`` summaries that
playbooks/status.yml shows and from the hosts that could not be read; the fleet's verdict over
them; and the workstation gateway, from the workstation's ``vastllm_fleet``."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

from vastllm.cli.errors import EXIT_DEGRADED, EXIT_FAILED
from vastllm.cli.plays import FLEET_VAR, STATUS_VAR
from vastllm.cli.prometheus import cache_stats, proxy_load
from vastllm.cli.runner import RunOutcome
from vastllm.idle.budget import WARN_AT, SpendState

# the play of playbooks/status.yml that runs on the GPU hosts
GPU_PLAY = "Report the state of each GPU host"
# the Vast.ai fields of a host's price (the inventory plugin's vast_*), as status.yml passes them
COST_FIELDS = ("dph_total", "storage_total_cost", "start_date", "cur_state")


def _active_model(raw: Any) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        data = json.loads(str(raw))
    except ValueError:
        return {"error": "the active model file is not JSON"}
    return data if isinstance(data, dict) else {"error": "the active model file is not an object"}


def _gpu(facts: dict[str, Any]) -> dict[str, Any]:
    gpus = [
        {
            "index": g.get("index"),
            "name": g.get("name"),
            "memory_used_mib": g.get("memory_used_mib"),
            "memory_total_mib": g.get("memory_total_mib"),
        }
        for g in facts.get("gpus") or []
        if isinstance(g, dict)
    ]
    return {
        "mode": facts.get("mode"),
        "gpus": gpus,
        "problem": facts.get("problem"),
        "driver_version": facts.get("driver_version"),
        "cuda_version": facts.get("cuda_version"),
    }


def host_record(summary: dict[str, Any]) -> dict[str, Any]:
    """One GPU host's record from its ``vastllm_status``: ``gpu`` holds gpu_facts' vastllm_gpu,
    ``capacity`` its vastllm_host (disk, RAM)."""
    gpu = summary.get("gpu")
    facts: dict[str, Any] = gpu if isinstance(gpu, dict) else {}
    capacity = summary.get("capacity")
    host: dict[str, Any] = capacity if isinstance(capacity, dict) else {}
    metrics = summary.get("metrics")
    cache = cache_stats(str(metrics)) if metrics else None
    load = proxy_load(str(metrics)) if metrics else None
    return {
        "host": summary.get("host"),
        "reachable": True,
        "error": None,
        "healthy": bool(summary.get("healthy")),
        "problems": list(summary.get("problems") or []),
        "init": summary.get("init"),
        "supervisord": summary.get("supervisord"),
        "services": list(summary.get("services") or []),
        "redis": summary.get("redis"),
        "active_model": _active_model(summary.get("active_model_raw")),
        "gpu": _gpu(facts),
        "disk": {
            "path": host.get("disk_path"),
            "free_bytes": host.get("disk_free_bytes"),
            "total_bytes": host.get("disk_total_bytes"),
        },
        "memory": {
            "available_bytes": host.get("ram_available_bytes"),
            "total_bytes": host.get("ram_total_bytes"),
        },
        "cache": asdict(cache) if cache is not None else None,
        "load": asdict(load) if load is not None else None,
        "tunnels": summary.get("tunnels"),
        "dph_total": _price(summary.get("dph_total")),
        "budget": budget_record(summary.get("budget")),
    }


def _price(value: Any) -> float | None:
    """A host's Vast.ai price in $/h (``vast_dph_total``); None for any other host."""
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def budget_record(raw: Any) -> dict[str, Any] | None:
    """The idle watcher's count against the host's budget, from status.yml's ``budget`` (the
    idle_stop role's ``idle_stop_spend``); None where there is no budget
    (``vastllm_max_spend_usd`` 0). ``limit_usd``: the budget; ``spent_usd``: what the watcher
    counted (its spend.json, :class:`vastllm.idle.budget.SpendState`), ``used``: the part of the
    budget it is; ``state``: counting (under 80 %), warned (from 80 %: the watcher's warning),
    stopped (at 100 %: the watcher asks Vast.ai to stop the instance), or no count (no spend.json,
    or an unreadable one: no watcher counts yet; ``spent_usd`` and ``used`` None)."""
    if not isinstance(raw, dict):
        return None
    limit = _price(raw.get("limit_usd"))
    if limit is None or limit <= 0:
        return None
    state_raw = raw.get("state_raw")
    try:
        spent = SpendState.parse(state_raw).spent_usd if state_raw else None
    except (ValueError, TypeError, KeyError):
        spent = None
    if spent is None:
        return {"limit_usd": round(limit, 4), "spent_usd": None, "used": None, "state": "no count"}
    used = spent / limit
    state = "stopped" if used >= 1 else "warned" if used >= WARN_AT else "counting"
    return {"limit_usd": round(limit, 4), "spent_usd": round(spent, 4), "used": round(used, 4),
            "state": state}


def budget_total(hosts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The watchers' counts and their budgets added up, over the hosts with a count; None: no
    host has one."""
    counted = [h["budget"] for h in hosts if (h.get("budget") or {}).get("spent_usd") is not None]
    if not counted:
        return None
    return {
        "hosts": len(counted),
        "spent_usd": round(sum(b["spent_usd"] for b in counted), 4),
        "limit_usd": round(sum(b["limit_usd"] for b in counted), 4),
    }


def cost_record(fields: dict[str, Any], now: float) -> dict[str, Any] | None:
    """A Vast.ai host's cost from the API's prices (None for a host without ``dph_total``):
    ``per_hour`` (``dph_total``: GPU, CPU and disk), ``storage_per_hour``
    (``storage_total_cost``: the disk, billed stopped too), ``compute_per_hour`` (the rest),
    ``uptime_seconds`` since ``start_date`` and ``spend_since_start_estimate_usd``: uptime x
    ``dph_total``, an estimate (today's price over the whole time; a stopped spell billed its
    disk only, and Vast.ai's own bill is the answer)."""
    per_hour = _price(fields.get("dph_total"))
    if per_hour is None:
        return None
    storage = _price(fields.get("storage_total_cost"))
    start = _price(fields.get("start_date"))
    uptime = max(0.0, now - start) if start else None
    return {
        "per_hour": round(per_hour, 8),
        "compute_per_hour": round(per_hour - storage, 8) if storage is not None else None,
        "storage_per_hour": round(storage, 8) if storage is not None else None,
        "state": fields.get("cur_state") or None,
        "uptime_seconds": round(uptime) if uptime is not None else None,
        "spend_since_start_estimate_usd": (
            round(uptime / 3600 * per_hour, 4) if uptime is not None else None),
    }


def _total(costs: list[dict[str, Any]], key: str) -> float | None:
    known = [c[key] for c in costs if c.get(key) is not None]
    return round(sum(known), 4) if known else None


def cost_total(hosts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The hosts' known costs added up (each sum over the hosts that have it); None: no
    Vast.ai host."""
    costs = [h["cost"] for h in hosts if h.get("cost")]
    if not costs:
        return None
    keys = ("per_hour", "compute_per_hour", "storage_per_hour", "spend_since_start_estimate_usd")
    return {"hosts": len(costs), **{key: _total(costs, key) for key in keys}}


def health(record: dict[str, Any]) -> str:
    """The fleet table's word for a host: unreachable (no SSH), down (could not be read),
    ``N problem(s)`` of the diagnosis, tunnel down (its proxy tunnel does not answer the
    workstation), or healthy."""
    if record.get("error"):
        return "down" if record.get("reachable") else "unreachable"
    problems = record.get("problems") or []
    if problems:
        return f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
    tunnels = record.get("tunnels") or []
    if any(
        t.get("name") == "proxy" and t.get("checked") and not t.get("answered") for t in tunnels
    ):
        return "tunnel down"
    return "healthy" if record.get("healthy") else "unhealthy"


def fleet(hosts: list[dict[str, Any]]) -> dict[str, Any]:
    """``hosts`` (M), ``healthy`` (N of them), ``state``: healthy (all, or no host), degraded
    (some), down (none); ``dph_total``: the known prices added up (None: no Vast.ai host)."""
    healthy = sum(1 for h in hosts if h.get("health") == "healthy")
    state = "healthy" if healthy == len(hosts) else "down" if healthy == 0 else "degraded"
    prices = [h["dph_total"] for h in hosts if h.get("dph_total") is not None]
    return {
        "hosts": len(hosts),
        "healthy": healthy,
        "state": state,
        "dph_total": round(sum(prices), 4) if prices else None,
    }


def gateway_record(raw: Any) -> dict[str, Any] | None:
    """The workstation gateway from the workstation's ``vastllm_fleet.gateway``: enabled, url,
    up (its /health answered), status (ok | degraded), upstreams [{name, healthy, outstanding}],
    healthy_upstreams; None when no workstation took part in the run."""
    if not isinstance(raw, dict):
        return None
    enabled = bool(raw.get("enabled"))
    body = raw.get("health") if enabled else None
    answer: dict[str, Any] = body if isinstance(body, dict) else {}
    upstreams = [
        {
            "name": u.get("name"),
            "healthy": bool(u.get("healthy")),
            "outstanding": u.get("outstanding"),
        }
        for u in answer.get("upstreams") or []
        if isinstance(u, dict)
    ]
    return {
        "enabled": enabled,
        "url": raw.get("url") if enabled else None,
        "up": (bool(answer) and raw.get("http_status") == 200) if enabled else None,
        "status": answer.get("status"),
        "upstreams": upstreams,
        "healthy_upstreams": sum(1 for u in upstreams if u["healthy"]),
    }


def build_report(
    outcome: RunOutcome,
    now: float | None = None,
    last_counts: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``{"hosts": [...], "errors": [...], "fleet": {...}, "gateway": {...}}``: a record per GPU
    host (read, or why not; ``cost`` from :func:`cost_record` at ``now``, epoch seconds), the
    failures of the run that belong to no GPU host record (the workstation's), the fleet's
    verdict (:func:`fleet`, its ``cost`` from :func:`cost_total`, its ``budget`` from
    :func:`budget_total`; a host's ``budget`` from :func:`budget_record`) and the gateway
    (:func:`gateway_record`). A host that does not answer SSH gets its budget count from
    ``last_counts`` (:mod:`vastllm.cli.last_counts`) where one was read before, with ``as_of``:
    when it was read (epoch seconds)."""
    when = time.time() if now is None else now
    workstation: dict[str, Any] = next(
        (v for v in outcome.log.values.get(FLEET_VAR, {}).values() if isinstance(v, dict)), {}
    )
    prices = workstation.get("prices")
    known_prices: dict[str, Any] = prices if isinstance(prices, dict) else {}
    costs = workstation.get("costs")
    known_costs: dict[str, Any] = costs if isinstance(costs, dict) else {}
    hosts: dict[str, dict[str, Any]] = {}
    summaries: dict[str, dict[str, Any]] = {}
    for host, summary in outcome.log.values.get(STATUS_VAR, {}).items():
        if isinstance(summary, dict):
            hosts[host] = host_record({**summary, "host": host})
            summaries[host] = summary
    errors = []
    for failure in outcome.log.failures():
        if failure.play == GPU_PLAY and failure.host not in hosts:
            hosts[failure.host] = {
                "host": failure.host,
                "reachable": not failure.unreachable,
                "error": f"{failure.task}: {failure.message}",
                "healthy": False,
                "dph_total": None,
                "budget": None,
            }
        else:
            errors.append({"host": failure.host, "task": failure.task, "message": failure.message})
    records = [hosts[name] for name in sorted(hosts)]
    for record in records:
        record["health"] = health(record)
        if record["dph_total"] is None:  # the inventory's price, from the workstation
            record["dph_total"] = _price(known_prices.get(record["host"]))
        # the host's own vast_* first, else what the workstation's inventory knows of it
        seen = summaries.get(record["host"], {})
        known = known_costs.get(record["host"])
        fallback: dict[str, Any] = known if isinstance(known, dict) else {}
        fields = {k: seen.get(k) if seen.get(k) not in (None, "") else fallback.get(k)
                  for k in COST_FIELDS}
        if fields["dph_total"] in (None, ""):
            fields["dph_total"] = record["dph_total"]
        record["cost"] = cost_record(fields, when)
        if record["dph_total"] is None:
            record["dph_total"] = _price(fields["dph_total"])
        last = (last_counts or {}).get(record["host"])
        if not record["reachable"] and record["budget"] is None and last is not None:
            record["budget"] = {**last["budget"], "as_of": last["read_at"]}
    summary = fleet(records)
    summary["cost"] = cost_total(records)
    summary["budget"] = budget_total(records)
    return {
        "hosts": records,
        "errors": errors,
        "fleet": summary,
        "gateway": gateway_record(workstation.get("gateway")) if workstation else None,
    }


def exit_code(report: dict[str, Any], outcome: RunOutcome) -> int:
    """1 when the run failed apart from the GPU hosts it reports on (the workstation's tasks,
    ansible itself), else 3 when the fleet is not all healthy, else 0."""
    if report["errors"] or (not outcome.ok and not outcome.log.failures()):
        return EXIT_FAILED
    return 0 if report["fleet"]["state"] == "healthy" else EXIT_DEGRADED
