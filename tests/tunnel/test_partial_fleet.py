"""A partial fleet on the workstation: one GPU host of site.yml cannot be reached, the other can.
The tunnel play (real site.yml, tag tunnel, real SSH and autossh to a vast-like container running
the Ollama double where the host's proxy listens) still brings the workstation up: it does not
read the missing host's key nor wait for its tunnel, says so, and the gateway serves the host
that is there, with the missing one listed as an unhealthy upstream."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.containers import capture
from tests.support import REPO, free_port, ssh_control_dir
from tests.tunnel.test_gateway import ANSIBLE_PLAYBOOK, MODEL, TESTHOST, GpuHost, quiet_ports

pytestmark = pytest.mark.slow


@pytest.fixture
def good_host() -> Iterator[GpuHost]:
    name = f"vastllm-pf-{free_port()}"
    up = capture([str(TESTHOST), "up", name, "vast-like"], cwd=REPO, timeout=600)
    assert up.returncode == 0, up.stderr
    info = json.loads(up.stdout.strip().splitlines()[-1])
    host = GpuHost(name, int(info["port"]), str(info["identity_file"]))
    try:
        host.serve_double()
        yield host
    finally:
        capture([str(TESTHOST), "down", name], cwd=REPO, timeout=120)


def test_a_host_that_cannot_be_reached_does_not_stop_the_workstation(
    tmp_path: Path, good_host: GpuHost
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    inventory_dir = tmp_path / "inventory"
    inventory_dir.mkdir()
    (inventory_dir / "group_vars").symlink_to(REPO / "inventory" / "group_vars")
    inventory = inventory_dir / "hosts.yml"
    # nothing listens there; no reconnection retries (ansible.cfg's 5 back off for 26 s, which
    # only make this test slower: the outcome is the same)
    gone = {
        "ansible_host": "127.0.0.1",
        "ansible_port": free_port(),
        "ansible_user": "root",
        "ansible_ssh_retries": 0,
    }
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "children": {
                        "gpu_hosts": {
                            "hosts": {"gpu-gone": gone, good_host.name: good_host.host_vars()}
                        },
                        "workstation": {
                            "hosts": {
                                "localhost": {
                                    "ansible_connection": "local",
                                    "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                                }
                            }
                        },
                    }
                }
            }
        )
    )
    gateway_port, hosts_port = quiet_ports(3)
    settings = {
        "tunnel_gateway_port": gateway_port,
        "tunnel_gateway_hosts_port": hosts_port,
        "tunnel_manager": "supervised",
        "tunnel_health_path": "/api/version",  # the double has no /health
        "tunnel_health_timeout": 20,
    }
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps(settings))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "VASTLLM_"))}
    env.update(
        HOME=str(home),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_SSH_CONTROL_PATH_DIR=ssh_control_dir(),
    )

    def site(*args: str) -> str:
        done = capture(
            [
                str(ANSIBLE_PLAYBOOK),
                "-i",
                str(inventory),
                "site.yml",
                "--tags",
                "tunnel",
                "-e",
                f"@{extra}",
                *args,
            ],
            cwd=REPO,
            env=env,
            timeout=600,
        )
        return done.stdout + done.stderr

    try:
        out = site()
        recap = {line.split()[0]: line for line in out.splitlines() if " : ok=" in line}
        assert "unreachable=1" in recap["gpu-gone"], out[-3000:]
        assert "failed=0" in recap["localhost"], out[-6000:]
        assert "unreachable=0" in recap["localhost"], out[-6000:]
        assert "gpu-gone: its run failed, so its tunnel was not checked" in out
        health = httpx.get(f"http://127.0.0.1:{gateway_port}/health", timeout=10).json()
        upstreams = {u["name"]: u["healthy"] for u in health["upstreams"]}
        assert upstreams == {"gpu-gone": False, good_host.name: True}, health
        answer = httpx.post(
            f"http://127.0.0.1:{gateway_port}/v1/messages",
            json={
                "model": MODEL,
                "max_tokens": 20,
                "messages": [{"role": "user", "content": "still here"}],
            },
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-vastllm-upstream"] == good_host.name
    finally:
        site("-e", "tunnel_state=absent")
