"""``vastllm status``'s fleet table, verdict, gateway line and exit code, from the events of a
run of playbooks/status.yml over three GPU hosts that this machine cannot be (two H100s serving
through vLLM, a CPU host with a problem, an unreachable one), with the host proxy's /metrics as
the proxy itself renders them."""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console

from tests.doubles.vastai_api_double import make_instance
from vastllm.cli import plays
from vastllm.cli.errors import EXIT_DEGRADED, EXIT_FAILED
from vastllm.cli.events import EventLog
from vastllm.cli.runner import RunOutcome
from vastllm.cli.status import GPU_PLAY, build_report, exit_code
from vastllm.cli.status_view import fleet_view
from vastllm.proxy.metrics import RATE_WINDOW, Metrics, UpstreamGauge

WORKSTATION_PLAY = "Check this workstation's tunnels to the GPU hosts"
H100 = "NVIDIA H100 80GB HBM3"


def host_metrics() -> str:
    """A host proxy's /metrics: 3 requests in flight over two upstreams, 10 tokens/s out."""
    metrics = Metrics(clock=lambda: 100.0)
    metrics.tokens(1000, 10 * RATE_WINDOW)
    gauges = [UpstreamGauge("vllm", True, 2), UpstreamGauge("model-api", True, 1)]
    return metrics.render(gauges, True).decode()


def summary(host: str, **extra: Any) -> dict[str, Any]:
    """A ``vastllm_status`` as status.yml shows it."""
    return {
        "host": host,
        "healthy": not extra.get("problems"),
        "problems": [],
        "init": "supervisord",
        "supervisord": True,
        "services": [],
        "redis": "PONG",
        "active_model_raw": None,
        "gpu": {"mode": "cpu", "gpus": []},
        "capacity": {},
        "metrics": None,
        "tunnels": [{"name": "proxy", "local_port": 18082, "checked": True, "answered": True}],
        "dph_total": None,
        **extra,
    }


def serving() -> dict[str, Any]:
    gpus = [{"index": i, "name": H100, "memory_total_mib": 81559} for i in (0, 1)]
    return summary(
        "gpu-a",
        active_model_raw='{"name": "qwen3-coder-30b", "engine": "anthropic", "served_by": "vllm"}',
        gpu={"mode": "gpu", "gpus": gpus},
        metrics=host_metrics(),
        dph_total=1.234,
    )


def gateway(*healthy: bool) -> dict[str, Any]:
    upstreams = [
        {"name": f"gpu-{n}", "healthy": h, "outstanding": 3 if h else 0}
        for n, h in zip("abc", healthy, strict=False)
    ]
    return {
        "enabled": True,
        "url": "http://127.0.0.1:8082",
        "http_status": 200,
        "health": {"status": "ok" if all(healthy) else "degraded", "upstreams": upstreams},
    }


def event(kind: str, host: str, play: str, task: str, res: dict[str, Any]) -> dict[str, Any]:
    data = {"host": host, "play": play, "task": task, "res": res}
    return {"event": kind, "event_data": data}


def outcome(
    hosts: list[dict[str, Any]],
    unreachable: tuple[str, ...] = (),
    fleet: dict[str, Any] | None = None,
    workstation_failed: bool = False,
) -> RunOutcome:
    log = EventLog(collect=(plays.STATUS_VAR, plays.FLEET_VAR))
    events = []
    if fleet is not None:
        task = "Sum up the workstation for vastllm status"
        events.append(event("runner_on_ok", "localhost", WORKSTATION_PLAY, task, fleet))
    if workstation_failed:
        task = "Ask each forwarded port for its health page"
        events.append(event("runner_on_failed", "localhost", WORKSTATION_PLAY, task, {"msg": "x"}))
    for name in unreachable:
        res = {"msg": "ssh: connect to host 10.0.0.3 port 22: Connection refused"}
        task = "Look for a running systemd (sd_booted checks /run/systemd/system)"
        events.append(event("runner_on_unreachable", name, GPU_PLAY, task, res))
    for s in hosts:
        task = "Sum up the host for vastllm status"
        events.append(event("runner_on_ok", s["host"], GPU_PLAY, task, {plays.STATUS_VAR: s}))
    stats = {
        "ok": {s["host"]: 20 for s in hosts},
        "dark": dict.fromkeys(unreachable, 1),
        "failures": {"localhost": 1} if workstation_failed else {},
    }
    events.append({"event": "playbook_on_stats", "event_data": stats})
    for e in events:
        log.feed(e)
    ok = not unreachable and not workstation_failed
    return RunOutcome(plays.STATUS, "successful" if ok else "failed", 0 if ok else 2, log, 9.0)


