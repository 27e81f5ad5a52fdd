"""SSH host keys are pinned at first contact and checked on every later connection, in one
known_hosts file for Ansible and the tunnels (inventory/group_vars/all: tunnel_known_hosts and
ansible_ssh_common_args): a real SSH test container (scripts/testhost) is pinned by the first
run, a new container on the same loopback port (new host keys) is refused with both fingerprints
and ``vastllm forget-host NAME``, and after that command the next run connects and pins the new
key. Each test has its own HOME, so its own known_hosts file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import REPO, free_port, ssh_control_dir

pytestmark = pytest.mark.slow

TESTHOST = REPO / "scripts" / "testhost"
ANSIBLE_PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"
SITE = REPO / "site.yml"
# site.yml's host key check and first connection (fact gathering), no tunnel started
TUNNEL_ONLY = ["--tags", "tunnel", "-e", "vastllm_tunnel=false"]
_FINGERPRINT = re.compile(r"^\d+ (SHA256:\S+) ", re.MULTILINE)


def ssh_keygen(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ssh-keygen", *args], input=stdin, capture_output=True, text=True,
                          timeout=30, check=False)


@dataclass
class Workstation:
    """This test's HOME (its known_hosts) and an inventory with the project's group_vars."""

    home: Path
    state: Path
    inventory: Path

    @property
    def known_hosts(self) -> Path:
        return self.home / ".config" / "vastllm" / "known_hosts"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        env.update(HOME=str(self.home), VASTLLM_STATE=str(self.state), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_FORCE_COLOR="0", NO_COLOR="1", ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                   ANSIBLE_SSH_CONTROL_PATH_DIR=ssh_control_dir())
        return env

    def write_inventory(self, gpu_hosts: dict[str, dict[str, Any]]) -> None:
        self.inventory.write_text(yaml.safe_dump({"all": {"children": {
            "gpu_hosts": {"hosts": gpu_hosts},
            "workstation": {"hosts": {"localhost": {
                "ansible_connection": "local",
                "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}}}))

    def playbook(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(self.inventory), *args],
                              cwd=REPO, env=self.env(), capture_output=True, text=True,
                              timeout=300, check=False)

    def vastllm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vastllm.cli", "--project-dir", str(REPO),
                               "-i", str(self.inventory), *args],
                              cwd=REPO, env=self.env(), capture_output=True, text=True,
                              timeout=300, check=False)

    def pinned(self, name: str) -> list[str]:
        """Fingerprints pinned under ``name`` in this workstation's known_hosts."""
        found = ssh_keygen("-l", "-F", name, "-f", str(self.known_hosts))
        return re.findall(r"^\S+ \S+ (SHA256:\S+)$", found.stdout, re.MULTILINE)


@pytest.fixture
def workstation(tmp_path: Path) -> Workstation:
    home = tmp_path / "home"
    home.mkdir()
    inventory_dir = tmp_path / "inventory"
    inventory_dir.mkdir()
    # the project's group_vars apply to this inventory as to inventory/hosts.yml
    (inventory_dir / "group_vars").symlink_to(REPO / "inventory" / "group_vars")
    return Workstation(home, tmp_path / "state", inventory_dir / "hosts.yml")


