"""Test host containers for role tests: scripts/testhost starts one (sshd on a loopback port,
reached over real SSH like a rented Vast.ai host), distribution packages are installed into it
with its own apt from Debian's mirror (as on a rented host; no service started by their scripts),
and ansible-playbook runs this repository's playbooks against it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support import REPO, ssh_control_dir

ANSIBLE_PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"
TESTHOST = REPO / "scripts" / "testhost"
# venv support for the host's Python, for python_venv
VENV_PACKAGES = ["python3-venv"]
# python_venv's pip arguments: this machine's wheelhouse (the one Molecule uses), no index
PIP_VARS = {
    "vastllm_pip_wheelhouse": (REPO / ".venv" / "wheelhouse-path").read_text().strip()
    if (REPO / ".venv" / "wheelhouse-path").exists()
    else "",
    "vastllm_pip_no_index": True,
}
_RECAP = re.compile(
    r"^testhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE
)


def capture(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)


@dataclass
class Run:
    rc: int
    output: str

    @property
    def changed(self) -> int:
        found = _RECAP.search(self.output)
        assert found, self.output
        return int(found.group(2))

    def changed_tasks(self) -> list[str]:
        """The names of the tasks that reported a change (for a failure message)."""
        names, task = [], ""
        for line in self.output.splitlines():
            if line.startswith("TASK ["):
                task = line[len("TASK [") :].split("]", 1)[0]
            elif line.startswith("changed: [testhost]"):
                names.append(task)
        return names


@dataclass
class Host:
    """One container, named ``testhost`` in its inventory."""

    name: str
    image: str
    inventory: Path
    tmp: Path

    def sh(
        self, command: str, check: bool = True, timeout: int = 120
    ) -> subprocess.CompletedProcess[str]:
        done = capture(["docker", "exec", self.name, "sh", "-c", command], timeout=timeout)
        if check:
            assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
        return done

    def playbook(self, playbook: Path, *args: str) -> Run:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        env.update(
            ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            NO_COLOR="1",
            ANSIBLE_CACHE_PLUGIN_CONNECTION=str(self.tmp / "facts"),
            ANSIBLE_LOCAL_TEMP=str(self.tmp / "ansible-tmp"),
            ANSIBLE_SSH_CONTROL_PATH_DIR=ssh_control_dir(),
        )
        argv = [str(ANSIBLE_PLAYBOOK), "-i", str(self.inventory), str(playbook), *args]
        done = capture(argv, cwd=REPO, env=env, timeout=900)
        return Run(done.returncode, done.stdout + done.stderr)


@contextlib.contextmanager
def started_host(
    image: str,
    tmp: Path,
    packages: list[str],
    host_vars: dict[str, Any] | None = None,
) -> Iterator[Host]:
    """A fresh container of ``image`` with ``packages`` installed as system_packages installs
    them (no service started by their scripts), removed when the block ends."""
    name = f"vastllm-test-{uuid.uuid4().hex[:8]}"
    up = capture([str(TESTHOST), "up", name, image], timeout=600)
    try:
        assert up.returncode == 0, up.stderr
        info = json.loads(up.stdout.strip().splitlines()[-1])
        inventory = tmp / "hosts.yml"
        testhost = {
            "ansible_host": info["address"],
            "ansible_port": info["port"],
            "ansible_user": info["user"],
            "ansible_ssh_private_key_file": info["identity_file"],
            "ansible_python_interpreter": "/usr/bin/python3",
            # a new container answers on a port an older one had
            "ansible_ssh_extra_args": "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no",
            **(host_vars or {}),
        }
        inventory.write_text(yaml.safe_dump({"all": {"hosts": {"testhost": testhost}}}))
        host = Host(name, image, inventory, tmp)
        names = " ".join(packages)
        host.sh(
            "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && "
            "chmod 755 /usr/sbin/policy-rc.d && apt-get update -qq && "
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
            f"{names} >/dev/null && rm -f /usr/sbin/policy-rc.d",
            timeout=600,
        )
        yield host
    finally:
        capture([str(TESTHOST), "down", name], timeout=120)
