"""``vastllm status`` in rich tables: the fleet (a row per GPU host, the verdict, the gateway),
then one table per GPU host."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from rich.console import Group, JustifyMethod, RenderableType
from rich.table import Table
from rich.text import Text

GIB = 1024**3


def _gib(value: Any) -> str:
    return f"{value / GIB:.1f} GiB" if isinstance(value, int | float) else "?"


def _service_rows(record: dict[str, Any]) -> list[tuple[str, Text, str]]:
    rows = []
    if record.get("supervisord") is not None:
        up = bool(record["supervisord"])
        rows.append(("supervisord", _state(up, "running", "not running"), ""))
    services = record.get("services") or []
    for service in services:
        health = service.get("health")
        detail = "" if health is None else f"health {health if health != -1 else 'no answer'}"
        state = _state(bool(service.get("running")), "running", service.get("state") or "stopped")
        rows.append((f"service {service.get('name')}", state, detail))
    if not services:
        rows.append(("services", Text("none installed", style="yellow"), ""))
    if record.get("redis"):
        rows.append(("redis", Text(str(record["redis"])), "PING"))
    return rows


def _state(ok: bool, good: str, bad: str) -> Text:
    return Text(good, style="green") if ok else Text(bad, style="red")


def _model_row(record: dict[str, Any]) -> tuple[str, Text, str]:
    model = record.get("active_model")
    if not model:
        return ("active model", Text("none", style="yellow"), "/etc/vastllm/active_model.json")
    if "error" in model:
        return ("active model", Text("unreadable", style="red"), str(model["error"]))
    details = [f"{k} {model[k]}" for k in ("served_by", "engine", "context_length") if model.get(k)]
    if model.get("fallback_reason"):
        details.append(f"fallback: {model['fallback_reason']}")
    return ("active model", Text(str(model.get("name"))), ", ".join(details))


def _gpu_rows(record: dict[str, Any]) -> list[tuple[str, Text, str]]:
    gpu = record.get("gpu") or {}
    rows = []
    for g in gpu.get("gpus") or []:
        used, total = g.get("memory_used_mib"), g.get("memory_total_mib")
        vram = f"{used} / {total} MiB VRAM used" if total is not None else "VRAM not reported"
        rows.append((f"GPU {g.get('index')}", Text(str(g.get("name"))), vram))
    if not rows:
        problem = gpu.get("problem")
        rows.append(
            (
                "GPU",
                Text("none: CPU mode", style="yellow"),
                str(problem) if problem else "no NVIDIA GPU or driver",
            )
        )
    return rows


def _disk_row(record: dict[str, Any]) -> tuple[str, Text, str]:
    disk = record.get("disk") or {}
    return (
        "disk",
        Text(f"{_gib(disk.get('free_bytes'))} free"),
        f"of {_gib(disk.get('total_bytes'))} on {disk.get('path')}",
    )


def _cache_row(record: dict[str, Any]) -> tuple[str, Text, str]:
    cache = record.get("cache")
    if not cache:
        return ("cache", Text("no metrics", style="yellow"), "the proxy's /metrics did not answer")
    ratio = cache.get("hit_ratio")
    shown = "no requests yet" if ratio is None else f"{100 * ratio:.1f} % hits"
    return ("cache", Text(shown), f"{cache.get('hits')} hits, {cache.get('misses')} misses")


def _tunnel_rows(record: dict[str, Any]) -> list[tuple[str, Text, str]]:
    tunnels = record.get("tunnels")
    if tunnels is None:
        return [("tunnel", Text("not checked", style="yellow"), "no workstation in the run")]
    if not tunnels:
        return [("tunnel", Text("none", style="yellow"), "not in tunnel_hosts")]
    rows = []
    for t in tunnels:
        where = f"http://127.0.0.1:{t.get('local_port')}"
        if not t.get("checked"):
            rows.append((f"tunnel {t.get('name')}", Text("not checked"), where))
        elif t.get("answered"):
            rows.append((f"tunnel {t.get('name')}", Text("up", style="green"), where))
        else:
            down = Text("down", style="red")
            rows.append((f"tunnel {t.get('name')}", down, f"{where}: no answer"))
    return rows


def _percent(used: float) -> str:
    """``12 %``, rounded down: 79.9 % of a budget is not yet its warning's 80 %."""
    return f"{int(100 * used)} %"