def text_of(report: dict[str, Any]) -> str:
    console = Console(record=True, width=160, color_system=None)
    console.print(fleet_view(report))
    return console.export_text()


def row(text: str, *cells: str) -> bool:
    return re.search(r"│\s*" + r"\s*│\s*".join(map(re.escape, cells)) + r"\s*│", text) is not None


def test_fleet_with_one_host_down_is_degraded() -> None:
    problem = "service vastllm-proxy is not running"
    run = outcome(
        [serving(), summary("gpu-b", problems=[problem])],
        unreachable=("gpu-c",),
        fleet={
            plays.FLEET_VAR: {
                "gateway": gateway(True, False, False),
                "prices": {"gpu-a": 1.234, "gpu-b": None, "gpu-c": "0.4"},
            }
        },
    )
    report = build_report(run)
    assert [h["health"] for h in report["hosts"]] == ["healthy", "1 problem", "unreachable"]
    assert report["hosts"][0]["load"] == {"in_flight": 3, "output_tokens_per_second": 10.0}
    assert [h["dph_total"] for h in report["hosts"]] == [1.234, None, 0.4]
    cost = {"hosts": 2, "per_hour": 1.634, "compute_per_hour": None, "storage_per_hour": None,
            "spend_since_start_estimate_usd": None}  # a price alone: no disk part, no start
    assert report["fleet"] == {
        "hosts": 3, "healthy": 1, "state": "degraded", "dph_total": 1.634, "cost": cost}
    assert report["gateway"] == {
        "enabled": True,
        "url": "http://127.0.0.1:8082",
        "up": True,
        "status": "degraded",
        "upstreams": [
            {"name": "gpu-a", "healthy": True, "outstanding": 3},
            {"name": "gpu-b", "healthy": False, "outstanding": 0},
            {"name": "gpu-c", "healthy": False, "outstanding": 0},
        ],
        "healthy_upstreams": 1,
    }
    assert report["errors"] == []
    assert exit_code(report, run) == EXIT_DEGRADED

    text = text_of(report)
    header = ("host", "GPU", "engine", "model", "health", "in flight", "tokens/s", "$/h")
    assert row(text.replace("┃", "│"), *header)
    assert row(text, "gpu-a", f"{H100} x2", "vllm", "qwen3-coder-30b", "healthy", "3", "10.0")
    assert row(text, "gpu-b", "CPU", "", "none", "1 problem", "?", "?", "")
    assert row(text, "gpu-c", "?", "?", "?", "unreachable", "?", "?", "0.400")
    assert "fleet: 1 of 3 hosts healthy — degraded ($1.634/h)" in text
    assert "gateway http://127.0.0.1:8082: up (degraded), 1 of 3 upstreams healthy" in text
    # the table comes before everything else
    assert text.lstrip().startswith("fleet")


def test_all_healthy_exits_0_and_none_healthy_is_down() -> None:
    run = outcome([serving()], fleet={plays.FLEET_VAR: {"gateway": gateway(True), "prices": {}}})
    report = build_report(run)
    assert report["fleet"]["state"] == "healthy"
    assert exit_code(report, run) == 0
    assert "fleet: 1 of 1 hosts healthy — healthy ($1.234/h)" in text_of(report)

    tunnel_down = serving()
    tunnel_down["tunnels"][0]["answered"] = False
    off = {"enabled": False, "url": "http://127.0.0.1:8082", "http_status": None, "health": None}
    run = outcome([tunnel_down], unreachable=("gpu-c",), fleet={plays.FLEET_VAR: {"gateway": off}})
    report = build_report(run)
    assert [h["health"] for h in report["hosts"]] == ["tunnel down", "unreachable"]
    assert report["fleet"] == {
        "hosts": 2, "healthy": 0, "state": "down", "dph_total": 1.234,
        "cost": {"hosts": 1, "per_hour": 1.234, "compute_per_hour": None,
                 "storage_per_hour": None, "spend_since_start_estimate_usd": None}}
    assert report["gateway"]["enabled"] is False
    assert exit_code(report, run) == EXIT_DEGRADED
    text = text_of(report)
    assert "fleet: 0 of 2 hosts healthy — down" in text
    assert "gateway: off" in text


