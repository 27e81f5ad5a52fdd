"""The project's real playbooks against a GPU host nobody answers for: exit 1, the host named,
'unreachable' and ansible's reason, never a traceback; `vastllm status` shows it unreachable and
the fleet degraded (exit 3) beside a healthy host, and exits 0 without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import (
    assert_clean,
    closed_port_host,
    flat,
    invoke,
    local_host,
    write_inventory,
)
from tests.support import REPO
from vastllm.cli.errors import EXIT_DEGRADED


@pytest.fixture
def dead_inventory(tmp_path: Path) -> Path:
    return write_inventory(tmp_path / "hosts.yml", {"gpu-gone": closed_port_host()})


@pytest.mark.parametrize(
    ("command", "playbook"), [("up", "site.yml"), ("recover", "playbooks/recover.yml")]
)
def test_unreachable_host_fails_the_run(dead_inventory: Path, command: str, playbook: str) -> None:
    result = invoke("--project-dir", str(REPO), "-i", str(dead_inventory), command)
    assert_clean(result)
    assert result.exit_code == 1, result.output
    assert "unreachable: gpu-gone at task" in result.stderr
    assert "Connection refused" in result.stderr
    assert "`vastllm wake` starts it again" in flat(result.stderr)  # a stopped instance?
    assert f"{playbook}: failed after" in result.stderr
    # the recap counts it, and there was a progress line per task (no TTY here)
    assert "gpu-gone" in result.stderr.split("recap", 1)[1]
    assert f"{playbook}: starting" in result.stderr


@pytest.mark.parametrize(("with_dead_host", "code"), [(True, EXIT_DEGRADED), (False, 0)])
def test_status_with_one_host_down_is_degraded(
    tmp_path: Path, with_dead_host: bool, code: int
) -> None:
    # this machine over the local connection, healthy as a host without services: systemd as
    # its init (no vastllm units defined), no tunnels, no proxy to ask for metrics; no price:
    # not a Vast.ai host
    hosts = {"gpu-here": local_host(supervised_service_init="systemd")}
    if with_dead_host:
        hosts["gpu-gone"] = {**closed_port_host(), "vast_dph_total": 0.3}
    inventory = write_inventory(tmp_path / "hosts.yml", hosts, {"localhost": local_host()})
    result = invoke(
        "--project-dir",
        str(REPO),
        "-i",
        str(inventory),
        "-e",
        "vastllm_tunnel=false",
        "-e",
        "recovery_health_urls={}",
        "status",
        env={"COLUMNS": "200"},
    )
    assert_clean(result)
    assert result.exit_code == code, result.output
    out = flat(result.stdout)
    if with_dead_host:
        assert "gpu-gone ? ? ? unreachable ? ? 0.300 gpu-here CPU none healthy ? ?" in out
        assert "fleet: 1 of 2 hosts healthy — degraded ($0.300/h)" in out
        assert "gpu-gone: unreachable" in out  # and its detail below
        assert "Connection refused" in out
    else:
        assert "gpu-here CPU none healthy ? ?" in out
        assert "fleet: 1 of 1 hosts healthy — healthy gateway" in out
    assert "gateway: off" in out
    assert "failed:" not in result.stderr  # nothing of the workstation failed
