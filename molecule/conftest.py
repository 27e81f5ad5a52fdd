"""Fixtures shared by the Molecule scenarios' testinfra tests (molecule/*/tests)."""

from __future__ import annotations

import pytest

# before the import: the helpers' asserts then report values the way a test's own do
pytest.register_assert_rewrite("scenario_helpers")

from scenario_helpers import run_playbook  # noqa: E402 - after register_assert_rewrite

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
    return run_playbook