@dataclass
class SshTestHost:
    name: str
    port: int
    identity_file: str

    @property
    def known_name(self) -> str:
        return f"[127.0.0.1]:{self.port}"

    def host_vars(self) -> dict[str, Any]:
        return {"ansible_host": "127.0.0.1", "ansible_port": self.port, "ansible_user": "root",
                "ansible_ssh_private_key_file": self.identity_file}

    def fingerprint(self) -> str:
        """SHA256 fingerprint of the container's ED25519 host key, read through docker."""
        key = subprocess.run(["docker", "exec", self.name, "cat",
                              "/etc/ssh/ssh_host_ed25519_key.pub"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        found = _FINGERPRINT.search(ssh_keygen("-l", "-f", "-", stdin=key).stdout)
        assert found, key
        return found.group(1)


def run_testhost(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([str(TESTHOST), *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def container(workstation: Workstation) -> Iterator[SshTestHost]:
    """A vast-like test container on a loopback port; ``start`` again = new host keys."""
    port = free_port()
    name = f"vastllm-hostkey-{port}"
    try:
        up = json.loads(run_testhost(workstation.env(), "up", name, "vast-like", str(port)))
        host = SshTestHost(name, int(up["port"]), str(up["identity_file"]))
        workstation.write_inventory({name: host.host_vars()})
        yield host
    finally:
        run_testhost(workstation.env(), "down", name)


def replace_container(workstation: Workstation, host: SshTestHost) -> None:
    """A new container on the same port, with host keys of its own (made at its start)."""
    run_testhost(workstation.env(), "up", host.name, "vast-like", str(host.port))


# the tunnel role's host key tasks, without starting a tunnel
PIN_PLAYBOOK = """
- name: Pin the GPU hosts' keys as the tunnel role does
  hosts: workstation
  gather_facts: false
  tasks:
    - name: Find the tools
      ansible.builtin.import_role:
        name: tunnel
        tasks_from: tools.yml
    - name: Describe the tunnels
      ansible.builtin.import_role:
        name: tunnel
        tasks_from: specs.yml
    - name: Pin the keys
      ansible.builtin.import_role:
        name: tunnel
        tasks_from: known_hosts.yml
"""


def tunnel_ssh(workstation: Workstation, host: SshTestHost) -> subprocess.CompletedProcess[str]:
    """ssh with the host key options of the tunnel's autossh (roles/tunnel/tasks/specs.yml)."""
    return subprocess.run(
        ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
         "-o", f"UserKnownHostsFile={workstation.known_hosts}", "-i", host.identity_file,
         "-p", str(host.port), "root@127.0.0.1", "true"],
        capture_output=True, text=True, timeout=60, check=False)


def test_first_contact_pins_the_host_key_in_the_project_known_hosts(
        workstation: Workstation, container: SshTestHost) -> None:
    assert not workstation.known_hosts.exists()
    run = workstation.vastllm("-e", "vastllm_tunnel=false", "tunnel")
    assert run.returncode == 0, run.stdout + run.stderr
    assert workstation.pinned(container.known_name) == [container.fingerprint()]
    # a later run checks the pin and connects: nothing new is pinned, nothing changes
    again = workstation.playbook(str(SITE), *TUNNEL_ONLY)
    assert again.returncode == 0, again.stdout + again.stderr
    changed = re.findall(r"^\S+\s+: ok=\d+\s+changed=(\d+)", again.stdout, re.MULTILINE)
    assert set(changed) == {"0"}, again.stdout
    assert workstation.pinned(container.known_name) == [container.fingerprint()]


def test_the_tunnel_reuses_the_pin_and_stops_when_it_cannot_read_the_key(
        workstation: Workstation, container: SshTestHost, tmp_path: Path) -> None:
    playbook = tmp_path / "pin.yml"
    playbook.write_text(PIN_PLAYBOOK)
    pinned = workstation.playbook(str(playbook))
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    # the key Ansible pinned at first contact, once, and what the tunnel's strict ssh accepts
    assert workstation.pinned(container.known_name) == [container.fingerprint()]
    assert tunnel_ssh(workstation, container).returncode == 0

    subprocess.run(["docker", "exec", container.name, "rm", "/etc/ssh/ssh_host_ed25519_key.pub"],
                   check=True, capture_output=True, timeout=30)
    unread = workstation.playbook(str(playbook))
    assert unread.returncode != 0, unread.stdout
    assert "Read each GPU host's SSH host key" in unread.stdout
    assert "failed=1" in unread.stdout


def test_a_changed_host_key_is_refused_until_the_host_is_forgotten(
        workstation: Workstation, container: SshTestHost) -> None:
    first = workstation.playbook(str(SITE), *TUNNEL_ONLY)
    assert first.returncode == 0, first.stdout + first.stderr
    old = container.fingerprint()
    assert workstation.pinned(container.known_name) == [old]

    replace_container(workstation, container)
    new = container.fingerprint()
    assert new != old
    for refused in (workstation.playbook(str(SITE), *TUNNEL_ONLY),
                    workstation.vastllm("-e", "vastllm_tunnel=false", "tunnel")):
        output = refused.stdout + refused.stderr
        assert refused.returncode != 0, output
        flat = " ".join(output.split())
        assert f"pinned {old} (ED25519)" in flat, output
        assert f"offered now {new} (ED25519)" in flat, output
        assert f"`vastllm forget-host {container.name}`" in flat, output
        # stopped before any connection: the old pin stays, nothing of the host was gathered
        assert workstation.pinned(container.known_name) == [old]
        assert "Gathering Facts" not in refused.stdout

    forget = workstation.vastllm("forget-host", container.name)
    assert forget.returncode == 0, forget.stdout + forget.stderr
    assert workstation.pinned(container.known_name) == []

    after = workstation.vastllm("-e", "vastllm_tunnel=false", "tunnel")
    assert after.returncode == 0, after.stdout + after.stderr
    assert workstation.pinned(container.known_name) == [new]


def test_forget_host_removes_only_that_hosts_entries(workstation: Workstation,
                                                      tmp_path: Path) -> None:
    keys = {}
    for name in ("a", "b", "c"):
        ssh_keygen("-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name))
        keys[name] = (tmp_path / f"{name}.pub").read_text().split()[:2]
    workstation.known_hosts.parent.mkdir(parents=True)
    workstation.known_hosts.write_text(
        f"[192.0.2.10]:2222 {' '.join(keys['a'])}\n"
        f"vast-instance-4242 {' '.join(keys['b'])}\n"
        f"[192.0.2.11]:2222 {' '.join(keys['c'])}\n")
    workstation.write_inventory({
        "gone-box": {"ansible_host": "192.0.2.10", "ansible_port": 2222, "vast_id": 4242},
        "other-box": {"ansible_host": "192.0.2.11", "ansible_port": 2222}})

    unknown = workstation.vastllm("forget-host", "no-such-box")
    assert unknown.returncode == 1
    assert "no-such-box is not a host of the inventory: nothing to forget" in unknown.stderr

    done = workstation.vastllm("forget-host", "gone-box")
    assert done.returncode == 0, done.stdout + done.stderr
    assert workstation.pinned("[192.0.2.10]:2222") == []
    assert workstation.pinned("vast-instance-4242") == []
    assert len(workstation.pinned("[192.0.2.11]:2222")) == 1