def test_a_failed_workstation_is_a_failed_run() -> None:
    run = outcome([serving()], workstation_failed=True)
    report = build_report(run)
    assert report["gateway"] is None  # no vastllm_fleet: the workstation stopped before
    assert report["fleet"]["state"] == "healthy"
    assert [e["host"] for e in report["errors"]] == ["localhost"]
    assert exit_code(report, run) == EXIT_FAILED
    assert "gateway" not in text_of(report)


def test_spend_from_the_api_doubles_prices() -> None:
    """$/h (compute and disk), uptime and the estimated spend since start, per host and in
    total, from the prices and start times the Vast.ai double carries (recorded ones): one host
    read (its vast_* in its summary), one unreachable (its vast_* from the workstation)."""
    rows = [make_instance(0, "gpu-a"), make_instance(1, "gpu-c", profile="a5000")]
    fields = ("dph_total", "storage_total_cost", "start_date", "cur_state")
    vast = [{k: row[k] for k in fields} for row in rows]
    now = vast[0]["start_date"] + 5 * 3600 + 7 * 60  # 5 h 07 m later
    costs = {"gpu-a": vast[0], "gpu-c": vast[1]}
    run = outcome(
        [{**serving(), **vast[0]}],
        unreachable=("gpu-c",),
        fleet={plays.FLEET_VAR: {"gateway": gateway(True), "prices": {}, "costs": costs}},
    )
    report = build_report(run, now=now)
    for record, v in zip(report["hosts"], vast, strict=True):
        uptime = now - v["start_date"]
        assert record["cost"] == {
            "per_hour": round(v["dph_total"], 8),
            "compute_per_hour": round(v["dph_total"] - v["storage_total_cost"], 8),
            "storage_per_hour": round(v["storage_total_cost"], 8),
            "state": "running",
            "uptime_seconds": round(uptime),
            "spend_since_start_estimate_usd": round(uptime / 3600 * v["dph_total"], 4),
        }
        assert record["cost"]["compute_per_hour"] > 0
    a, c = (h["cost"] for h in report["hosts"])
    assert [h["dph_total"] for h in report["hosts"]] == [v["dph_total"] for v in vast]
    total = report["fleet"]["cost"]
    assert total == {
        "hosts": 2,
        "per_hour": round(a["per_hour"] + c["per_hour"], 4),
        "compute_per_hour": round(a["compute_per_hour"] + c["compute_per_hour"], 4),
        "storage_per_hour": round(a["storage_per_hour"] + c["storage_per_hour"], 4),
        "spend_since_start_estimate_usd": round(
            a["spend_since_start_estimate_usd"] + c["spend_since_start_estimate_usd"], 4),
    }
    text = text_of(report)
    header = ("$/h", "disk $/h", "up", "~$ since start")
    assert row(text.replace("┃", "│"), *header)
    assert a["uptime_seconds"] == c["uptime_seconds"] == 5 * 3600 + 7 * 60  # one recorded start
    assert row(text, "healthy", "3", "10.0", f"{a['per_hour']:.3f}", "<0.001", "5h 07m",
               f"{a['spend_since_start_estimate_usd']:.2f}")  # the 4090's disk: $0.00001/h
    assert row(text, "unreachable", "?", "?", f"{c['per_hour']:.3f}",
               f"{c['storage_per_hour']:.3f}", "5h 07m",
               f"{c['spend_since_start_estimate_usd']:.2f}")
    assert f"~${total['spend_since_start_estimate_usd']:.2f} since start (estimated)" in text
