"""The project's real playbooks against a GPU host nobody answers for: exit 1, the host named,
'unreachable' and ansible's reason, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import assert_clean, closed_port_host, invoke, write_inventory
from tests.support import REPO


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
    assert f"{playbook}: failed after" in result.stderr
    # the recap counts it, and there was a progress line per task (no TTY here)
    assert "gpu-gone" in result.stderr.split("recap", 1)[1]
    assert f"{playbook}: starting" in result.stderr
