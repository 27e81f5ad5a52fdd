"""Helpers for the CLI tests: the typer app in-process (CliRunner) or as a real process,
inventories on loopback, a stand-in project whose playbooks record what they were asked, and a
real proxy (with the Ollama test double upstream, as in tests/proxy) for chat and status."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tests.proxy.conftest import (
    MODEL,
    OllamaDouble,
    Proxy,
    RedisServer,
    knobs,  # noqa: F401 - the proxy tests' fixture; here it restores tests/cli's double
    running_double,
    running_redis,
    upstream,
    write_active_model,
)
from tests.support import REPO, free_port
from vastllm.cli.cli import app

PYTHON = sys.executable
_BOX = re.compile(r"[│╭╮╰╯─]")


def flat(text: str) -> str:
    """Output with rich's panel borders and line wrapping taken out."""
    return " ".join(_BOX.sub(" ", text).split())


def invoke(*args: str, env: dict[str, str | None] | None = None) -> Result:
    """The vastllm command in-process, with the given environment on top of this one."""
    return CliRunner(env=env).invoke(app, list(args))


def assert_clean(result: Result) -> None:
    """Exited through the CLI's own paths: no exception escaped, no traceback printed."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"exception escaped: {result.exception!r}\n{result.output}")
    assert "Traceback" not in result.output


def cli_process(*args: str, cwd: Path = REPO, **kwargs: Any) -> subprocess.Popen[str]:
    """``python -m vastllm.cli`` as a real process (stdout/stderr piped, text)."""
    return subprocess.Popen(
        [PYTHON, "-m", "vastllm.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def local_host(**extra: Any) -> dict[str, Any]:
    """Host vars of a host reached with the local connection, on this test's Python."""
    return {"ansible_connection": "local", "ansible_python_interpreter": PYTHON, **extra}


def closed_port_host() -> dict[str, Any]:
    """Host vars of an SSH host on a loopback port nothing listens on (no SSH retries)."""
    return {
        "ansible_host": "127.0.0.1",
        "ansible_port": free_port(),
        "ansible_user": "root",
        "ansible_ssh_retries": 0,
    }


def write_inventory(
    path: Path,
    gpu_hosts: dict[str, dict[str, Any]],
    workstation: dict[str, dict[str, Any]] | None = None,
    all_vars: dict[str, Any] | None = None,
) -> Path:
    inventory = {
        "all": {
            "vars": all_vars or {},
            "children": {
                "gpu_hosts": {"hosts": gpu_hosts},
                "workstation": {"hosts": workstation or {}},
            },
        }
    }
    path.write_text(json.dumps(inventory, indent=2))  # JSON is YAML
    return path


# A stand-in project (site.yml + ansible.cfg + the playbooks the CLI runs): each playbook writes
# the variables it received to <record_dir>/<name>.json, so a test sees exactly what the CLI
# passed. Not a double of anything external: it pins the CLI's side of the playbook interface.
_RECORD_TASK = """\
    - name: Record {name}
      ansible.builtin.copy:
        content: "{{{{ {expr} | to_json }}}}"
        dest: "{{{{ record_dir }}}}/{name}.json"
        mode: "0644"
{extra}"""

_SITE = """\
- name: Stand-in site playbook
  hosts: workstation
  gather_facts: false
  tasks:
{tunnel}{untagged}    - name: Sleep when asked (for the Ctrl-C test)
      ansible.builtin.command: sleep {{{{ sleep_seconds }}}}
      changed_when: false
      when: sleep_seconds is defined
"""


def _playbook(name: str, expr: str, hosts: str = "localhost") -> str:
    task = _RECORD_TASK.format(name=name, expr=expr, extra="")
    return f"- name: Stand-in {name}\n  hosts: {hosts}\n  gather_facts: false\n  tasks:\n{task}"


def make_stand_in_project(root: Path) -> Path:
    record_dir = root / "records"
    record_dir.mkdir(parents=True)
    (root / "playbooks").mkdir()
    (root / "ansible.cfg").write_text(
        "[defaults]\ninventory = inventory.yml\nretry_files_enabled = False\n"
    )
    write_inventory(
        root / "inventory.yml",
        {"gpu-a": local_host(), "gpu-b": local_host()},
        {"localhost": local_host()},
        {"record_dir": str(record_dir)},
    )
    tunnel = _RECORD_TASK.format(
        name="tunnel",
        expr="{'tunnel_state': tunnel_state | default('present')}",
        extra="      tags: [tunnel]\n",
    )
    untagged = _RECORD_TASK.format(name="untagged", expr="{'ran': true}", extra="")
    (root / "site.yml").write_text(_SITE.format(tunnel=tunnel, untagged=untagged))
    (root / "playbooks" / "destroy.yml").write_text(
        _playbook(
            "destroy",
            "{'labels': vastai_destroy_labels, 'confirm': vastai_destroy_confirm}",
        )
    )
    provision_vars = (
        "vastai_label",
        "vastai_gpu_name",
        "vastai_min_vram_gib",
        "vastai_min_disk_gib",
        "vastai_max_dph",
        "vastllm_provision_handover",
    )
    expr = "{" + ", ".join(f"'{v}': {v} | default('UNSET')" for v in provision_vars) + "}"
    (root / "playbooks" / "provision.yml").write_text(_playbook("provision", expr))
    (root / "playbooks" / "forget_host.yml").write_text(
        _playbook("forget_host", "{'host': vastllm_forget_host}")
    )
    return record_dir


def read_record(record_dir: Path, name: str) -> Any:
    path = record_dir / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


@pytest.fixture
def stand_in(tmp_path: Path) -> tuple[Path, Path]:
    """(project root, record dir) of a fresh stand-in project."""
    root = tmp_path / "project"
    root.mkdir()
    return root, make_stand_in_project(root)


@pytest.fixture(scope="module")
def cli_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vastllm-cli")


@pytest.fixture(scope="module")
def double(cli_workdir: Path) -> Iterator[OllamaDouble]:
    with running_double(cli_workdir, [MODEL]) as d:
        yield d


@pytest.fixture(scope="module")
def active_model_file(cli_workdir: Path) -> Path:
    return write_active_model(cli_workdir / "active_model.json", 8192)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


def start_proxy(
    workdir: Path, double: OllamaDouble, active_model_file: Path, **settings: Any
) -> Proxy:
    settings.setdefault("redis_url", "")
    return Proxy(
        workdir,
        upstreams=[upstream("main", double)],
        active_model_file=str(active_model_file),
        **settings,
    )
