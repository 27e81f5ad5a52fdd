"""``vastllm status`` for real: this machine as a GPU host (local connection: no vastllm
services, no GPU), a GPU host nobody answers for, the workstation's tunnels pointing at a real
proxy (and at a closed port) on the ports of the hosts' tunnel slots with the gateway on, a real
proxy's /health as the gateway's, and the proxy's real /metrics after a cache miss and a hit."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tests.cli.conftest import (
    assert_clean,
    closed_port_host,
    invoke,
    local_host,
    start_proxy,
    write_inventory,
)
from tests.proxy.conftest import OllamaDouble, Proxy, RedisServer
from tests.support import REPO, free_port
from vastllm.cli.errors import EXIT_DEGRADED
from vastllm.cli.status_view import fleet_view, host_view
from vastllm.idle.budget import SpendState

NO_KEYS: dict[str, str | None] = {"VASTLLM_PROXY_API_KEY": None, "ANTHROPIC_AUTH_TOKEN": None}


@pytest.fixture(scope="module")
def cached_proxy(
    cli_workdir: Path, double: OllamaDouble, active_model_file: Path, redis_server: RedisServer
) -> Iterator[Proxy]:
    p = start_proxy(cli_workdir, double, active_model_file, redis_url=redis_server.url)
    yield p
    p.stop()


def services_defined_here() -> list[str]:
    """What the recovery role's diagnosis should find on this machine, read independently."""
    if Path("/run/systemd/system").is_dir():
        found = Path("/etc/systemd/system").glob("vastllm-*.service")
    else:
        found = Path("/etc/supervisor/conf.d").glob("vastllm-*.conf")
    return sorted(p.name.rsplit(".", 1)[0] for p in found)


def nearest_existing(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def active_model_here() -> dict[str, Any] | None:
    path = Path("/etc/vastllm/active_model.json")
    return json.loads(path.read_text()) if path.exists() else None


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, cached_proxy: Proxy) -> dict[str, Any]:
    # the same deterministic question twice: a cache miss, then a hit
    for _ in range(2):
        asked = invoke(
            "chat", "status probe", "--url", cached_proxy.url, "--temperature", "0", env=NO_KEYS
        )
        assert asked.exit_code == 0, asked.output
    here = tmp_path_factory.mktemp("status")
    # the idle watcher's count on this machine, as it writes it: $1.70 of a $2 budget (85 %)
    SpendState(7, 1.7, 2.0).save(here / "idle" / "spend.json")
    inventory = write_inventory(
        here / "hosts.yml",
        {
            "this-machine": local_host(
                vast_dph_total=0.5, vast_storage_total_cost=0.02, vast_cur_state="running",
                vast_start_date=time.time() - 2 * 3600,  # started 2 h ago
                vastllm_max_spend_usd=2.0, idle_stop_dir=str(here / "idle")),
            "gpu-gone": closed_port_host(),
        },
        {"localhost": local_host()},
        # what the Vast.ai inventory gives every one of its hosts
        {"vast_dph_total": 0.25, "vast_storage_total_cost": 0.01,
         "vast_start_date": time.time() - 10 * 3600},
    )
    # this-machine holds slot 1 (its inventory position is 0): its ports are those of slot 1,
    # the proxy tunnel's moved to tunnel_gateway_hosts_port by the gateway
    slots = here / "tunnel-slots.json"
    slots.write_text(json.dumps({"gpu-gone": 0, "this-machine": 1}))
    stride = 10
    forwards = [
        {"name": "proxy", "remote_port": 8082, "local_port": 8082},
        {"name": "spare", "remote_port": 9, "local_port": free_port() - stride},
    ]
    health = {"proxy": f"{cached_proxy.url}/health"}
    result = invoke(
        "--project-dir",
        str(REPO),
        "-i",
        str(inventory),
        "-e",
        f"tunnel_forwards={json.dumps(forwards)}",
        "-e",
        f"tunnel_port_stride={stride}",
        "-e",
        f"tunnel_slots_file={slots}",
        "-e",
        "tunnel_gateway=true",
        "-e",
        f"tunnel_gateway_hosts_port={cached_proxy.port - stride}",
        # the gateway is the project's proxy: a real one's /health stands in for it
        "-e",
        f"tunnel_gateway_port={cached_proxy.port}",
        "-e",
        f"recovery_health_urls={json.dumps(health)}",
        "status",
        "--json",
        env={"VASTLLM_STATE": str(here / "state")},  # its budget_counts.json, not this user's
    )
    assert_clean(result)
    # gpu-gone could not be read: the run worked, the fleet is not all healthy
    assert result.exit_code == EXIT_DEGRADED, result.output
    data: dict[str, Any] = json.loads(result.stdout)  # stdout is the JSON alone
    data["_ports"] = {"proxy": cached_proxy.port, "spare": forwards[1]["local_port"] + stride}
    data["_slots"] = (slots, slots.read_text())
    data["_stderr"] = result.stderr
    data["_state"] = here / "state"
    return data


