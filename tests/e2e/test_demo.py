"""``make demo`` end to end: scripts/demo.sh up (a vast-like container provisioned by site.yml
over real SSH, the real small model, the autossh tunnel) answers "What is the capital of
France?" through ``vastllm chat``; then ``vastllm status`` reads the real host and
``scripts/demo.sh down`` removes everything, whatever happened. Free ports, its own container
name and state directory, so it never touches a demo someone else runs."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import assert_clean, invoke
from tests.support import REPO, free_port

pytestmark = pytest.mark.slow

DEMO = REPO / "scripts" / "demo.sh"
QUESTION = "What is the capital of France? Answer in one word."


def distinct_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


class Demo:
    def __init__(self, tmp: Path) -> None:
        ssh_port, s3_port, proxy_port = distinct_ports(3)
        self.proxy_port = proxy_port
        self.state = tmp / "state"
        self.inventory = self.state / "demo" / "hosts.yml"
        self.log = tmp / "demo.log"
        # what the Makefile exports for `make demo`
        self.env = {
            **os.environ,
            "PATH": f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_FORCE_COLOR": "0",
            "PY_COLORS": "0",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VASTLLM_STATE": str(self.state),
            "VASTLLM_DEMO_NAME": f"vastllm-demo-e2e-{ssh_port}",
            "VASTLLM_DEMO_SSH_PORT": str(ssh_port),
            "VASTLLM_DEMO_S3_PORT": str(s3_port),
            "VASTLLM_DEMO_PROXY_PORT": str(proxy_port),
        }

    def run(self, action: str, timeout: float) -> subprocess.CompletedProcess[str]:
        """scripts/demo.sh ACTION; its output is also kept in demo.log next to the state."""
        done = subprocess.run(
            [str(DEMO), action],
            cwd=REPO,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
        with self.log.open("a") as log:
            log.write(f"\n### scripts/demo.sh {action} -> {done.returncode}\n{done.stdout}")
        return done

    def tunnel_vars(self) -> str:
        forwards = [{"name": "proxy", "remote_port": 8082, "local_port": self.proxy_port}]
        return f"tunnel_forwards={json.dumps(forwards)}"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Demo, str]]:
    d = Demo(tmp_path_factory.mktemp("demo"))
    try:
        up = d.run("up", timeout=1500)
        assert up.returncode == 0, f"demo.sh up failed ({up.returncode}):\n{up.stdout[-4000:]}"
        yield d, up.stdout
    finally:
        down = d.run("down", timeout=300)
        assert down.returncode == 0, f"demo.sh down failed:\n{down.stdout[-2000:]}"
        assert "demo removed" in down.stdout


@pytest.mark.timeout(1800)
def test_demo_answers_through_vastllm_chat(demo: tuple[Demo, str]) -> None:
    _, output = demo
    lines = output.splitlines()
    assert f"    Q: {QUESTION}" in lines
    answers = [line.removeprefix("    A: ") for line in lines if line.startswith("    A: ")]
    assert len(answers) == 1, output[-3000:]
    assert "Paris" in answers[0], output[-3000:]
    assert any(line.startswith("==> Done in ") and line.endswith(" s.") for line in lines)


@pytest.mark.timeout(1800)
def test_status_of_the_demo_host(demo: tuple[Demo, str]) -> None:
    d, output = demo
    url = f"http://127.0.0.1:{d.proxy_port}"
    # the demo's question again: the same deterministic request, served from the cache now
    again = invoke("chat", QUESTION, "--url", url, "--max-tokens", "20", "--temperature", "0")
    assert again.exit_code == 0, again.output
    first = next(line for line in output.splitlines() if line.startswith("    A: "))
    assert again.stdout.strip() == first.removeprefix("    A: ").strip()

    result = invoke(
        "--project-dir",
        str(REPO),
        "-i",
        str(d.inventory),
        "-e",
        d.tunnel_vars(),
        "status",
        "--json",
    )
    assert_clean(result)
    assert result.exit_code == 0, result.output
    hosts: list[dict[str, Any]] = json.loads(result.stdout)["hosts"]
    assert len(hosts) == 1
    host = hosts[0]
    assert host["healthy"] is True, host["problems"]
    assert host["init"] == "supervisord"
    assert host["supervisord"] is True
    running = {s["name"]: s["running"] for s in host["services"]}
    assert running == {"vastllm-model-api": True, "vastllm-proxy": True, "vastllm-redis": True}
    health = {s["name"]: s["health"] for s in host["services"]}
    assert health["vastllm-model-api"] == 200
    assert health["vastllm-proxy"] == 200
    assert host["redis"] == "PONG"
    assert host["active_model"]["name"] == "smollm2-135m-instruct"
    assert host["gpu"]["mode"] == "cpu"
    assert host["disk"]["free_bytes"] > 0
    assert host["cache"] == {"hits": 1, "misses": 1, "hit_ratio": 0.5}
    assert [(t["name"], t["local_port"], t["answered"]) for t in host["tunnels"]] == [
        ("proxy", d.proxy_port, True)
    ]
