"""The workstation gateway (tunnel_gateway): the tunnel role runs the project's proxy here with one
upstream per GPU host, through that host's autossh tunnel. Two vast-like test containers
(scripts/testhost, real SSH on loopback ports) play the hosts; each runs the Ollama test double on
its loopback port 8082 in the place of the host's proxy (both speak Anthropic's /v1/messages).

Proven: a host that joins the inventory reaches the running gateway without a restart; requests
through the one local endpoint reach both hosts; a conversation stays on its host; a host whose
server stops is failed over without a failed request; absent removes it all."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
import yaml

from tests.containers import capture
from tests.support import REPO, free_port, ssh_control_dir

pytestmark = pytest.mark.slow

TESTHOST = REPO / "scripts" / "testhost"
ANSIBLE_PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"
DOUBLE = REPO / "tests" / "doubles" / "ollama_double.py"
# the name clients send; a host proxy maps it to its model, the double serves it by that name
MODEL = "claude-sonnet-4-5"
# the host's double answers (what the gateway's health check and `vastllm wake` wait for)
PROBE = "import urllib.request as u; u.urlopen('http://127.0.0.1:8082/api/version')"
PLAYBOOK_PYTHON = "{{ ansible_playbook_python }}"


@dataclass
class GpuHost:
    name: str
    port: int
    identity_file: str

    def host_vars(self) -> dict[str, Any]:
        return {
            "ansible_host": "127.0.0.1",
            "ansible_port": self.port,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": self.identity_file,
        }

    def serve_double(self, knobs: dict[str, Any] | None = None) -> None:
        """The Ollama double on the host's 127.0.0.1:8082, where the host's proxy listens,
        with the double's ``knobs`` (token delays), in the place of one already there."""
        capture(["docker", "exec", self.name, "pkill", "-f", "ollama serve"])
        for _ in range(50):
            if capture(["docker", "exec", self.name, "pgrep", "-f", "ollama serve"]).returncode:
                break
            time.sleep(0.1)
        assert (
            capture(["docker", "cp", str(DOUBLE), f"{self.name}:/usr/local/bin/ollama"]).returncode
            == 0
        )
        done = capture(self.start_double_argv(knobs))
        assert done.returncode == 0, done.stderr
        for _ in range(50):
            if capture(["docker", "exec", self.name, "python3", "-c", PROBE]).returncode == 0:
                return
            time.sleep(0.2)
        log = capture(["docker", "exec", self.name, "cat", "/tmp/double.log"])
        raise AssertionError(f"the double did not start on {self.name}: {log.stdout}{log.stderr}")

    def start_double_argv(self, knobs: dict[str, Any] | None = None) -> list[str]:
        """The command that starts the double in the background on the host."""
        env = (
            f"OLLAMA_HOST=127.0.0.1:8082 OLLAMA_MODELS=/tmp/models OLLAMA_DOUBLE_MODELS={MODEL}"
            f" OLLAMA_DOUBLE_CONFIG={shlex.quote(json.dumps(knobs or {}))}"
        )
        return [
            "docker",
            "exec",
            "-d",
            self.name,
            "sh",
            "-c",
            f"{env} python3 /usr/local/bin/ollama serve >/tmp/double.log 2>&1",
        ]

    def generations(self) -> int:
        """How many answers the host's double generated (cache hits never reach it)."""
        probe = (
            "import urllib.request as u; "
            "print(u.urlopen('http://127.0.0.1:8082/__double__/stats').read().decode())"
        )
        done = capture(["docker", "exec", self.name, "python3", "-c", probe])
        assert done.returncode == 0, done.stderr
        return int(json.loads(done.stdout)["generations"])