def record(report: dict[str, Any], host: str) -> dict[str, Any]:
    found = [h for h in report["hosts"] if h["host"] == host]
    assert len(found) == 1, report["hosts"]
    return found[0]


def test_one_record_per_gpu_host_and_no_other_errors(report: dict[str, Any]) -> None:
    assert [h["host"] for h in report["hosts"]] == ["gpu-gone", "this-machine"]
    assert report["errors"] == []


def test_unreachable_host_says_why(report: dict[str, Any]) -> None:
    gone = record(report, "gpu-gone")
    assert gone["reachable"] is False
    assert gone["healthy"] is False
    assert "Connection refused" in gone["error"]


def test_services_model_and_problems_of_this_machine(report: dict[str, Any]) -> None:
    here = record(report, "this-machine")
    assert here["reachable"] is True
    assert here["error"] is None
    names = [s["name"] for s in here["services"]]
    assert names == services_defined_here()
    assert "vastllm-proxy" not in names  # this machine is no GPU host
    assert here["active_model"] == active_model_here()
    assert here["healthy"] is (here["problems"] == [])


def test_gpu_disk_and_memory_of_this_machine(report: dict[str, Any]) -> None:
    here = record(report, "this-machine")
    assert shutil.which("nvidia-smi") is None, "these expectations are for a machine without GPU"
    assert here["gpu"]["mode"] == "cpu"
    assert here["gpu"]["gpus"] == []
    disk = here["disk"]
    assert disk["path"] == str(nearest_existing(Path("/workspace/models")))
    assert disk["free_bytes"] > 0
    assert disk["total_bytes"] >= disk["free_bytes"]
    assert here["memory"]["total_bytes"] >= here["memory"]["available_bytes"] > 0


def test_cache_hits_from_the_proxy_metrics(report: dict[str, Any]) -> None:
    assert record(report, "this-machine")["cache"] == {"hits": 1, "misses": 1, "hit_ratio": 0.5}


def test_tunnels_checked_from_the_workstation(report: dict[str, Any]) -> None:
    ports = report["_ports"]
    tunnels = record(report, "this-machine")["tunnels"]
    assert [(t["name"], t["local_port"], t["checked"]) for t in tunnels] == [
        ("proxy", ports["proxy"], True),
        ("spare", ports["spare"], True),
    ]
    assert tunnels[0]["answered"] is True
    assert tunnels[0]["status"] in (200, 503)
    assert tunnels[1]["answered"] is False


def test_the_slots_file_is_only_read(report: dict[str, Any]) -> None:
    slots, before = report["_slots"]
    assert slots.read_text() == before


def test_load_and_price_of_each_host(report: dict[str, Any]) -> None:
    here = record(report, "this-machine")
    assert here["load"]["in_flight"] == 0
    assert here["load"]["output_tokens_per_second"] > 0  # the cache miss's answer, just now
    assert here["dph_total"] == 0.5  # its own vast_dph_total
    assert record(report, "gpu-gone")["dph_total"] == 0.25  # the inventory's, as no answer came


def test_spend_of_each_host_and_in_total(report: dict[str, Any]) -> None:
    here, gone = record(report, "this-machine")["cost"], record(report, "gpu-gone")["cost"]
    assert (here["per_hour"], here["storage_per_hour"], here["compute_per_hour"]) == (
        0.5, 0.02, 0.48)
    assert here["state"] == "running"
    assert 2 * 3600 <= here["uptime_seconds"] < 2 * 3600 + 300
    assert 1.0 <= here["spend_since_start_estimate_usd"] < 1.05  # 2 h at $0.5/h
    # not read: its price and start from the workstation's inventory
    assert (gone["per_hour"], gone["storage_per_hour"]) == (0.25, 0.01)
    assert 2.5 <= gone["spend_since_start_estimate_usd"] < 2.55  # 10 h at $0.25/h
    total = report["fleet"]["cost"]
    assert (total["hosts"], total["per_hour"], total["storage_per_hour"]) == (2, 0.75, 0.03)
    assert total["spend_since_start_estimate_usd"] == pytest.approx(
        here["spend_since_start_estimate_usd"] + gone["spend_since_start_estimate_usd"], abs=1e-3)


