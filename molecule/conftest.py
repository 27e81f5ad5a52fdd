"""Fixtures shared by the Molecule scenarios' testinfra tests (molecule/*/tests)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[1]))

SDK_VENV = "/opt/vastllm-test-sdk"


@pytest.fixture(scope="module")
def sdk(host):
    """The official openai and anthropic SDKs in a throwaway venv on the host, installed from
    the wheelhouse python_venv copied there (no index); returns that venv's python."""
    wheelhouse = host.run("ls -d /opt/vastllm/wheelhouse/*/ | head -1").stdout.strip()
    assert wheelhouse, "the wheelhouse copied by python_venv is missing"
    setup = host.run(
        f"test -x {SDK_VENV}/bin/python || (python3 -m venv {SDK_VENV} && "
        f"{SDK_VENV}/bin/pip install -q --no-index --find-links {wheelhouse} openai anthropic)"
    )
    assert setup.rc == 0, setup.stderr
    return f"{SDK_VENV}/bin/python"


@pytest.fixture(scope="module")
def playbook():
    """Run a playbook of this repository with Molecule's inventory:
    playbook("playbooks/recover.yml", "--check") -> (rc, output, {host: changed})."""

    def run(path: str, *extra: str) -> tuple[int, str, dict[str, int]]:
        inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
        env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", NO_COLOR="1")
        result = subprocess.run(
            ["ansible-playbook", "-i", inventory, str(REPO / path), *extra],
            capture_output=True, text=True, cwd=REPO, check=False, env=env,
        )
        out = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
        recap = re.findall(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", out, re.M)
        return result.returncode, out, {name: int(count) for name, count in recap}

    return run