@dataclass
class Workstation:
    home: Path
    inventory: Path
    playbook: Path
    gateway_port: int
    hosts_port: int
    # tunnel role settings of every run of this test, its teardown's included
    settings: dict[str, Any] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "VASTLLM_"))}
        env.update(
            HOME=str(self.home),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
            # ssh's control sockets under a short path (a unix socket path has ~100 characters)
            ANSIBLE_SSH_CONTROL_PATH_DIR=ssh_control_dir(),
        )
        return env

    def run_role(
        self, hosts: list[GpuHost], *, environ: dict[str, str] | None = None, **extra: Any
    ) -> subprocess.CompletedProcess[str]:
        """The role's playbook for ``hosts`` with ``extra`` vars, ``environ`` added to its
        environment."""
        self.inventory.write_text(
            yaml.safe_dump(
                {
                    "all": {
                        "children": {
                            "gpu_hosts": {"hosts": {h.name: h.host_vars() for h in hosts}},
                            "workstation": {
                                "hosts": {
                                    "localhost": {
                                        "ansible_connection": "local",
                                        "ansible_python_interpreter": PLAYBOOK_PYTHON,
                                    }
                                }
                            },
                        }
                    }
                }
            )
        )
        settings = {
            "tunnel_gateway": True,
            "tunnel_gateway_port": self.gateway_port,
            "tunnel_gateway_hosts_port": self.hosts_port,
            "tunnel_manager": "supervised",
            "tunnel_health_path": "/api/version",  # the double has no /health
            **self.settings,
            **extra,
        }
        extra_file = self.home / "extra.json"
        extra_file.write_text(json.dumps(settings))
        return capture(
            [
                str(ANSIBLE_PLAYBOOK),
                "-i",
                str(self.inventory),
                str(self.playbook),
                "-e",
                f"@{extra_file}",
            ],
            cwd=REPO,
            env={**self.env(), **(environ or {})},
            timeout=600,
        )

    def upstream_ports(self) -> dict[str, int]:
        settings = json.loads((self.home / ".config/vastllm/gateway.json").read_text())
        return {u["name"]: int(u["base_url"].rsplit(":", 1)[1]) for u in settings["upstreams"]}

    def wait_for_upstreams(self, names: set[str]) -> None:
        """Until the running gateway has reloaded its settings with ``names``."""
        deadline = time.monotonic() + 20
        while {u["name"] for u in self.health()["upstreams"]} != names:
            assert time.monotonic() < deadline, self.health()
            time.sleep(0.3)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def health(self) -> dict[str, Any]:
        return dict(httpx.get(self.url + "/health", timeout=10).json())


@pytest.fixture
def workstation(tmp_path: Path) -> Workstation:
    home = tmp_path / "home"
    (home / ".config" / "vastllm").mkdir(parents=True)
    inventory_dir = tmp_path / "inventory"
    inventory_dir.mkdir()
    (inventory_dir / "group_vars").symlink_to(REPO / "inventory" / "group_vars")
    playbook = tmp_path / "gateway.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Keep the tunnels and the gateway",
                    "hosts": "workstation",
                    "gather_facts": False,
                    "roles": ["tunnel"],
                }
            ]
        )
    )
    gateway, hosts = quiet_ports(3)
    return Workstation(home, inventory_dir / "hosts.yml", playbook, gateway, hosts)


def quiet_ports(count: int) -> tuple[int, int]:
    """A gateway port and the first of ``count - 1`` host tunnel ports (10 apart), below the
    kernel's ephemeral range: docker and ssh take ports from that range as they go, and one
    taken there after we chose it would be a collision we did not cause."""
    rng = random.Random()
    while True:
        base = rng.randrange(20000, 30000, 10)
        ports = [base + 10 * i for i in range(count)]
        try:
            for p in ports:
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", p))
        except OSError:
            continue
        return ports[0], ports[1]


@pytest.fixture
def gpu_hosts(workstation: Workstation) -> Iterator[list[GpuHost]]:
    hosts: list[GpuHost] = []
    try:
        for _ in range(2):
            name = f"vastllm-gw-{free_port()}"
            up = capture([str(TESTHOST), "up", name, "vast-like"], cwd=REPO, timeout=600)
            assert up.returncode == 0, up.stderr
            info = json.loads(up.stdout.strip().splitlines()[-1])
            host = GpuHost(name, int(info["port"]), str(info["identity_file"]))
            host.serve_double()
            hosts.append(host)
        yield hosts
    finally:
        workstation.run_role(hosts, tunnel_state="absent")
        for h in hosts:
            capture([str(TESTHOST), "down", h.name], cwd=REPO, timeout=120)


