"""site.yml on a replica of the Vast.ai base image: join the image's supervisord, never fight it.

The cases run in file order on one host: what the converge left, then a container restart (the
image's boot brings everything back, no Ansible), then recover.yml on a healthy host and after
supervisord itself is killed.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from scenario_helpers import anthropic_reply

testinfra_hosts = ["ansible://vastllm-vast-base"]

HOST = "vastllm-vast-base"
OURS = ("vastllm-ollama", "vastllm-proxy", "vastllm-redis")
IMAGE_PROGRAMS = ("instance_portal", "jupyter")


def states(host) -> dict[str, str]:
    lines = host.run("supervisorctl status").stdout.splitlines()
    return {line.split()[0]: line.split()[1] for line in lines if len(line.split()) > 1}


def supervisord_pids(host) -> list[str]:
    return host.run("pgrep -x supervisord").stdout.split()


def wait_for(predicate, seconds: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        try:
            if predicate():
                return time.monotonic() - start
        except (AssertionError, RuntimeError, ValueError):
            pass
        time.sleep(1)
    pytest.fail(f"{what} did not happen within {seconds} s")


def all_running(host, names=OURS + IMAGE_PROGRAMS) -> bool:
    now = states(host)
    return all(now.get(name) == "RUNNING" for name in names)


def proxy_health(host) -> int:
    return int(host.run("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8082/health").stdout)


def test_no_supervisor_package_is_installed_over_the_images_own(host):
    assert host.run("dpkg-query -W -f='${Status}' supervisor").stdout.find("install ok") == -1
    assert not host.file("/usr/bin/supervisorctl").exists
    assert host.file("/usr/local/bin/supervisorctl").exists


def test_exactly_one_supervisord_runs_and_the_images_boot_started_it(host):
    pids = supervisord_pids(host)
    assert len(pids) == 1, pids
    args = host.run(f"tr '\\0' ' ' < /proc/{pids[0]}/cmdline").stdout
    assert "-c /etc/supervisor/supervisord.conf" in args
    parent = host.run(f"ps -o ppid= -p {pids[0]}").stdout.strip()
    assert "boot_default.sh" in host.run(f"tr '\\0' ' ' < /proc/{parent}/cmdline").stdout
    probe = json.loads(host.run("/usr/local/lib/vastllm/supervisor probe").stdout)
    assert probe == {"ctl": "/usr/local/bin/supervisorctl",
                     "conf": "/etc/supervisor/supervisord.conf",
                     "running": True, "image_boot": True}


def test_our_services_and_the_images_programs_all_run(host):
    assert all_running(host), states(host)
    # the stand-in Jupyter runs only in the environment its boot step prepared
    assert "VAST_BOOT_PREPARED=1" in host.file("/etc/environment").content_string


def test_the_onstart_script_starts_the_supervisor_through_the_door(host):
    onstart = host.file("/root/onstart.sh").content_string
    assert "/usr/local/lib/vastllm/supervisor start" in onstart
    assert "supervisorctl" not in onstart


def test_the_proxy_answers_the_anthropic_sdk(host, sdk):
    answer, _ = anthropic_reply(host, sdk, "hello from the base image")
    assert "hello from the base image" in answer  # the Ollama double's echo


def test_a_container_restart_brings_everything_back_without_ansible(host):
    before = supervisord_pids(host)
    subprocess.run(["docker", "restart", "-t", "2", HOST], check=True, capture_output=True)
    # the SSH port mapping survives the restart, as Vast.ai's does
    wait_for(lambda: host.run("true").rc == 0, 60, "SSH back")
    took = wait_for(lambda: all_running(host) and proxy_health(host) == 200, 120,
                    "our services and the image's programs RUNNING, the proxy healthy")
    print(f"all back {took:.1f} s after the container restart")
    after = supervisord_pids(host)
    assert len(after) == 1, after
    assert after != before, (before, after)


def test_recover_on_the_healthy_host_changes_nothing(host, playbook):
    rc, out, changed = playbook("playbooks/recover.yml")
    assert rc == 0, out[-3000:]
    assert changed == {HOST: 0}, out[-3000:]
    assert "HEALTHY" in out


def test_a_killed_supervisord_is_started_again_through_the_images_boot(host, playbook):
    host.run("pkill -9 -x supervisord")
    assert host.run("/usr/local/lib/vastllm/supervisor ctl pid").rc != 0
    rc, out, changed = playbook("playbooks/recover.yml")
    assert rc == 0, out[-3000:]
    assert changed[HOST] > 0
    assert "supervisord is not running" in out
    # one supervisord again, started by a new run of the image's boot, and ours all RUNNING; the
    # image's own programs that outlived the killed daemon keep their ports (its problem, not ours)
    assert len(supervisord_pids(host)) == 1
    assert all_running(host, OURS), states(host)
    assert proxy_health(host) == 200
    rc, out, changed = playbook("playbooks/recover.yml")
    assert rc == 0, out[-3000:]
    assert changed == {HOST: 0}, out[-3000:]
