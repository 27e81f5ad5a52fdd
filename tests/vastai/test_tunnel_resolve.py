"""The tunnel role's Vast.ai resolver (roles/tunnel/files/vast-tunnel.py, with the shared API client
plugins/module_utils/vastai_api.py next to it, as the role installs them) against the Vast.ai API
double: label -> SSH endpoint, following a changed endpoint, one clear line for a missing or
stopped instance, and the commands the role builds for Vast.ai and static hosts. autossh is a
TEST STAND-IN here (a script that records its arguments and exits): no real ssh runs."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.doubles.vastai_api_double import FIRST_ID, VastApiDouble
from tests.support import REPO, free_port
from tests.vastai.playbook_support import KEY, Controller, controller

RESOLVER = REPO / "roles" / "tunnel" / "files" / "vast-tunnel.py"
API_CLIENT = REPO / "plugins" / "module_utils" / "vastai_api.py"
ID = {n: FIRST_ID + n for n in range(33)}

AUTOSSH_STAND_IN = """#!{python}
# TEST STAND-IN for autossh: records its arguments and autossh settings, then exits as autossh
# does once ssh failed AUTOSSH_MAXSTART times. No ssh is started.
import json, os, sys, time
with open({log!r}, "a") as fh:
    fh.write(json.dumps({{"argv": sys.argv[1:],
                         "maxstart": os.environ.get("AUTOSSH_MAXSTART"),
                         "gatetime": os.environ.get("AUTOSSH_GATETIME")}}) + "\\n")