def ask(ws: Workstation, first: str, *later: str) -> httpx.Response:
    messages = [{"role": "user", "content": first}]
    for text in later:
        messages += [{"role": "assistant", "content": "ok"}, {"role": "user", "content": text}]
    return httpx.post(
        ws.url + "/v1/messages",
        json={"model": MODEL, "max_tokens": 20, "messages": messages},
        timeout=30,
    )


# a wake command for the gateway (tunnel_gateway_wake_command): records that it ran and whether
# the wake environment file gave it the Vast.ai key and the model's S3 credentials, then starts
# the host's double and waits until it answers, as `vastllm wake` waits for the host's health
WAKE_SCRIPT = '''
import json, os, subprocess, sys, time
record, start, probe = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
with open(record, "a") as f:
    f.write("with key" if os.environ.get("VAST_API_KEY") else "without key")
    f.write(" and s3\\n" if os.environ.get("AWS_SECRET_ACCESS_KEY") else "\\n")
subprocess.run(start, check=True)
for _ in range(100):
    if subprocess.run(probe).returncode == 0:
        sys.exit(0)
    time.sleep(0.2)
sys.exit(1)
'''


def program_pid(name: str) -> str:
    """The supervisord program's pid ("" when there is no such program)."""
    done = capture(["supervisorctl", "-c", "/etc/supervisor/supervisord.conf", "pid", name])
    return done.stdout.strip() if done.stdout.strip().isdigit() else ""


def gateway_pid(ws: Workstation) -> str:
    return program_pid("vastllm-gateway")