def test_budget_counted_by_the_idle_watcher(report: dict[str, Any]) -> None:
    """this-machine's spend.json, read by status.yml (read-only); gpu-gone could not be read."""
    assert record(report, "this-machine")["budget"] == {
        "limit_usd": 2.0, "spent_usd": 1.7, "used": 0.85, "state": "warned"}
    assert record(report, "gpu-gone")["budget"] is None
    # kept on the workstation for when the host no longer answers (stopped by that budget)
    kept = json.loads((report["_state"] / "budget_counts.json").read_text())
    assert set(kept) == {"this-machine"}
    assert kept["this-machine"]["budget"] == record(report, "this-machine")["budget"]


def test_fleet_verdict(report: dict[str, Any]) -> None:
    here = record(report, "this-machine")
    assert record(report, "gpu-gone")["health"] == "unreachable"
    # this machine is healthy unless the diagnosis finds problems here (no supervisord, ...)
    n = len(here["problems"])
    assert here["health"] == ("healthy" if n == 0 else f"{n} problem{'s' if n > 1 else ''}")
    assert report["fleet"] == {
        "hosts": 2,
        "healthy": int(n == 0),
        "state": "degraded" if n == 0 else "down",
        "dph_total": 0.75,
        "cost": report["fleet"]["cost"],  # test_spend_of_each_host_and_in_total
        "budget": {"hosts": 1, "spent_usd": 1.7, "limit_usd": 2.0},
    }


def test_gateway_health(report: dict[str, Any]) -> None:
    assert report["gateway"] == {
        "enabled": True,
        "url": f"http://127.0.0.1:{report['_ports']['proxy']}",
        "up": True,
        "status": "ok",
        "upstreams": [{"name": "main", "healthy": True, "outstanding": 0}],
        "healthy_upstreams": 1,
    }


def test_tables_show_the_same_records(report: dict[str, Any]) -> None:
    console = Console(record=True, width=160, color_system=None)
    for host in report["hosts"]:
        console.print(host_view(host))
    text = console.export_text()
    assert "gpu-gone: unreachable" in text
    assert "this-machine —" in text
    assert "none: CPU mode" in text
    assert "50.0 % hits" in text
    assert "1 hits, 1 misses" in text
    proxy_port = report["_ports"]["proxy"]
    assert re.search(r"tunnel proxy\s*│\s*up\s", text)
    assert f"http://127.0.0.1:{proxy_port}" in text
    assert re.search(r"tunnel spare\s*│\s*down\s", text)
    assert "│ ! spend $1.70 of $2.00 budget (85 %) │" in text


def test_fleet_table_shows_the_same_records(report: dict[str, Any]) -> None:
    console = Console(record=True, width=160, color_system=None)
    console.print(fleet_view(report))
    text = console.export_text()
    assert re.search(r"gpu-gone\s*│\s*\?\s*│.*│\s*unreachable\s*│.*│\s*0\.250\s*│", text)
    here = record(report, "this-machine")
    row = r"this-machine\s*│\s*CPU\s*│.*│\s*" + re.escape(here["health"]) + r"\s*│\s*0\s*│"
    assert re.search(row + r"\s*[0-9.]+\s*│\s*0\.500\s*│", text)
    fleet = report["fleet"]
    spend = fleet["cost"]["spend_since_start_estimate_usd"]
    assert (f"fleet: {fleet['healthy']} of 2 hosts healthy — {fleet['state']} ($0.750/h, disk "
            f"$0.030/h of it, ~${spend:.2f} since start (estimated), $1.70 of $2.00 budget "
            "spent)") in text
    assert re.search(r"0\.500\s*│\s*0\.020\s*│\s*2h 0\dm\s*│\s*1\.0\d\s*│", text)
    url = report["gateway"]["url"]
    assert f"gateway {url}: up (ok), 1 of 1 upstreams healthy" in text
    assert re.search(r"1\.0\d\s*│\s*! 1\.70 / 2\.00 \(85 %\)\s*│", text)


def test_progress_went_to_stderr(report: dict[str, Any]) -> None:
    assert "playbooks/status.yml: starting" in report["_stderr"]
    assert "Sum up the host for vastllm status" in report["_stderr"]
