"""Wake on request (src/vastllm/proxy/wake.py): a gateway-like proxy (one anthropic-kind upstream,
as roles/tunnel/tasks/gateway.yml writes it) whose upstream's port is closed, and a stand-in
wake command (a script in tmp_path) that records each call, then brings the upstream up
(bench/mock_engine.py on that port), never does, or fails; with a paid upstream (the Anthropic
API double) too."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.proxy.conftest import AnthropicDouble, Proxy, wait_until
from tests.support import REPO, free_port
from vastllm.proxy.settings import CONFIG_ENV, ProxySettings

MOCK_ENGINE = REPO / "bench" / "mock_engine.py"
SECRET = "vast-key-that-must-stay-hidden-0123456789"  # noqa: S105 - a test value
PAID_KEY = "sk-ant-api03-double-" + "w" * 24  # the paid double's key

WAKE_SCRIPT = textwrap.dedent(
    """\
    import json, os, socket, subprocess, sys, time
    from pathlib import Path

    cfg = json.loads(Path(sys.argv[1]).read_text())
    with open(cfg["calls"], "a") as f:
        f.write(json.dumps({"argv": sys.argv, "key": os.environ.get("VAST_API_KEY")}) + "\\n")
    print("waking: starting the instances", flush=True)
    if cfg["mode"] == "fail":
        print("no matching offer for label gpu-a; key was " + str(os.environ.get("VAST_API_KEY")))
        sys.exit(1)
    end = time.monotonic() + 120  # released by the test; never runs on for long after it
    while not Path(cfg["release"]).exists() and time.monotonic() < end:
        time.sleep(0.05)
    if cfg["mode"] == "up":
        log = open(cfg["engine_log"], "ab")
        engine = subprocess.Popen(
            [sys.executable, cfg["engine"], str(cfg["port"]), "--delay-ms", "0"],
            stdout=log, stderr=log, start_new_session=True,
        )
        Path(cfg["engine_pid"]).write_text(str(engine.pid))
        while True:
            try:
                socket.create_connection(("127.0.0.1", cfg["port"]), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
    print("woken", flush=True)
    """
)


@dataclass
class Fleet:
    """The gateway-like proxy, the port of its one (stopped) host and the wake's records."""

    proxy: Proxy
    port: int
    dir: Path
    calls_file: Path
    release: Path
    engine_pid: Path
    pids: list[int] = field(default_factory=list)

    def calls(self) -> list[dict[str, Any]]:
        if not self.calls_file.exists():
            return []
        return [json.loads(line) for line in self.calls_file.read_text().splitlines()]

    def wake_state(self) -> dict[str, Any]:
        return dict(self.proxy.health()["wake"])

    def log(self) -> str:
        return self.proxy.log.read_text()


def _start(
    tmp_path: Path, mode: str | None, paid: AnthropicDouble | None = None, **settings: Any
) -> Fleet:
    port = free_port()
    calls, release, engine_pid = tmp_path / "calls.jsonl", tmp_path / "release", tmp_path / "pid"
    cfg = tmp_path / "wake.json"
    cfg.write_text(
        json.dumps(
            {
                "mode": mode,
                "calls": str(calls),
                "release": str(release),
                "port": port,
                "engine": str(MOCK_ENGINE),
                "engine_log": str(tmp_path / "engine.log"),
                "engine_pid": str(engine_pid),
            }
        )
    )
    script = tmp_path / "wake.py"
    script.write_text(WAKE_SCRIPT)
    env_file = tmp_path / "wake.env"
    env_file.write_text(f"# the gateway's wake environment\nVAST_API_KEY={SECRET}\n")
    env_file.chmod(0o600)
    wake: dict[str, Any] = {}
    if mode is not None:
        wake = {
            "wake_command": [sys.executable, str(script), str(cfg)],
            "wake_env_file": str(env_file),
        }
    proxy = Proxy(
        tmp_path,
        # the gateway's settings (roles/tunnel/tasks/gateway.yml)
        upstreams=[
            {"name": "gpu-a", "kind": "anthropic", "base_url": f"http://127.0.0.1:{port}"},
            *([] if paid is None else [{
                "name": "anthropic-api", "kind": "anthropic", "base_url": paid.url,
                "api_key": PAID_KEY, "paid": True, "model": "claude-sonnet-4-5",
            }]),
        ],
        aliases={},
        default_engine="anthropic",
        context_length=10485760,
        active_model_file=str(tmp_path / "none.json"),
        redis_url="",
        cache_mode="off",
        log_level="INFO",
        **{**wake, **settings},
    )
    return Fleet(proxy, port, tmp_path, calls, release, engine_pid)


@pytest.fixture
def fleets() -> Iterator[list[Fleet]]:
    made: list[Fleet] = []
    yield made
    for fleet in made:
        fleet.release.touch()  # a wake still running ends at once
        fleet.proxy.stop()
        if fleet.engine_pid.exists():  # the upstream the wake started
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(fleet.engine_pid.read_text()), signal.SIGKILL)