def test_one_endpoint_for_every_host(workstation: Workstation, gpu_hosts: list[GpuHost]) -> None:
    ws = workstation
    first = ws.run_role(gpu_hosts[:1])
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert f"gateway on http://127.0.0.1:{ws.gateway_port}" in first.stdout
    assert ask(ws, "alone").headers["x-vastllm-upstream"] == gpu_hosts[0].name

    # a second host joins: the running gateway takes it without a restart
    pid = gateway_pid(ws)
    grown = ws.run_role(gpu_hosts)
    assert grown.returncode == 0, grown.stdout[-4000:] + grown.stderr[-2000:]
    # the first host keeps its port (slot 0), the new one gets the next
    assert ws.upstream_ports() == {
        gpu_hosts[0].name: ws.hosts_port,
        gpu_hosts[1].name: ws.hosts_port + 10,
    }
    ws.wait_for_upstreams({h.name for h in gpu_hosts})
    assert gateway_pid(ws) == pid
    again = ws.run_role(gpu_hosts)
    assert "changed=0" in again.stdout, again.stdout[-3000:]

    # different conversations spread over both hosts; each answer comes from a host's double
    served = set()
    for i in range(6):
        r = ask(ws, f"question {i}")
        assert r.status_code == 200, r.text
        assert r.json()["content"][0]["text"] == f"You said: question {i}"
        served.add(r.headers["x-vastllm-upstream"])
    assert served == {h.name for h in gpu_hosts}

    # one conversation stays on its host
    home = ask(ws, "keep me").headers["x-vastllm-upstream"]
    for n in range(3):
        assert ask(ws, "keep me", f"turn {n}").headers["x-vastllm-upstream"] == home

    # that host's server stops: no request fails, they go to the other
    stopped = next(h for h in gpu_hosts if h.name == home)
    other = next(h for h in gpu_hosts if h.name != home)
    assert capture(["docker", "exec", stopped.name, "pkill", "-f", "ollama serve"]).returncode == 0
    for n in range(4):
        r = ask(ws, "keep me", f"after {n}")
        assert r.status_code == 200, r.text
        assert r.headers["x-vastllm-upstream"] == other.name

    # the stopped host leaves the inventory: the gateway drops it without a restart, the other
    # host's tunnel keeps its port and is not restarted, the departed host's tunnel is removed
    tunnel = f"vastllm-tunnel-{other.name}"
    pid, tunnel_pid = gateway_pid(ws), program_pid(tunnel)
    shrunk = ws.run_role([other])
    assert shrunk.returncode == 0, shrunk.stdout[-4000:] + shrunk.stderr[-2000:]
    ws.wait_for_upstreams({other.name})
    assert gateway_pid(ws) == pid
    assert program_pid(tunnel) == tunnel_pid
    assert ws.upstream_ports() == {other.name: ws.hosts_port + 10 * gpu_hosts.index(other)}
    assert program_pid(f"vastllm-tunnel-{stopped.name}") == ""
    assert ask(ws, "one host left").headers["x-vastllm-upstream"] == other.name

    # wake on request: the last host's server goes; the first requests run the wake command
    # once (its key from the 0600 wake file, never the settings or argv), wait, and get answers
    record, script, key = ws.home / "wake.calls", ws.home / "wake.py", f"vast-{uuid.uuid4().hex}"
    script.write_text(WAKE_SCRIPT)
    probe = ["docker", "exec", other.name, "python3", "-c", PROBE]
    wake = [sys.executable, str(script), str(record)]
    wake += [json.dumps(other.start_double_argv()), json.dumps(probe)]
    # the run's S3 credentials reach the wake too (a host that moved fetches its model again)
    s3 = {"AWS_ACCESS_KEY_ID": "AKIAWAKETEST", "AWS_SECRET_ACCESS_KEY": f"s3-{uuid.uuid4().hex}"}
    wakeful = ws.run_role(
        [other],
        environ=s3,
        vastllm_wake_on_request=True,
        tunnel_gateway_wake_command=wake,
        tunnel_vast_api_key=key,
    )
    assert wakeful.returncode == 0, wakeful.stdout[-4000:] + wakeful.stderr[-2000:]
    assert key not in wakeful.stdout + wakeful.stderr
    assert s3["AWS_SECRET_ACCESS_KEY"] not in wakeful.stdout + wakeful.stderr
    config = ws.home / ".config/vastllm/gateway.json"
    wake_env = config.with_name(config.name + ".wake.env")
    assert oct(wake_env.stat().st_mode & 0o777) == "0o600"
    assert f"VAST_API_KEY={key}" in wake_env.read_text()
    assert f"AWS_SECRET_ACCESS_KEY={s3['AWS_SECRET_ACCESS_KEY']}" in wake_env.read_text()
    assert "AWS_SESSION_TOKEN" not in wake_env.read_text()  # not set: no line
    assert key not in config.read_text()
    assert s3["AWS_SECRET_ACCESS_KEY"] not in config.read_text()
    deadline = time.monotonic() + 30  # restarted (its settings changed): until it has the wake
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if ws.health().get("wake") is not None:
                break
        assert time.monotonic() < deadline, "the gateway did not come back with wake on request"
        time.sleep(0.3)
    assert capture(["docker", "exec", other.name, "pkill", "-f", "ollama serve"]).returncode == 0
    with ThreadPoolExecutor(2) as pool:
        woken = list(pool.map(lambda n: ask(ws, f"wake up {n}"), range(2)))
    assert [r.status_code for r in woken] == [200, 200], [r.text for r in woken]
    assert record.read_text() == "with key and s3\n"  # one wake for both
    assert ws.health()["wake"]["started"] == 1

    # no host left: nothing to stand in front of, the gateway stops and frees its port
    empty = ws.run_role([])
    assert empty.returncode == 0, empty.stdout[-4000:] + empty.stderr[-2000:]
    assert gateway_pid(ws) == ""
    assert program_pid(tunnel) == ""
    with socket.socket() as sock:
        # (connections of the run in TIME_WAIT hold the port too: only a listener is refused)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", ws.gateway_port))
        sock.listen()


# -- a bounded load run with a host stopped and started again --------------------------------

