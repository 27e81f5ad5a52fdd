"""Fixtures for the Vast.ai tests: the shared client (plugins/module_utils/vastai_api.py) loaded by
its path, the Vast.ai API double alone, a controller that runs playbooks against it (``vast``)
and one that runs the vastai inventory plugin (``plugin``)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.doubles.vastai_api_double import VastApiDouble, VastState
from tests.support import REPO, free_port
from tests.vastai.playbook_support import Controller, controller

CLIENT_SOURCE = REPO / "plugins" / "module_utils" / "vastai_api.py"
ANSIBLE_INVENTORY = REPO / ".venv" / "bin" / "ansible-inventory"
LIST_PATH = "/api/v1/instances/"


def plain(value: Any) -> Any:
    """Drop ansible-core 2.19's {"__ansible_unsafe": ...} wrappers from --list output."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str

    @property
    def inventory(self) -> dict[str, Any]:
        assert self.rc == 0, self.stderr
        return plain(json.loads(self.stdout))  # type: ignore[no-any-return]

    def hosts(self, group: str) -> list[str]:
        return list(self.inventory.get(group, {}).get("hosts", []))


@dataclass
class Env:
    api: VastApiDouble
    home: Path
    tmp: Path

    @property
    def state(self) -> VastState:
        return self.api.state

    def list_requests(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [r for r in self.state.requests if r["path"] == LIST_PATH]

    def write_key_file(self, key: str, legacy: bool = False) -> Path:
        path = self.home / ".vast_api_key" if legacy else self.home / ".config/vastai/vast_api_key"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(key + "\n")
        return path

    def inventory(self, config: dict[str, Any], name: str = "test.vast.yml",
                  env: dict[str, str] | None = None, repo_config: bool = False) -> Run:
        """Write config (plugin and api_url added) and run ansible-inventory --list on it, with
        only the plugins it needs enabled, or with the repository's ansible.cfg as it is."""
        path = self.tmp / name
        path.write_text(yaml.safe_dump({"plugin": "vastai", "api_url": self.api.url, **config}))
        run_env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("ANSIBLE_", "VAST_")) and k != "XDG_CONFIG_HOME"}
        run_env.update(HOME=str(self.home), ANSIBLE_LOCAL_TEMP=str(self.tmp / "ansible-tmp"),
                       NO_COLOR="1")
        if repo_config:
            run_env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
        else:
            run_env.update(
                ANSIBLE_INVENTORY_ENABLED="vastai,ansible.builtin.yaml",
                ANSIBLE_INVENTORY_PLUGINS=str(REPO / "plugins" / "inventory"),
                ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="true",
            )
        run_env.update(env or {})
        proc = subprocess.run([str(ANSIBLE_INVENTORY), "-i", str(path), "--list"], cwd=REPO,
                              env=run_env, capture_output=True, text=True, timeout=60, check=False)
        return Run(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="module")
def api() -> ModuleType:
    """plugins/module_utils/vastai_api.py, imported from its file as Ansible ships it."""
    spec = importlib.util.spec_from_file_location("vastai_api_under_test", CLIENT_SOURCE)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def double() -> Iterator[VastApiDouble]:
    with VastApiDouble(free_port()) as server:
        yield server


@pytest.fixture
def vast(tmp_path: Path) -> Iterator[Controller]:
    """A controller with the API key in its key file, talking to a fresh API double."""
    with controller(tmp_path) as ctl:
        ctl.write_key_file()
        yield ctl


@pytest.fixture
def plugin(tmp_path: Path) -> Iterator[Env]:
    if not ANSIBLE_INVENTORY.exists():
        pytest.fail(f"{ANSIBLE_INVENTORY} is missing: install the dev extra into .venv")
    home = tmp_path / "home"
    home.mkdir()
    with VastApiDouble(free_port()) as api:
        yield Env(api, home, tmp_path)