def _budget_rows(record: dict[str, Any]) -> list[tuple[str, Text, str]]:
    """The idle watcher's count against the budget; nothing where there is no budget."""
    budget = record.get("budget")
    if not budget:
        return []
    limit = f"${budget['limit_usd']:.2f}"
    spent, used = budget.get("spent_usd"), budget.get("used")
    if spent is None or used is None:
        why = "the idle watcher has not counted (no spend.json: run site.yml, tag idle_stop)"
        return [("budget", Text("no count", style="yellow"), f"{limit} budget; {why}")]
    shown = f"spend ${spent:.2f} of {limit} budget ({_percent(used)})"
    state = budget.get("state")
    last = _as_of(budget)
    if state == "stopped":
        why = f"{shown}: the idle watcher asked Vast.ai to stop the instance{last}"
        return [("budget", Text("stopped by budget", style="red"), why)]
    if state == "warned":
        why = f"80 % or more: the idle watcher stops the instance at 100 %{last}"
        return [("budget", Text(f"! {shown}", style="yellow"), why)]
    why = f"the idle watcher's count: a warning at 80 %, a stop at 100 %{last}"
    return [("budget", Text(shown), why)]


def _as_of(budget: dict[str, Any]) -> str:
    """For a count read by an earlier status (the host does not answer now): when, else ""."""
    as_of = budget.get("as_of")
    if not isinstance(as_of, int | float):
        return ""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(as_of))
    return f" (last read {when}: the host does not answer now)"


def host_view(record: dict[str, Any]) -> RenderableType:
    host = str(record.get("host"))
    if record.get("error"):
        head = "unreachable" if not record.get("reachable") else "could not be read"
        lines = [
            Text.assemble((host, "bold"), ": ", (head, "bold red")),
            Text("  " + str(record["error"]).replace("\n", "\n  ")),
        ]
        for what, state, detail in _budget_rows(record):  # a count read earlier
            lines.append(Text.assemble("  ", what, ": ", state, " - ", detail))
        return Group(*lines)
    problems = record.get("problems") or []
    verdict = (
        Text("healthy", style="bold green")
        if not problems
        else Text(f"{len(problems)} problem(s)", style="bold red")
    )
    table = Table(
        title=Text.assemble((host, "bold"), " — ", verdict, f" (init: {record.get('init')})"),
        title_justify="left",
    )
    table.add_column("what")
    table.add_column("state")
    table.add_column("detail", overflow="fold")
    rows = [
        *_service_rows(record),
        _model_row(record),
        *_gpu_rows(record),
        _disk_row(record),
        _cache_row(record),
        *_tunnel_rows(record),
        *_budget_rows(record),
    ]
    for what, state, detail in rows:
        table.add_row(what, state, detail)
    parts: list[RenderableType] = [table]
    parts += [Text(f"  problem: {p}", style="red") for p in problems]
    return Group(*parts)


def _gpu_cell(record: dict[str, Any]) -> str:
    gpu = record.get("gpu")
    if not isinstance(gpu, dict):
        return "?"
    names = Counter(str(g.get("name")) for g in gpu.get("gpus") or [])
    return ", ".join(f"{name} x{n}" for name, n in names.items()) or "CPU"


def _model_cells(record: dict[str, Any]) -> tuple[str, str]:
    """(engine, model) of the host's active model."""
    if record.get("error"):
        return ("?", "?")
    model = record.get("active_model")
    if not model:
        return ("", "none")
    if "error" in model:
        return ("", "unreadable")
    return (str(model.get("served_by") or model.get("engine") or ""), str(model.get("name")))


def _health_cell(record: dict[str, Any]) -> Text:
    word = str(record.get("health"))
    return Text(word, style="green" if word == "healthy" else "red")


def _load_cells(record: dict[str, Any]) -> tuple[str, str]:
    """(requests in flight, output tokens/s) from the host proxy's /metrics."""
    load = record.get("load")
    if not load:
        return ("?", "?")
    rate = load.get("output_tokens_per_second")
    return (str(load.get("in_flight")), "?" if rate is None else f"{rate:.1f}")