# the doubles answer slowly enough that requests are in flight on a host when it is stopped
SLOW = {"first_token_delay": 0.2, "token_delay": 0.08}
WORKERS = 4


@dataclass
class Outcome:
    """One request of the load run, as its client saw it."""

    worker: int
    stream: bool
    start: float
    end: float = 0.0
    upstream: str = ""
    events: int = 0
    ok: bool = False
    error: str = ""
    error_event: bool = False  # an Anthropic ``error`` event ended the stream
    turn: int = 1
    first_upstream: str = ""  # a second turn's: where its first turn went


def one_request(
    client: anthropic.Anthropic, worker: int, text: str, stream: bool, history: list[Any]
) -> Outcome:
    out = Outcome(worker, stream, time.monotonic())
    messages = [*history, {"role": "user", "content": text}]
    want = f"You said: {text}"
    try:
        if stream:
            answer = client.messages.create(
                model=MODEL, max_tokens=40, messages=messages, stream=True
            )
            out.upstream = answer.response.headers.get("x-vastllm-upstream", "")
            got = ""
            for event in answer:
                out.events += 1
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    got += event.delta.text
            out.ok = got == want
        else:
            raw = client.messages.with_raw_response.create(
                model=MODEL, max_tokens=40, messages=messages
            )
            out.upstream = raw.headers.get("x-vastllm-upstream", "")
            block = raw.parse().content[0]
            out.ok = block.type == "text" and block.text == want
        if not out.ok:
            out.error = "wrong answer"
    except anthropic.APIStatusError as e:
        out.error = f"{type(e).__name__} {e.status_code}: {e.message}"
        body = e.body if isinstance(e.body, dict) else {}
        # the SDK raises for an SSE error event with the 200 of the stream's response
        out.error_event = stream and e.status_code == 200 and body.get("type") == "error"
    except anthropic.APIError as e:
        out.error = f"{type(e).__name__}: {e}"
    out.end = time.monotonic()
    return out


def load(url: str, worker: int, stop: threading.Event, outcomes: list[Outcome]) -> None:
    """Conversations one after another with the official SDK, half of them streamed; every
    third one asks a second turn, which should stay on the first turn's host."""
    client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0, timeout=30)
    n = 0
    while not stop.is_set():
        n += 1
        text = f"load worker {worker} conversation {n}"
        first = one_request(client, worker, text, n % 2 == 0, [])
        outcomes.append(first)
        if first.ok and n % 3 == 0 and not stop.is_set():
            history = [
                {"role": "user", "content": text},
                {"role": "assistant", "content": f"You said: {text}"},
            ]
            second = one_request(client, worker, f"{text} turn 2", False, history)
            second.turn, second.first_upstream = 2, first.upstream
            outcomes.append(second)


