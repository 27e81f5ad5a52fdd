"""One known_hosts file for Ansible's SSH connections and the tunnels: the inventory's group_vars
name the tunnel role's default file and point Ansible's ssh at it with accept-new, host key
checking is on (also through ansible-runner, which turns it off unless told), and the tunnels
never accept an unknown key themselves."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from tests.support import REPO
from vastllm.cli.project import Project
from vastllm.cli.runner import ansible_env


def test_group_vars_and_the_tunnel_role_name_the_same_known_hosts_file() -> None:
    group_vars = yaml.safe_load((REPO / "inventory/group_vars/all/main.yml").read_text())
    role = yaml.safe_load((REPO / "roles/tunnel/defaults/main.yml").read_text())
    assert group_vars["tunnel_known_hosts"] == role["tunnel_known_hosts"]
    assert group_vars["ansible_host_key_checking"] is True
    assert group_vars["ansible_ssh_common_args"] == (
        "-o UserKnownHostsFile={{ tunnel_known_hosts }} -o StrictHostKeyChecking=accept-new")


def test_the_tunnels_check_host_keys_strictly() -> None:
    specs = (REPO / "roles/tunnel/tasks/specs.yml").read_text()
    assert "StrictHostKeyChecking=accept-new" not in specs
    strict = "-o StrictHostKeyChecking=yes -o UserKnownHostsFile={{ tunnel_known_hosts }}"
    assert specs.count(strict) == 2


def test_the_cli_checks_host_keys_as_ansible_cfg_says(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANSIBLE_HOST_KEY_CHECKING", raising=False)
    assert ansible_env(Project(REPO), colour=False)["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    (tmp_path / "ansible.cfg").write_text("[defaults]\nhost_key_checking = False\n")
    assert ansible_env(Project(tmp_path), colour=False)["ANSIBLE_HOST_KEY_CHECKING"] == "False"
    # the user's own environment wins, as it does for ansible-playbook
    monkeypatch.setenv("ANSIBLE_HOST_KEY_CHECKING", "False")
    assert "ANSIBLE_HOST_KEY_CHECKING" not in ansible_env(Project(REPO), colour=False)


def test_known_hosts_names_are_the_ones_ssh_writes() -> None:
    spec = importlib.util.spec_from_file_location(
        "known_hosts_filter", REPO / "plugins/filter/known_hosts.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    name = module.FilterModule().filters()["ssh_known_name"]
    assert name("203.0.113.7") == "203.0.113.7"
    assert name("203.0.113.7", "22") == "203.0.113.7"
    assert name("ssh5.vast.ai", 41022) == "[ssh5.vast.ai]:41022"