def _price_cell(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else ""


def _uptime(seconds: Any) -> str:
    """``3d 4h``, ``5h 07m``, ``12m``; empty when not known."""
    if not isinstance(seconds, int | float):
        return ""
    minutes = int(seconds) // 60
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {mins:02d}m" if hours else f"{mins}m"


def _cost_cells(record: dict[str, Any]) -> tuple[str, str, str]:
    """(disk $/h, uptime, estimated spend since start) of a Vast.ai host."""
    cost = record.get("cost") or {}
    spend = cost.get("spend_since_start_estimate_usd")
    storage = cost.get("storage_per_hour")
    small = isinstance(storage, int | float) and 0 < storage < 0.001
    return (
        "<0.001" if small else _price_cell(storage),
        _uptime(cost.get("uptime_seconds")),
        f"{spend:.2f}" if isinstance(spend, int | float) else "",
    )


def _budget_cell(record: dict[str, Any]) -> Text:
    """``spent / budget (N %)`` by the idle watcher's count, ``!`` from 80 %, ``stopped by
    budget`` at 100 %, ``no count / budget`` before the watcher counted; empty without a
    budget."""
    budget = record.get("budget")
    if not budget:
        return Text("")
    spent, used = budget.get("spent_usd"), budget.get("used")
    if spent is None or used is None:
        return Text(f"no count / {budget['limit_usd']:.2f}", style="yellow")
    state = budget.get("state")
    if state == "stopped":
        return Text("stopped by budget", style="red")  # the host's budget row has the figures
    shown = f"{spent:.2f} / {budget['limit_usd']:.2f} ({_percent(used)})"
    if "as_of" in budget:  # an earlier status's count: the host's budget row says when
        shown = f"last {shown}"
    if state == "warned":
        return Text(f"! {shown}", style="yellow")
    return Text(shown)


def _gateway_line(gateway: dict[str, Any]) -> Text:
    if not gateway.get("enabled"):
        return Text(
            "gateway: off (tunnel_gateway or vastllm_tunnel false, or no GPU host)", style="yellow"
        )
    head = Text.assemble("gateway ", (str(gateway.get("url")), "bold"), ": ")
    if not gateway.get("up"):
        return head.append("down", style="red").append(" (its /health did not answer)")
    upstreams = gateway.get("upstreams") or []
    status = str(gateway.get("status"))
    head.append("up", style="green").append(f" ({status}), ")
    healthy = gateway.get("healthy_upstreams")
    style = "green" if healthy == len(upstreams) else "red"
    return head.append(f"{healthy} of {len(upstreams)} upstreams healthy", style=style)


def _budget_total(summary: dict[str, Any]) -> str:
    """``, $S of $B budget spent`` over the hosts the idle watcher counts on; empty: none."""
    budget = summary.get("budget")
    if not budget:
        return ""
    return f", ${budget['spent_usd']:.2f} of ${budget['limit_usd']:.2f} budget spent"


def fleet_view(report: dict[str, Any]) -> RenderableType:
    """The fleet table (host, GPU, engine, model, health, requests in flight, output tokens/s,
    $/h (``dph_total``: compute and disk), disk $/h, uptime, ~$ since start (uptime x $/h, an
    estimate), budget $ (the idle watcher's count of the spend against ``vastllm_max_spend_usd``;
    only where a host has a budget)), the verdict ``fleet: N of M hosts healthy — state`` with
    the totals, and the gateway line."""
    table = Table(title=Text("fleet", style="bold"), title_justify="left")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("host", "left"),
        ("GPU", "left"),
        ("engine", "left"),
        ("model", "left"),
        ("health", "left"),
        ("in flight", "right"),
        ("tokens/s", "right"),
        ("$/h", "right"),
        ("disk $/h", "right"),
        ("up", "right"),
        ("~$ since start", "right"),
    )
    budgets = any(record.get("budget") for record in report["hosts"])
    if budgets:
        columns += (("budget $", "right"),)
    for name, justify in columns:
        table.add_column(name, justify=justify, overflow="fold")
    for record in report["hosts"]:
        table.add_row(
            str(record.get("host")),
            _gpu_cell(record),
            *_model_cells(record),
            _health_cell(record),
            *_load_cells(record),
            _price_cell(record.get("dph_total")),
            *_cost_cells(record),
            *([_budget_cell(record)] if budgets else []),
        )
    summary = report["fleet"]
    state = str(summary["state"])
    verdict = Text.assemble(
        ("fleet", "bold"),
        f": {summary['healthy']} of {summary['hosts']} hosts healthy — ",
        (state, "bold green" if state == "healthy" else "bold red"),
    )
    if summary.get("dph_total") is not None:
        cost = summary.get("cost") or {}
        spend = cost.get("spend_since_start_estimate_usd")
        storage = cost.get("storage_per_hour")
        extra = f", disk ${storage:.3f}/h of it" if storage is not None else ""
        if spend is not None:
            extra += f", ~${spend:.2f} since start (estimated)"
        verdict.append(f" (${summary['dph_total']:.3f}/h{extra}{_budget_total(summary)})")
    elif summary.get("budget"):
        verdict.append(f" ({_budget_total(summary).removeprefix(', ')})")
    parts: list[RenderableType] = [table, verdict]
    if report.get("gateway") is not None:
        parts.append(_gateway_line(report["gateway"]))
    return Group(*parts)