def metric(text: str, name: str, labels: str) -> float:
    found = re.search(rf"^{re.escape(name)}{{{re.escape(labels)}}} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


@pytest.mark.timeout(900)
def test_a_host_stopped_under_load_fails_only_its_started_streams(
    workstation: Workstation, gpu_hosts: list[GpuHost]
) -> None:
    ws = workstation
    victim, other = gpu_hosts
    for h in gpu_hosts:
        h.serve_double(SLOW)
    # the gateway's own cache: the redis role run on this workstation, on a port of the test's
    cache_port = free_port()
    ws.settings.update(tunnel_gateway_cache=True, tunnel_gateway_cache_port=cache_port)
    try:
        up = ws.run_role(gpu_hosts)
        assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-2000:]
        assert program_pid("vastllm-gateway-redis")
        settings = json.loads((ws.home / ".config/vastllm/gateway.json").read_text())
        assert settings["redis_url"] == f"redis://127.0.0.1:{cache_port}/0"
        password = Path("/etc/vastllm/vastllm-gateway-redis.password")
        assert settings["redis_password"] == password.read_text()
        assert oct(password.stat().st_mode & 0o777) == "0o600"
        assert "changed=0" in ws.run_role(gpu_hosts).stdout
        ws.wait_for_upstreams({victim.name, other.name})

        stop = threading.Event()
        outcomes: list[Outcome] = []
        threads = [
            threading.Thread(target=load, args=(ws.url, i, stop, outcomes), daemon=True)
            for i in range(WORKERS)
        ]
        began = time.monotonic()
        for t in threads:
            t.start()
        try:
            time.sleep(12)
            # the host's container stops at once (power lost, instance preempted)
            killed = time.monotonic()
            assert capture(["docker", "kill", victim.name]).returncode == 0
            time.sleep(12)
            assert capture(["docker", "start", victim.name], timeout=60).returncode == 0
            victim.serve_double(SLOW)
            back = time.monotonic()
            # autossh reconnects, the gateway's health check takes the host back: traffic again
            deadline = began + 60
            while time.monotonic() < deadline and not any(
                o.ok and o.upstream == victim.name and o.start > back for o in list(outcomes)
            ):
                time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=40)
        done = list(outcomes)
        summary = f"{len(done)} requests, {sum(o.ok for o in done)} ok; failed: " + "; ".join(
            f"{o.upstream or '?'} stream={o.stream} {o.error}" for o in done if not o.ok
        )
        print(summary)
        # before the stop, both hosts served
        assert {o.upstream for o in done if o.ok and o.end < killed} == {victim.name, other.name}
        # the only failures: streams that had started on the stopped host, ended with an
        # Anthropic error event
        for o in done:
            if not o.ok:
                assert o.error_event, summary
                assert o.upstream == victim.name, summary
                assert o.start < killed < o.end, summary
        # requests that had nothing back yet went to the other host: no request started while
        # the host was down failed, and the gateway saw the stopped host fail under it
        down = [o for o in done if killed < o.start and o.end < back]
        assert down, summary
        assert all(o.ok and o.upstream == other.name for o in down), summary
        metrics = httpx.get(ws.url + "/metrics", timeout=10).text
        upstream = f'upstream="{victim.name}"'
        assert metric(metrics, "vastllm_proxy_upstream_errors_total", upstream) >= 1, metrics
        # the host came back and took traffic again
        assert any(o.ok and o.upstream == victim.name and o.start > back for o in done), summary
        # a conversation's second turn stayed on its host while that host was up
        kept = [o for o in done if o.turn == 2 and o.end < killed]
        assert kept, summary
        assert all(o.upstream == o.first_upstream for o in kept), summary
        assert metric(metrics, "vastllm_proxy_affinity_total", 'result="kept"') >= len(kept)

        # the gateway's own cache: a repeated deterministic question is answered here, and
        # never crosses a tunnel to a host
        question = {
            "model": MODEL,
            "max_tokens": 20,
            "temperature": 0,
            "messages": [{"role": "user", "content": "cached at the gateway"}],
        }
        miss = httpx.post(ws.url + "/v1/messages", json=question, timeout=30)
        assert miss.status_code == 200, miss.text
        generated = victim.generations() + other.generations()
        hit = httpx.post(ws.url + "/v1/messages", json=question, timeout=30)
        assert hit.status_code == 200, hit.text
        assert hit.headers["x-vastllm-cache"] == "hit"
        assert hit.json()["content"] == miss.json()["content"]
        assert victim.generations() + other.generations() == generated
        health = ws.health()
        assert health["redis"] == "ok", health
    finally:
        # the tunnels go, and the gateway's cache with them
        gone = ws.run_role(gpu_hosts, tunnel_state="absent")
        assert gone.returncode == 0, gone.stdout[-3000:]
        assert program_pid("vastllm-gateway-redis") == ""
        ws.settings.clear()
        for leftover in Path("/etc/vastllm").glob("vastllm-gateway-redis.*"):
            leftover.unlink()
        Path("/usr/local/lib/vastllm/vastllm-gateway-redis-cli").unlink(missing_ok=True)
        shutil.rmtree("/var/lib/vastllm/vastllm-gateway-redis", ignore_errors=True)