time.sleep(0.2)
sys.exit(1)
"""


def install_resolver(directory: Path, files: tuple[Path, ...] = (RESOLVER, API_CLIENT)) -> Path:
    """The resolver and the API client it imports, side by side as the tunnel role installs them."""
    directory.mkdir(parents=True, exist_ok=True)
    for source in files:
        shutil.copyfile(source, directory / source.name)
    return directory / RESOLVER.name


@dataclass
class Workstation:
    api: VastApiDouble
    home: Path
    bin_dir: Path
    autossh_log: Path
    resolver: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ANSIBLE_", "VAST_", "AUTOSSH_")) and k != "XDG_CONFIG_HOME"}
        env.update(HOME=str(self.home), PATH=f"{self.bin_dir}:{os.environ.get('PATH', '')}")
        env.update(extra)
        return env

    def resolve(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(self.resolver), "--api-url", self.api.url,
                               "--resolve-only", *args], env=self.env(**env),
                              capture_output=True, text=True, timeout=60, check=False)

    def autossh_runs(self) -> list[dict[str, Any]]:
        if not self.autossh_log.exists():
            return []
        return [json.loads(line) for line in self.autossh_log.read_text().splitlines()]

    def set_instance(self, n: int, **fields: Any) -> None:
        with self.api.state.lock:
            self.api.state.instances[ID[n]].update(fields)


def install_autossh_stand_in(bin_dir: Path, log: Path) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / "autossh"
    path.write_text(AUTOSSH_STAND_IN.format(python=sys.executable, log=str(log)))
    path.chmod(0o755)
    return path


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workstation]:
    home = tmp_path / "home"
    key_file = home / ".config" / "vastai" / "vast_api_key"
    key_file.parent.mkdir(parents=True)
    key_file.write_text(KEY + "\n")
    bin_dir = tmp_path / "autossh-test-stand-in"
    log = tmp_path / "autossh-runs.jsonl"
    install_autossh_stand_in(bin_dir, log)
    resolver = install_resolver(tmp_path / "vastllm")
    with VastApiDouble(free_port()) as api:
        yield Workstation(api, home, bin_dir, log, resolver)


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30,
             log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    detail = f"; resolver log:\n{log.read_text()}" if log and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}{detail}")


def test_resolve_label_to_the_current_endpoint(ws: Workstation) -> None:
    direct = ws.resolve("--label", "llm-00")
    assert (direct.returncode, direct.stdout) == (0, f"203.0.113.1 30000 direct {ID[0]}\n")
    proxy = ws.resolve("--label", "llm-01")
    assert proxy.stdout == f"ssh2.vast.ai 20007 proxy {ID[1]}\n"
    # a label on the second page of GET /api/v1/instances/
    assert ws.resolve("--label", "llm-28").stdout == f"203.0.113.29 30028 direct {ID[28]}\n"
    pages = [r["query"].get("after_token") for r in ws.api.state.requests
             if r["path"] == "/api/v1/instances/"]
    assert pages.count(None) == 3
    assert len(pages) == 6
    # labels with spaces travel as base64; stored labels are compared without padding
    spaced = base64.b64encode(b"spaced label/x").decode()
    assert ws.resolve("--label-b64", spaced).stdout == f"203.0.113.9 30008 direct {ID[8]}\n"
    # a shared label: the instance the tunnel was made for, else the newest
    assert ws.resolve("--label", "dup-box").stdout.split()[-1] == str(ID[6])
    assert ws.resolve("--label", "dup-box", "--id", str(ID[5])).stdout.split()[-1] == str(ID[5])
    # no label at all: by id
    assert ws.resolve("--id", str(ID[3])).stdout == f"ssh4.vast.ai 20021 proxy {ID[3]}\n"
    assert all(r["key_ok"] for r in ws.api.state.requests)
    # the client is imported from the resolver's directory without leaving bytecode there
    assert sorted(p.name for p in ws.resolver.parent.iterdir()) == sorted(
        [RESOLVER.name, API_CLIENT.name])


def test_without_the_api_client_next_to_it_the_resolver_says_so(tmp_path: Path) -> None:
    resolver = install_resolver(tmp_path / "partial", files=(RESOLVER,))
    run = subprocess.run([sys.executable, str(resolver), "--label", "llm-00", "--resolve-only"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 1
    assert run.stdout == ""
    assert run.stderr.startswith(
        f"vast-tunnel: cannot import vastai_api.py from {resolver.parent} ")
    assert "the tunnel role installs it next to vast-tunnel.py" in run.stderr
    assert "Traceback" not in run.stderr


def test_missing_stopped_and_rejected_are_one_clear_line(ws: Workstation) -> None:
    missing = ws.resolve("--label", "no-such-box")
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert missing.stderr == ("vast-tunnel no-such-box: no Vast.ai instance labelled "
                              "'no-such-box' (gone or never created)\n")
    stopped = ws.resolve("--label", "old-exited")
    assert stopped.returncode == 1
    assert stopped.stderr == ("vast-tunnel old-exited: Vast.ai instance labelled 'old-exited' "
                              f"is not running ({ID[30]} is exited)\n")
    env_file = ws.home / "vast-api.env"
    env_file.write_text("VAST_API_KEY=wrong-secret-key\n")
    rejected = ws.resolve("--label", "llm-00", "--env-file", str(env_file))
    assert rejected.returncode == 1
    assert rejected.stderr == (f"vast-tunnel llm-00: Vast.ai rejected the API key from {env_file} "
                               "(401 auth_error)\n")
    # the env file wins over VAST_API_KEY and the key files
    env_file.write_text(f"VAST_API_KEY={KEY}\n")
    ok = ws.resolve("--label", "llm-00", "--env-file", str(env_file), VAST_API_KEY="stale")
    assert ok.returncode == 0, ok.stderr


def test_loop_follows_the_endpoint_and_waits_out_a_stopped_instance(ws: Workstation) -> None:
    stderr_path = ws.home / "resolver.log"
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(ws.resolver), "--label", "llm-00", "--api-url", ws.api.url,
             "--max-start", "2", "--retry-min", "0.1", "--retry-max", "0.4", "--",
             "autossh", "-M", "0", "-N", "-L", "127.0.0.1:18082:127.0.0.1:8082"],
            env=ws.env(), stdout=subprocess.DEVNULL, stderr=stderr)

    def wait(what: str, check: Callable[[], bool]) -> None:
        wait_for(what, check, log=stderr_path)

    def endpoints() -> list[str]:
        return [" ".join(r["argv"][-3:]) for r in ws.autossh_runs()]

    try:
        wait("two autossh runs to 203.0.113.1:30000",
             lambda: endpoints().count("-p 30000 root@203.0.113.1") >= 2)
        first = ws.autossh_runs()[0]
        assert first["argv"] == ["-M", "0", "-N", "-L", "127.0.0.1:18082:127.0.0.1:8082",
                                 "-o", f"HostKeyAlias=vast-instance-{ID[0]}",
                                 "-p", "30000", "root@203.0.113.1"]
        assert (first["maxstart"], first["gatetime"]) == ("2", "0")

        # the instance restarted elsewhere: the next autossh goes to the new endpoint
        ws.set_instance(0, public_ipaddr="198.51.100.7",
                        ports={"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": "41555"}]})
        wait("autossh to the new endpoint",
             lambda: "-p 41555 root@198.51.100.7" in endpoints())

        # stopped: no autossh, one line however often it looks again
        ws.set_instance(0, actual_status="exited", ports=None)
        wait("the stopped line", lambda: "is not running" in stderr_path.read_text())
        runs = len(ws.autossh_runs())
        looks = ws.api.state.count("GET", "/api/v1/instances/")
        wait("three more looks",
             lambda: ws.api.state.count("GET", "/api/v1/instances/") >= looks + 6)
        assert len(ws.autossh_runs()) == runs
        log = stderr_path.read_text()
        assert log.count("is not running") == 1
        assert (f"vast-tunnel llm-00: Vast.ai instance labelled 'llm-00' is not running "
                f"({ID[0]} is exited); retrying every 0.4 s at most") in log

        # gone: a new reason, one new line; back: tunnels again
        with ws.api.state.lock:
            row = ws.api.state.instances.pop(ID[0])
        wait("the gone line", lambda: "gone or never created" in stderr_path.read_text())
        row.update(actual_status="running",
                   ports={"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": "41777"}]})
        with ws.api.state.lock:
            ws.api.state.instances[ID[0]] = row
        wait("autossh once the instance is back",
             lambda: "-p 41777 root@198.51.100.7" in endpoints())
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
    assert rc == 0
    log = stderr_path.read_text()
    assert log.count("gone or never created") == 1
    assert f"instance {ID[0]} answers SSH on 198.51.100.7:41555 (direct); starting autossh" in log
    assert log.rstrip().endswith("vast-tunnel llm-00: stopped")
    assert KEY not in log


SPEC_PLAYBOOK = """
- name: Build the tunnel specs as the tunnel role does
  hosts: workstation
  gather_facts: false
  tasks:
    - name: Find the tools
      ansible.builtin.include_role:
        name: tunnel
        tasks_from: tools.yml
    - name: Describe the tunnels
      ansible.builtin.include_role:
        name: tunnel
        tasks_from: specs.yml
    - name: Install the resolver
      ansible.builtin.include_role:
        name: tunnel
        tasks_from: vast.yml
    - name: Write the specs
      ansible.builtin.copy:
        content: "{{ _tunnel_specs | to_json }}"
        dest: "{{ specs_path }}"
        mode: "0600"
