"""``vastllm status`` for real: this machine as a GPU host (local connection: no vastllm
services, no GPU), a GPU host nobody answers for, the workstation's tunnels pointing at a real
proxy (and at a closed port), and the proxy's real /metrics after a cache miss and a hit."""

from __future__ import annotations

import json
import re
import shutil
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
from vastllm.cli.status_view import host_view

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
    inventory = write_inventory(
        tmp_path_factory.mktemp("status") / "hosts.yml",
        {"this-machine": local_host(), "gpu-gone": closed_port_host()},
        {"localhost": local_host()},
    )
    forwards = [
        {"name": "proxy", "remote_port": 8082, "local_port": cached_proxy.port},
        {"name": "spare", "remote_port": 9, "local_port": free_port()},
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
        f"recovery_health_urls={json.dumps(health)}",
        "status",
        "--json",
    )
    assert_clean(result)
    assert result.exit_code == 1, result.output  # gpu-gone could not be read
    data: dict[str, Any] = json.loads(result.stdout)  # stdout is the JSON alone
    data["_forwards"] = forwards
    data["_stderr"] = result.stderr
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
    proxy, spare = report["_forwards"]
    tunnels = record(report, "this-machine")["tunnels"]
    assert [(t["name"], t["local_port"], t["checked"]) for t in tunnels] == [
        ("proxy", proxy["local_port"], True),
        ("spare", spare["local_port"], True),
    ]
    assert tunnels[0]["answered"] is True
    assert tunnels[0]["status"] in (200, 503)
    assert tunnels[1]["answered"] is False


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
    proxy_port = report["_forwards"][0]["local_port"]
    assert re.search(r"tunnel proxy\s*│\s*up\s", text)
    assert f"http://127.0.0.1:{proxy_port}" in text
    assert re.search(r"tunnel spare\s*│\s*down\s", text)


def test_progress_went_to_stderr(report: dict[str, Any]) -> None:
    assert "playbooks/status.yml: starting" in report["_stderr"]
    assert "Sum up the host for vastllm status" in report["_stderr"]
