"""One rich table per GPU host for ``vastllm status``."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
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


def host_view(record: dict[str, Any]) -> RenderableType:
    host = str(record.get("host"))
    if record.get("error"):
        head = "unreachable" if not record.get("reachable") else "could not be read"
        return Group(
            Text.assemble((host, "bold"), ": ", (head, "bold red")),
            Text("  " + str(record["error"]).replace("\n", "\n  ")),
        )
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
    ]
    for what, state, detail in rows:
        table.add_row(what, state, detail)
    parts: list[RenderableType] = [table]
    parts += [Text(f"  problem: {p}", style="red") for p in problems]
    return Group(*parts)