def messages(fleet: Fleet, stream: bool = False) -> httpx.Response:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 32,
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "stream": stream,
    }
    return httpx.post(fleet.proxy.url + "/v1/messages", json=body, timeout=60)


def chat(fleet: Fleet) -> httpx.Response:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 32,
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
    }
    return httpx.post(fleet.proxy.url + "/v1/chat/completions", json=body, timeout=60)


def test_requests_while_the_host_is_stopped_wake_it_once_and_get_their_answer(
    tmp_path: Path, fleets: list[Fleet]
) -> None:
    # health_interval: only the start-up check, so the answers come from the check the
    # proxy makes the moment the wake ends
    fleet = _start(tmp_path, "up", health_interval=3600)
    fleets.append(fleet)
    answers: dict[str, httpx.Response] = {}
    threads = [
        threading.Thread(target=lambda: answers.__setitem__("messages", messages(fleet))),
        threading.Thread(target=lambda: answers.__setitem__("chat", chat(fleet))),
    ]
    for t in threads:
        t.start()
    wait_until(lambda: fleet.wake_state()["waiting"] == 2, what="both requests waiting")
    # the command records its call once it runs, which may be a moment after both wait
    wait_until(lambda: len(fleet.calls()) == 1, what="the wake command running")
    assert fleet.wake_state()["running"] is True
    fleet.release.touch()
    for t in threads:
        t.join(60)

    assert answers["messages"].status_code == 200, answers["messages"].text
    assert answers["messages"].json()["content"][0]["text"] == "Paris is the capital of France."
    assert answers["messages"].headers["x-vastllm-upstream"] == "gpu-a"
    assert answers["chat"].status_code == 200, answers["chat"].text
    assert "Paris" in answers["chat"].json()["choices"][0]["message"]["content"]
    # a request once the host is up: answered, and no second wake
    assert messages(fleet).status_code == 200
    calls = fleet.calls()
    assert len(calls) == 1
    state = fleet.wake_state()
    assert 0 < state.pop("cooldown_left") <= 300  # wake_cooldown's default, counting down
    assert state == {
        "running": False,
        "started": 1,
        "last_exit": 0,
        "waiting": 0,
        "wait_seconds": 120.0,
    }
    # the key came through the environment (wake_env_file), never argv; the output is logged
    assert calls[0]["key"] == SECRET
    assert not any(SECRET in arg for arg in calls[0]["argv"])
    log = fleet.log()
    assert "wake: waking: starting the instances" in log
    assert "the wake command ended (exit 0)" in log
    assert SECRET not in log


def test_a_wake_that_brings_nothing_back_in_time_is_a_529_with_retry_after(
    tmp_path: Path, fleets: list[Fleet]
) -> None:
    fleet = _start(tmp_path, "hang", wake_wait=0.5, wake_retry_after=7)
    fleets.append(fleet)

    r = messages(fleet)
    assert r.status_code == 529, r.text
    assert r.headers["retry-after"] == "7"
    body = r.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "overloaded_error"
    assert "wake_wait" in body["error"]["message"]

    streamed = messages(fleet, stream=True)  # nothing went out yet: a plain JSON error
    assert streamed.status_code == 529
    assert streamed.json()["error"]["type"] == "overloaded_error"

    r = chat(fleet)
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "7"
    err = r.json()["error"]
    assert err["type"] == "overloaded_error"
    assert set(err) == {"message", "type", "param", "code"}

    # every request above waited on the one wake, which still runs (its record may lag)
    wait_until(lambda: len(fleet.calls()) == 1, what="the one wake command's record")
    assert fleet.wake_state()["running"] is True
    assert fleet.wake_state()["started"] == 1


def test_without_a_wake_command_nothing_changes(tmp_path: Path, fleets: list[Fleet]) -> None:
    fleet = _start(tmp_path, None)
    fleets.append(fleet)
    r = messages(fleet)
    assert r.status_code == 503, r.text
    assert "retry-after" not in r.headers
    assert r.json()["error"]["type"] == "overloaded_error"
    assert "no upstream reachable" in r.json()["error"]["message"]
    r = chat(fleet)
    assert r.status_code == 503
    assert "retry-after" not in r.headers
    assert fleet.proxy.health()["wake"] is None
    assert fleet.calls() == []


