"""Wake on request with the real wake: a gateway-like proxy whose wake_command is the CLI's
`vastllm wake` (as roles/tunnel writes it: python -m vastllm.cli --project-dir --inventory wake)
running playbooks/wake.yml against the Vast.ai API double, the key only in the wake's 0600
environment file.

The instance's own boot is played by the test: when the double records the start (or, for a
moved label, the rental), a mock engine (bench/mock_engine.py) comes up on the upstream's port,
as the services of a started instance come up under its supervisor and its tunnel reconnects. The
SSH endpoint the wake waits for is a real sshd on loopback; the handover (recover.yml, site.yml)
is off, since no host is configured behind it (molecule/outbid runs the move with site.yml)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.doubles.vastai_api_double import FIRST_ID, make_instance
from tests.proxy.conftest import Proxy
from tests.support import REPO, free_port
from tests.vastai.playbook_support import KEY, Controller, real_sshd

MOCK_ENGINE = REPO / "bench" / "mock_engine.py"
LABEL = "sleepy"
SLEEPY = FIRST_ID + 40
NEW_ID = FIRST_ID + 100  # the first instance the double creates


class Boot:
    """Starts the mock engine on ``port`` once ``booted()`` (a look at the double) holds."""

    def __init__(self, port: int, booted: Callable[[], bool], log: Path) -> None:
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._log = log
        self._thread = threading.Thread(target=self._watch, args=(booted,), daemon=True)
        self._thread.start()

    def _watch(self, booted: Callable[[], bool]) -> None:
        while not self._stop.wait(0.05):
            if booted():
                with open(self._log, "ab") as log:
                    self.proc = subprocess.Popen(
                        [sys.executable, str(MOCK_ENGINE), str(self.port), "--delay-ms", "0"],
                        stdout=log, stderr=log,
                    )
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def gateway(vast: Controller, tmp_path: Path) -> Iterator[Callable[..., tuple[Proxy, Boot]]]:
    made: list[tuple[Proxy, Boot]] = []

    def start(booted: Callable[[], bool]) -> tuple[Proxy, Boot]:
        inventory = vast.inventory({"all": {
            "hosts": {"localhost": {"ansible_connection": "local",
                                    "ansible_python_interpreter": "{{ ansible_playbook_python }}"}},
            "children": {"gpu_hosts": {"hosts": {LABEL: {"vast_id": SLEEPY, "vast_label": LABEL}}}},
            "vars": {"vastai_api_url": vast.api.url, "vastai_poll_delay": 1,
                     "vastai_wake_gpu_timeout": 2, "vastllm_wake_handover": False},
        }})
        env_file = tmp_path / "gateway.json.wake.env"
        env_file.write_text(f"VAST_API_KEY={KEY}\n")
        env_file.chmod(0o600)
        boot = Boot(free_port(), booted, tmp_path / "engine.log")
        wake = [sys.executable, "-m", "vastllm.cli", "--project-dir", str(REPO),
                f"--inventory={inventory}", "wake"]
        # the controller's HOME and Ansible settings; no key in its environment
        env = {k: v for k, v in vast.env().items() if not k.startswith(("VAST_", "VASTLLM_"))}
        proxy = Proxy(
            tmp_path, env_settings=env,
            upstreams=[{"name": LABEL, "kind": "anthropic",
                        "base_url": f"http://127.0.0.1:{boot.port}"}],
            aliases={}, default_engine="anthropic", context_length=10485760,
            active_model_file=str(tmp_path / "none.json"), redis_url="", cache_mode="off",
            log_level="INFO", health_interval=3600, wake_command=wake,
            wake_env_file=str(env_file), wake_wait=150,
        )
        made.append((proxy, boot))
        return proxy, boot

    yield start
    for proxy, boot in made:
        proxy.stop()
        boot.stop()


def ask(proxy: Proxy, text: str) -> httpx.Response:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 32,
            "messages": [{"role": "user", "content": text}]}
    return httpx.post(proxy.url + "/v1/messages", json=body, timeout=180)


def test_a_request_while_stopped_starts_the_instance_once_and_gets_its_answer(
    vast: Controller, gateway: Callable[..., tuple[Proxy, Boot]]
) -> None:
    with vast.api.state.lock:
        vast.api.state.instances[SLEEPY] = make_instance(40, LABEL, status="stopped")
    with real_sshd() as ssh_port:
        vast.api.state.new_instance_ssh = {"host": "127.0.0.1", "port": ssh_port}
        proxy, _ = gateway(lambda: bool(vast.starts()))

        r = ask(proxy, "What is the capital of France?")
        assert r.status_code == 200, (r.text, proxy.log.read_text()[-3000:])
        assert r.headers["x-vastllm-upstream"] == LABEL
        assert "Paris" in r.json()["content"][0]["text"]
        assert [s["path"] for s in vast.starts()] == [f"/api/v0/instances/{SLEEPY}/"]
        assert vast.requests("PUT", "/api/v0/asks/") == []  # nothing rented

        assert ask(proxy, "again").status_code == 200  # the host runs: no second start
        assert len(vast.starts()) == 1
        assert proxy.health()["wake"]["started"] == 1
        log = proxy.log.read_text()
        assert f"wake: {LABEL}: started instance {SLEEPY}" in log.replace('"', "")
        assert KEY not in log


def test_a_request_while_the_gpu_is_gone_gets_its_answer_from_a_new_instance(
    vast: Controller, gateway: Callable[..., tuple[Proxy, Boot]]
) -> None:
    with vast.api.state.lock:
        vast.api.state.instances[SLEEPY] = make_instance(40, LABEL, status="stopped")
        vast.api.state.gpu_taken = [SLEEPY]
    with real_sshd() as ssh_port:
        vast.api.state.new_instance_ssh = {"host": "127.0.0.1", "port": ssh_port}
        proxy, _ = gateway(lambda: bool(vast.requests("PUT", "/api/v0/asks/")))

        r = ask(proxy, "What is the capital of France?")
        assert r.status_code == 200, (r.text, proxy.log.read_text()[-3000:])
        assert "Paris" in r.json()["content"][0]["text"]
        [create] = vast.requests("PUT", "/api/v0/asks/")
        assert create["body"]["label"] == LABEL
        assert [d["path"] for d in vast.requests("DELETE")] == [f"/api/v0/instances/{SLEEPY}/"]
        log = proxy.log.read_text().replace('"', "")
        assert f"rented instance {NEW_ID} and destroyed instance {SLEEPY}" in log
        assert KEY not in log
