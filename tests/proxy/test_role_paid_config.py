"""The llm_proxy role's side of paid upstreams, run in ansible-playbook on this machine (connection
local, no container): llm_proxy_paid_upstreams reach proxy.json as paid upstreams the proxy's
settings accept, and an entry the proxy would refuse stops the role first, with the fix and
without the key."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support import REPO
from vastllm.proxy.settings import ProxySettings

PLAYBOOK_BIN = REPO / ".venv/bin/ansible-playbook"
KEY = "sk-ant-api03-role-" + "r" * 30


def run_play(tmp: Path, tasks: list[dict[str, Any]], extra: dict[str, Any]) -> tuple[int, str]:
    play = [
        {
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars_files": [str(REPO / "roles/llm_proxy/defaults/main.yml")],
            "tasks": tasks,
        }
    ]
    playbook = tmp / "play.yml"
    playbook.write_text(yaml.safe_dump(play))
    env = {**os.environ, "ANSIBLE_CACHE_PLUGIN": "memory", "ANSIBLE_NOCOLOR": "1"}
    extra = {"ansible_python_interpreter": str(REPO / ".venv/bin/python"), **extra}
    extra_file = tmp / "extra.json"  # the key stays out of argv
    extra_file.write_text(json.dumps(extra))
    result = subprocess.run(
        [str(PLAYBOOK_BIN), "-i", "localhost,", str(playbook), "-e", f"@{extra_file}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def paid_entry(**change: Any) -> dict[str, Any]:
    return {
        "name": "anthropic-api",
        "kind": "anthropic",
        "base_url": "https://api.anthropic.com",
        "model": "claude-sonnet-4-5",
        "api_key": KEY,
        **change,
    }


def test_paid_upstreams_reach_proxy_json_as_paid_and_the_proxy_accepts_them(
    tmp_path: Path,
) -> None:
    out = tmp_path / "proxy.json"
    rc, log = run_play(
        tmp_path,
        [
            {
                "ansible.builtin.template": {
                    "src": str(REPO / "roles/llm_proxy/templates/proxy.json.j2"),
                    "dest": str(out),
                    "mode": "0600",
                }
            }
        ],
        {"llm_proxy_paid_upstreams": [paid_entry()], "llm_proxy_paid_requests_per_day": 50},
    )
    assert rc == 0, log[-3000:]
    written = json.loads(out.read_text())
    settings = ProxySettings.model_validate(written)
    local, paid = settings.upstreams
    assert (local.name, local.paid) == ("model-api", False)
    assert (paid.name, paid.paid, paid.model) == ("anthropic-api", True, "claude-sonnet-4-5")
    assert paid.auth_header == "x-api-key"
    assert settings.paid_requests_per_day == 50


def test_a_paid_upstream_without_its_key_stops_the_role_before_anything_is_installed(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "installed"
    rc, log = run_play(
        tmp_path,
        [
            {"ansible.builtin.include_role": {"name": "llm_proxy"}},
            {"ansible.builtin.file": {"path": str(marker), "state": "touch", "mode": "0600"}},
        ],
        {
            "llm_proxy_paid_upstreams": [
                paid_entry(name="with-key", base_url="http://api.example.invalid"),
                paid_entry(name="no-key", api_key=""),
            ],
            "llm_proxy_venv": str(tmp_path / "venv-never-made"),
        },
    )
    assert rc != 0
    assert "llm_proxy_paid_upstreams entry with-key needs" in log
    assert "base_url starting https://" in log
    assert "the environment variable is not set" in log
    assert KEY not in log
    assert not (tmp_path / "venv-never-made").exists()
    assert not marker.exists()
