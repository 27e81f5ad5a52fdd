"""Helpers for the Vast.ai playbook tests: run ansible-playbook against the API double, a real
sshd on loopback (what the provisioning waits for), and the double's request log."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.doubles.vastai_api_double import VastApiDouble
from tests.support import REPO, free_port, ssh_control_dir, wait_tcp

ANSIBLE_PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"
SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
KEY = "test-vast-key"
# provisioning settings for the tests: a fast poll, and no handover (no host behind the sshd)
PROVISION_QUICK = {"vastai_poll_delay": 1, "vastllm_provision_handover": False}
_RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                    re.MULTILINE)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def recap(self, host: str = "localhost") -> dict[str, int]:
        for name, ok, changed, unreachable, failed in _RECAP.findall(self.stdout):
            if name == host:
                return {"ok": int(ok), "changed": int(changed), "unreachable": int(unreachable),
                        "failed": int(failed)}
        raise AssertionError(f"no PLAY RECAP line for {host}:\n{self.output}")


@dataclass
class Controller:
    """A controller with its own HOME (key files, caches) talking to one API double."""

    api: VastApiDouble
    home: Path
    tmp: Path

    def write_key_file(self, key: str = KEY) -> Path:
        path = self.home / ".config" / "vastai" / "vast_api_key"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(key + "\n")
        path.chmod(0o600)
        return path

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ANSIBLE_", "VAST_")) and k != "XDG_CONFIG_HOME"}
        env.update(HOME=str(self.home), ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                   ANSIBLE_LOCAL_TEMP=str(self.tmp / "ansible-tmp"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_FORCE_COLOR="0", NO_COLOR="1",
                   ANSIBLE_SSH_CONTROL_PATH_DIR=ssh_control_dir())
        env.update(extra or {})
        return env

    def inventory(self, data: dict[str, Any] | None = None, name: str = "hosts.yml") -> Path:
        path = self.tmp / name
        content = data or {"all": {"hosts": {"localhost": {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}
        path.write_text(yaml.safe_dump(content))
        return path

    def playbook(self, playbook: Path | str, extra_vars: dict[str, Any] | None = None, *,
                 args: list[str] | None = None, inventory: Path | None = None,
                 env: dict[str, str] | None = None, stdin: Any = subprocess.DEVNULL,
                 timeout: float = 180) -> PlaybookRun:
        """Run ansible-playbook from the repository root; extra vars go in as one JSON -e."""
        cmd = [str(ANSIBLE_PLAYBOOK), "-i", str(inventory or self.inventory()), str(playbook),
               "-e", f"vastai_api_url={self.api.url}"]
        if extra_vars:
            cmd += ["-e", yaml.safe_dump(extra_vars, default_flow_style=True).strip()]
        cmd += args or []
        proc = subprocess.run(cmd, cwd=REPO, env=self.env(env), stdin=stdin, capture_output=True,
                              text=True, timeout=timeout, check=False)
        return PlaybookRun(proc.returncode, _ANSI.sub("", proc.stdout), _ANSI.sub("", proc.stderr))

    def requests(self, method: str | None = None, prefix: str = "") -> list[dict[str, Any]]:
        with self.api.state.lock:
            return [dict(r) for r in self.api.state.requests
                    if (method is None or r["method"] == method) and r["path"].startswith(prefix)]

    def starts(self) -> list[dict[str, Any]]:
        """The start calls the double got: manage-instance PUTs with ``{"state": "running"}``."""
        return [r for r in self.requests("PUT", "/api/v0/instances/")
                if isinstance(r["body"], dict) and r["body"].get("state") == "running"]


@contextmanager
def controller(tmp_path: Path) -> Iterator[Controller]:
    if not ANSIBLE_PLAYBOOK.exists():
        raise AssertionError(f"{ANSIBLE_PLAYBOOK} is missing: install the dev extra into .venv")
    home = tmp_path / "home"
    home.mkdir()
    with VastApiDouble(free_port()) as api:
        yield Controller(api, home, tmp_path)


@contextmanager
def real_sshd() -> Iterator[int]:
    """A real OpenSSH server on 127.0.0.1:<free port> that nobody can log in to: the provisioning
    only waits for its banner. As root it runs as the user nobody (an unprivileged sshd needs no
    privilege separation directory)."""
    if not SSHD.exists():
        raise AssertionError(f"{SSHD} is missing: install openssh-server (the provisioning test "
                             "waits for a real SSH banner)")
    workdir = Path(tempfile.mkdtemp(prefix="vastllm-sshd-", dir="/tmp"))
    port = free_port()
    proc = None
    try:
        host_key = workdir / "ssh_host_ed25519_key"
        subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)],
                       check=True, capture_output=True, timeout=30)
        config = workdir / "sshd_config"
        config.write_text(f"ListenAddress 127.0.0.1:{port}\nHostKey {host_key}\nPidFile none\n"
                          "UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                          f"AuthorizedKeysFile {workdir}/authorized_keys\n")
        as_user: dict[str, Any] = {}
        if os.geteuid() == 0:
            for path in (workdir, host_key, config):
                os.chown(path, 65534, 65534)
            as_user = {"user": 65534, "group": 65534, "extra_groups": []}
        log = workdir / "sshd.log"
        with log.open("wb") as log_fh:
            proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)],
                                    stdout=subprocess.DEVNULL, stderr=log_fh, **as_user)
        try:
            wait_tcp(port, timeout=15)
        except TimeoutError:
            proc.kill()
            proc.wait(timeout=10)
            raise AssertionError(f"sshd did not start: {log.read_text(errors='replace')}") from None
        yield port
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