def test_a_failing_wake_answers_the_waiting_requests_at_once_and_the_next_one_wakes_again(
    tmp_path: Path, fleets: list[Fleet]
) -> None:
    # wake_wait past the client's 60 s timeout: an answer at all means the failure ended the wait
    fleet = _start(tmp_path, "fail", wake_wait=3600, wake_retry_after=11, wake_cooldown=0)
    fleets.append(fleet)

    r = messages(fleet)
    assert r.status_code == 529, r.text
    assert r.headers["retry-after"] == "11"
    assert r.json()["error"]["type"] == "overloaded_error"
    assert "exit 1" in r.json()["error"]["message"]
    assert len(fleet.calls()) == 1

    r = chat(fleet)  # the wake had ended: this request starts the next one
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "11"
    assert "exit 1" in r.json()["error"]["message"]
    assert len(fleet.calls()) == 2
    state = fleet.wake_state()
    assert (state["started"], state["last_exit"], state["running"]) == (2, 1, False)

    # the failure's output in the log, the key in it hidden
    log = fleet.log()
    assert "the wake command failed (exit 1)" in log
    assert "no matching offer for label gpu-a; key was ***" in log
    assert SECRET not in log


def test_after_a_failed_wake_none_starts_within_the_cooldown_and_requests_are_told_when(
    tmp_path: Path, fleets: list[Fleet]
) -> None:
    fleet = _start(tmp_path, "fail", wake_wait=3600, wake_retry_after=1, wake_cooldown=4)
    fleets.append(fleet)

    r = messages(fleet)
    assert r.status_code == 529, r.text
    assert r.headers["retry-after"] == "4"  # the cooldown, longer than wake_retry_after
    assert "wake_cooldown" in r.json()["error"]["message"]
    assert len(fleet.calls()) == 1

    # within the cooldown: answered at once, with the seconds left, and no second wake
    r = chat(fleet)
    assert r.status_code == 503, r.text
    assert 1 <= int(r.headers["retry-after"]) <= 4
    assert "the last wake of the GPU hosts failed (exit 1)" in r.json()["error"]["message"]
    assert len(fleet.calls()) == 1
    assert 0 < fleet.wake_state()["cooldown_left"] <= 4

    # once it has passed, the next request wakes again
    wait_until(lambda: fleet.wake_state()["cooldown_left"] == 0, timeout=10,
               what="the cooldown over")
    assert messages(fleet).status_code == 529
    assert len(fleet.calls()) == 2
    assert fleet.wake_state()["started"] == 2


def test_with_a_paid_upstream_it_answers_while_the_hosts_are_woken(
    tmp_path: Path, fleets: list[Fleet]
) -> None:
    paid = AnthropicDouble(tmp_path, PAID_KEY)
    try:
        fleet = _start(tmp_path, "up", paid=paid)
        fleets.append(fleet)
        r = messages(fleet)  # the host is stopped: the paid API answers, without waiting
        assert r.status_code == 200, r.text
        assert r.headers["x-vastllm-upstream"] == "anthropic-api"
        assert r.headers["x-vastllm-paid"] == "1"
        # ... and the wake started for it
        wait_until(lambda: len(fleet.calls()) == 1, what="the wake command running")
        assert fleet.wake_state()["running"] is True
        assert messages(fleet).headers["x-vastllm-upstream"] == "anthropic-api"  # no 2nd wake
        fleet.release.touch()
        wait_until(lambda: fleet.wake_state()["running"] is False, what="the wake ended")
        r = messages(fleet)  # the host is back: it answers, and the paid API no more
        assert r.status_code == 200, r.text
        assert r.headers["x-vastllm-upstream"] == "gpu-a"
        assert len(fleet.calls()) == 1
        assert paid.calls() == 2
    finally:
        paid.kill()


def test_wake_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    assert ProxySettings().wake_command == []
    monkeypatch.setenv("VASTLLM_PROXY_WAKE_COMMAND", '["vastllm", "wake"]')
    monkeypatch.setenv("VASTLLM_PROXY_WAKE_WAIT", "45")
    s = ProxySettings()
    assert (s.wake_command, s.wake_wait, s.wake_retry_after) == (["vastllm", "wake"], 45.0, 30)
    assert s.wake_cooldown == 300.0
    with pytest.raises(ValueError, match="workers: 1"):
        ProxySettings(workers=2, port=8082)
