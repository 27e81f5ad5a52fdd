"""``vastllm status``'s fleet table, verdict, gateway line and exit code, from the events of a
run of playbooks/status.yml over three GPU hosts that this machine cannot be (two H100s serving
through vLLM, a CPU host with a problem, an unreachable one), with the host proxy's /metrics as
the proxy itself renders them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rich.console import Console

from tests.doubles.vastai_api_double import make_instance
from vastllm.cli import last_counts, plays
from vastllm.cli.errors import EXIT_DEGRADED, EXIT_FAILED
from vastllm.cli.events import EventLog
from vastllm.cli.runner import RunOutcome
from vastllm.cli.status import GPU_PLAY, build_report, exit_code
from vastllm.cli.status_view import fleet_view, host_view
from vastllm.idle.budget import SpendState
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


def host_text(record: dict[str, Any]) -> str:
    console = Console(record=True, width=160, color_system=None)
    console.print(host_view(record))
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
        "hosts": 3, "healthy": 1, "state": "degraded", "dph_total": 1.634, "cost": cost,
        "budget": None}
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
                 "storage_per_hour": None, "spend_since_start_estimate_usd": None},
        "budget": None}
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


# -- the idle watcher's count against the budget (vastllm_max_spend_usd) ----------------------


def budget(tmp: Path, limit: float, spent: float | None) -> dict[str, Any]:
    """status.yml's ``budget`` (the idle_stop role's ``idle_stop_spend``): the budget and the
    spend.json the watcher writes (by its own code), or none where it has not counted."""
    if spent is None:
        return {"limit_usd": limit, "state_raw": None}
    state_file = tmp / f"spend-{spent}.json"
    SpendState(7, spent, limit if spent >= 0.8 * limit else None).save(state_file)
    return {"limit_usd": limit, "state_raw": state_file.read_text()}


def with_budgets(tmp: Path, **spent: float | None) -> dict[str, Any]:
    """A report of a host per keyword (gpu-<name>), each with a $10 budget and that spend."""
    hosts = [summary(f"gpu-{name}", budget=budget(tmp, 10.0, value), dph_total=0.5)
             for name, value in spent.items()]
    return build_report(outcome(hosts))


def test_a_budget_under_80_percent(tmp_path: Path) -> None:
    report = with_budgets(tmp_path, a=1.234, b=7.99)
    a, b = (h["budget"] for h in report["hosts"])
    assert a == {"limit_usd": 10.0, "spent_usd": 1.234, "used": 0.1234, "state": "counting"}
    assert b["state"] == "counting"
    assert report["fleet"]["budget"] == {"hosts": 2, "spent_usd": 9.224, "limit_usd": 20.0}
    text = text_of(report)
    assert row(text.replace("┃", "│"), "$/h", "disk $/h", "up", "~$ since start", "budget $")
    assert row(text, "0.500", "", "", "", "1.23 / 10.00 (12 %)")
    assert row(text, "0.500", "", "", "", "7.99 / 10.00 (79 %)")  # rounded down: no warning
    assert "! " not in text
    assert "fleet: 2 of 2 hosts healthy — healthy ($1.000/h, $9.22 of $20.00 budget spent)" in text
    shown = host_text(report["hosts"][0])
    assert re.search(r"│ budget\s*│ spend \$1\.23 of \$10\.00 budget \(12 %\)\s*│ "
                     r"the idle watcher's count: a warning at 80 %, a stop at 100 %", shown)


def test_a_budget_at_and_over_80_percent_is_marked(tmp_path: Path) -> None:
    report = with_budgets(tmp_path, a=8.0, b=9.5)
    a, b = (h["budget"] for h in report["hosts"])
    assert a == {"limit_usd": 10.0, "spent_usd": 8.0, "used": 0.8, "state": "warned"}
    assert b["state"] == "warned"
    text = text_of(report)
    assert row(text, "0.500", "", "", "", "! 8.00 / 10.00 (80 %)")
    assert row(text, "0.500", "", "", "", "! 9.50 / 10.00 (95 %)")
    assert "$17.50 of $20.00 budget spent" in text
    shown = host_text(report["hosts"][1])
    assert "│ ! spend $9.50 of $10.00 budget (95 %) │" in shown
    assert "80 % or more: the idle watcher stops the instance at 100 %" in shown


def test_a_host_stopped_by_its_budget(tmp_path: Path) -> None:
    report = with_budgets(tmp_path, a=10.0004, b=2.0)
    stopped = report["hosts"][0]["budget"]
    assert stopped == {"limit_usd": 10.0, "spent_usd": 10.0004, "used": 1.0, "state": "stopped"}
    text = text_of(report)
    assert row(text, "0.500", "", "", "", "stopped by budget")
    assert row(text, "0.500", "", "", "", "2.00 / 10.00 (20 %)")
    assert "$12.00 of $20.00 budget spent" in text
    shown = host_text(report["hosts"][0])
    assert "│ stopped by budget │ spend $10.00 of $10.00 budget (100 %): the idle watcher asked " \
        "Vast.ai to stop the instance" in shown


def test_no_budget_shows_nothing_new(tmp_path: Path) -> None:
    """No budget (vastllm_max_spend_usd 0, or a summary without one): no column, no row, no
    total; a budget without a count yet (no spend.json, or an unreadable one) says so and is
    left out of the total."""
    hosts = [summary("gpu-a", budget={"limit_usd": 0.0, "state_raw": None}, dph_total=0.5),
             summary("gpu-b", dph_total=0.5)]
    report = build_report(outcome(hosts))
    assert [h["budget"] for h in report["hosts"]] == [None, None]
    assert report["fleet"]["budget"] is None
    text = text_of(report)
    assert "budget" not in text
    assert "fleet: 2 of 2 hosts healthy — healthy ($1.000/h)" in text
    assert all("budget" not in host_text(h) for h in report["hosts"])

    unread = {"limit_usd": 10.0, "state_raw": "{not json"}
    hosts = [summary("gpu-a", budget=budget(tmp_path, 10.0, None), dph_total=0.5),
             summary("gpu-b", budget=unread, dph_total=0.5),
             summary("gpu-c", budget=budget(tmp_path, 10.0, 3.0), dph_total=0.5)]
    report = build_report(outcome(hosts))
    a, b, c = (h["budget"] for h in report["hosts"])
    assert a == b == {"limit_usd": 10.0, "spent_usd": None, "used": None, "state": "no count"}
    assert c["state"] == "counting"
    assert report["fleet"]["budget"] == {"hosts": 1, "spent_usd": 3.0, "limit_usd": 10.0}
    text = text_of(report)
    assert row(text, "0.500", "", "", "", "no count / 10.00")
    assert "$3.00 of $10.00 budget spent" in text
    assert re.search(r"│ no count\s*│ \$10\.00 budget; the idle watcher has not counted",
                     host_text(report["hosts"][0]))


# -- the last count of a host that does not answer (src/vastllm/cli/last_counts.py) ----------

READ_AT = 1764680400.0  # 2025-12-02 13:00 UTC


def test_a_host_stopped_by_its_budget_shows_the_count_last_read(tmp_path: Path) -> None:
    """Stopped by its budget, the host no longer answers SSH: status shows the count an earlier
    status read, and when, in the table, the host's rows and the fleet's total."""
    earlier = with_budgets(tmp_path, c=10.0004, b=2.0)
    where = tmp_path / "budget_counts.json"
    last_counts.save(earlier, READ_AT, {}, where)
    assert oct(where.stat().st_mode & 0o777) == "0o600"
    kept = last_counts.load(where)
    assert set(kept) == {"gpu-b", "gpu-c"}

    # now gpu-c is stopped (unreachable) and gpu-b answers with a newer count
    hosts = [summary("gpu-b", budget=budget(tmp_path, 10.0, 3.0), dph_total=0.5)]
    report = build_report(outcome(hosts, unreachable=("gpu-c",)), last_counts=kept)
    b, c = report["hosts"]
    assert b["budget"] == {"limit_usd": 10.0, "spent_usd": 3.0, "used": 0.3, "state": "counting"}
    assert c["health"] == "unreachable"
    assert c["budget"] == {"limit_usd": 10.0, "spent_usd": 10.0004, "used": 1.0,
                           "state": "stopped", "as_of": READ_AT}
    assert report["fleet"]["budget"] == {"hosts": 2, "spent_usd": 13.0004, "limit_usd": 20.0}
    text = text_of(report)
    assert row(text, "stopped by budget")
    shown = host_text(c)
    assert "the idle watcher asked Vast.ai to stop the instance (last read 2025-12-02 13:00 " \
        "UTC: the host does not answer now)" in " ".join(shown.split())

    # saved again: gpu-b's new count, gpu-c's old one as it was read (not re-dated)
    last_counts.save(report, READ_AT + 600, kept, where)
    again = last_counts.load(where)
    assert again["gpu-b"]["read_at"] == READ_AT + 600
    assert again["gpu-b"]["budget"]["spent_usd"] == 3.0
    assert again["gpu-c"] == kept["gpu-c"]


def test_a_reachable_host_never_shows_an_old_count_and_old_counts_expire(tmp_path: Path) -> None:
    where = tmp_path / "budget_counts.json"
    last_counts.save(with_budgets(tmp_path, a=9.0), READ_AT, {}, where)
    hosts = [summary("gpu-a", budget=budget(tmp_path, 10.0, None), dph_total=0.5)]
    report = build_report(outcome(hosts), last_counts=last_counts.load(where))
    assert report["hosts"][0]["budget"]["state"] == "no count"  # what the host says now
    assert "as_of" not in report["hosts"][0]["budget"]
    # a month later an unreachable host's count is gone
    last_counts.save(report, READ_AT + last_counts.KEEP_SECONDS, last_counts.load(where), where)
    assert last_counts.load(where) == {}
    where.write_text("{not json")
    assert last_counts.load(where) == {}
    # an unreachable host without a count kept: no budget, as before
    report = build_report(outcome([], unreachable=("gpu-z",)), last_counts={})
    assert report["hosts"][0]["budget"] is None