"""


def test_role_refuses_the_old_api_variable_names(tmp_path: Path) -> None:
    """The resolver's defaults follow vastai_api_url / vastai_api_key: the old vast_* names of
    those two fail the run instead of being ignored."""
    playbook = tmp_path / "vast.yml"
    playbook.write_text(SPEC_PLAYBOOK.partition("    - name: Write the specs")[0])
    with controller(tmp_path) as ctl:
        inventory = ctl.inventory({"all": {"children": {"workstation": {"hosts": {"localhost": {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}}})
        run = ctl.playbook(playbook, {"tunnel_hosts": []}, inventory=inventory,
                           args=["-e", "vast_api_url=http://127.0.0.1:9", "-e", "vast_api_key=x"])
    assert run.rc != 0
    text = " ".join(run.stdout.split())
    assert "vast_api_url was renamed vastai_api_url in this release (docs/upgrading.md)." in text
    assert "vast_api_key was renamed vastai_api_key in this release (docs/upgrading.md)." in text


@pytest.fixture
def controller_ws(tmp_path: Path) -> Iterator[tuple[Controller, Path, Path]]:
    with controller(tmp_path) as ctl:
        log = tmp_path / "autossh-runs.jsonl"
        yield ctl, install_autossh_stand_in(tmp_path / "autossh-test-stand-in", log), log


def test_role_runs_the_resolver_for_vast_hosts_only(
        controller_ws: tuple[Controller, Path, Path]) -> None:
    ctl, autossh, autossh_log = controller_ws
    inventory_dir = ctl.tmp / "inventory"
    inventory_dir.mkdir()
    (inventory_dir / "test.vast.yml").write_text(
        yaml.safe_dump({"plugin": "vastai", "api_url": ctl.api.url}))
    (inventory_dir / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {
        "gpu_hosts": {"hosts": {"static-box": {"ansible_host": "192.0.2.10",
                                               "ansible_port": 2222}}},
        "workstation": {"hosts": {"localhost": {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}}}))
    playbook = ctl.tmp / "specs.yml"
    playbook.write_text(SPEC_PLAYBOOK)
    specs_path = ctl.tmp / "specs.json"
    hosts = ["llm-00", "spaced-label-x", f"C.{ID[3]}", "static-box"]
    path = f"{autossh.parent}:{os.environ.get('PATH', '')}"
    run = ctl.playbook(playbook, {"tunnel_hosts": hosts, "specs_path": str(specs_path)},
                       inventory=inventory_dir, env={"VAST_API_KEY": KEY, "PATH": path})
    assert run.rc == 0, run.output
    assert KEY not in run.output
    specs = {s["host"]: s for s in json.loads(specs_path.read_text())}
    vast_dir = ctl.home / ".config" / "vastllm"
    known_hosts = vast_dir / "known_hosts"

    # a static host keeps the plain autossh command and its address-based known_hosts name;
    # the proxy tunnels sit behind the workstation gateway, at 18082 + slot x 10
    static = specs["static-box"]
    assert not static["vast"]
    assert static["known_name"] == "[192.0.2.10]:2222"
    assert static["command"].split() == [
        str(autossh), "-M", "0", "-N", "-o", "ServerAliveInterval=10",
        "-o", "ServerAliveCountMax=3", "-o", "ExitOnForwardFailure=yes", "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
        "-p", "2222", "-L", "127.0.0.1:18112:127.0.0.1:8082", "root@192.0.2.10"]

    resolver = vast_dir / "vast-tunnel.py"
    ssh_part = [str(autossh), "-M", "0", "-N", "-o", "ServerAliveInterval=10",
                "-o", "ServerAliveCountMax=3", "-o", "ExitOnForwardFailure=yes",
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={known_hosts}"]
    common = ["--api-url", ctl.api.url, "--env-file", str(vast_dir / "vast-api.env"),
              "--user", "root", "--max-start", "3", "--retry-max", "60", "--", *ssh_part]
    llm = specs["llm-00"]
    assert llm["vast"]
    assert llm["known_name"] == f"vast-instance-{ID[0]}"
    python = llm["command"].split()[0]
    assert llm["command"].split() == [python, str(resolver), "--label", "llm-00",
                                      "--id", str(ID[0]), *common,
                                      "-L", "127.0.0.1:18082:127.0.0.1:8082"]
    spaced = specs["spaced-label-x"]["command"].split()
    label_b64 = base64.b64encode(b"spaced label/x").decode()
    assert spaced[2:6] == ["--label-b64", label_b64, "--id", str(ID[8])]
    assert specs[f"C.{ID[3]}"]["command"].split()[2:4] == ["--id", str(ID[3])]

    # the role installed the resolver, its API client next to it and a 0600 key file
    assert resolver.read_bytes() == RESOLVER.read_bytes()
    assert resolver.stat().st_mode & 0o777 == 0o755
    client = vast_dir / API_CLIENT.name
    assert client.read_bytes() == API_CLIENT.read_bytes()
    assert client.stat().st_mode & 0o777 == 0o644
    # a change to either file restarts the Vast.ai tunnels (the service definitions carry it)
    def sha1(text: str) -> str:
        return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()

    each = [sha1(p.read_text().rstrip()) for p in (RESOLVER, API_CLIENT)]  # as lookup('file')
    assert llm["trigger"] == sha1(",".join(each))
    assert static["trigger"] == ""
    assert (vast_dir / "vast-api.env").read_text() == f"VAST_API_KEY={KEY}\n"
    assert (vast_dir / "vast-api.env").stat().st_mode & 0o777 == 0o600

    # and the command it built reaches the instance through the stand-in autossh
    env = ctl.env({"PATH": path})
    proc = subprocess.Popen(shlex.split(llm["command"]), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for("the role's command to start autossh", autossh_log.exists)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    first = json.loads(autossh_log.read_text().splitlines()[0])
    assert first["argv"][-7:] == ["-L", "127.0.0.1:18082:127.0.0.1:8082",
                                  "-o", f"HostKeyAlias=vast-instance-{ID[0]}",
                                  "-p", "30000", "root@203.0.113.1"]
