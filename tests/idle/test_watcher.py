"""The idle watcher (``python -m vastllm.idle``) against the Vast.ai API double, time scaled down
(an idle "minute" of 0.6 s, a poll every 0.05 s). The proxy's /metrics is a small server that
renders the proxy's own metrics (vastllm.proxy.metrics.Metrics), so the names are the real ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.doubles.vastai_api_double import FIRST_ID, VastApiDouble
from tests.support import REPO, free_port
from vastllm.busy import busy, marks
from vastllm.idle.budget import Budget
from vastllm.idle.metrics import MetricsUnreadable, parse
from vastllm.proxy.metrics import Metrics, UpstreamGauge

KEY = "test-vast-key"
INSTANCE = FIRST_ID + 2  # running, on demand
STOP_MINUTES = 0.01  # 0.6 s
POLL = 0.05
CLIENT = REPO / "plugins" / "module_utils" / "vastai_api.py"


class FakeProxy:
    """``GET /metrics`` as the proxy renders it, with requests and in-flight streams set by the
    test."""

    def __init__(self) -> None:
        self.metrics = Metrics()
        self.outstanding = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with fake.lock:
                    fake.metrics.request("/metrics", 200)  # as the proxy counts itself
                    body = fake.metrics.render(
                        [UpstreamGauge("main", True, fake.outstanding)], None)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def request(self, route: str = "/v1/messages") -> None:
        with self.lock:
            self.metrics.request(route, 200)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy() -> Iterator[FakeProxy]:
    fake = FakeProxy()
    yield fake
    fake.close()


@pytest.fixture
def api() -> Iterator[VastApiDouble]:
    with VastApiDouble(free_port()) as double:
        yield double


class Watcher:
    """The watcher as the role runs it: a process with VASTLLM_IDLE_* and Vast.ai's variables."""

    def __init__(self, tmp: Path, metrics_url: str, api: VastApiDouble, **env: str) -> None:
        self.busy_dir = tmp / "busy"
        self.log = tmp / "idle.log"
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("VASTLLM_IDLE_", "CONTAINER_"))}
        base.update({
            "VASTLLM_IDLE_STOP_MINUTES": str(STOP_MINUTES),
            "VASTLLM_IDLE_POLL_SECONDS": str(POLL),
            "VASTLLM_IDLE_METRICS_URL": metrics_url,
            "VASTLLM_IDLE_BUSY_DIR": str(self.busy_dir),
            "VASTLLM_IDLE_API_URL": api.url,
            "VASTLLM_IDLE_API_CLIENT": str(CLIENT),
            "VASTLLM_IDLE_INIT_ENVIRON": str(tmp / "no-such-environ"),
            "CONTAINER_ID": str(INSTANCE),
            "CONTAINER_API_KEY": KEY,
        })
        base.update(env)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "vastllm.idle"], env=base,
                                         stdout=out, stderr=out, cwd=REPO)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        return self.log.read_text()


@pytest.fixture
def start(tmp_path: Path, proxy: FakeProxy, api: VastApiDouble) -> Iterator[Any]:
    started: list[Watcher] = []

    def _start(**env: str) -> Watcher:
        watcher = Watcher(tmp_path, proxy.url, api, **env)
        started.append(watcher)
        return watcher

    yield _start
    for w in started:
        w.stop()


def calls(api: VastApiDouble, method: str = "PUT") -> list[dict[str, Any]]:
    with api.state.lock:
        return [dict(r) for r in api.state.requests if r["method"] == method]


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("not reached in time")


def keep(seconds: float, action: Any) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        action()
        time.sleep(0.1)


# -- the scenarios of issue 20 ---------------------------------------------------------------


def test_no_request_for_n_minutes_stops_the_instance_exactly_once(
    start: Any, api: VastApiDouble
) -> None:
    watcher = start()
    wait_for(lambda: calls(api))
    time.sleep(1.5)  # more than two idle periods more: still one call
    assert [(c["path"], c["body"], c["key_ok"]) for c in calls(api)] == [
        (f"/api/v0/instances/{INSTANCE}/", {"state": "stopped"}, True)]
    assert api.state.instances[INSTANCE]["actual_status"] == "stopped"
    assert watcher.proc.poll() is None  # stays up: the supervisor starts no second watcher
    log = watcher.stop()
    assert "asked Vast.ai to stop this instance" in log
    assert KEY not in log


def test_a_request_in_time_keeps_it_running(
    start: Any, api: VastApiDouble, proxy: FakeProxy
) -> None:
    start()
    keep(2.0, proxy.request)  # a request every 0.1 s, for over three idle periods
    assert calls(api) == []
    wait_for(lambda: calls(api))  # then idle: stopped
    assert len(calls(api)) == 1


def test_a_long_stream_keeps_it_running(
    start: Any, api: VastApiDouble, proxy: FakeProxy
) -> None:
    start()
    proxy.outstanding = 1  # a stream open, its request not counted until it ends
    time.sleep(2.0)
    assert calls(api) == []
    proxy.outstanding = 0
    proxy.request()
    wait_for(lambda: calls(api))
    assert len(calls(api)) == 1


def test_a_running_fetch_keeps_it_running(start: Any, api: VastApiDouble) -> None:
    watcher = start()
    with busy("fetch", watcher.busy_dir) as mark:
        assert mark is not None
        assert mark.exists()
        time.sleep(2.0)
        assert calls(api) == []
    assert not mark.exists()
    wait_for(lambda: calls(api))
    assert len(calls(api)) == 1
    assert "busy: fetch" in watcher.stop()


def test_destroy_when_asked(start: Any, api: VastApiDouble) -> None:
    start(VASTLLM_IDLE_ACTION="destroy")
    wait_for(lambda: calls(api, "DELETE"))
    time.sleep(1.0)
    assert len(calls(api, "DELETE")) == 1
    assert calls(api) == []
    assert INSTANCE not in api.state.instances


def test_the_key_of_the_first_process_and_a_refused_call_tried_again(
    start: Any, api: VastApiDouble, tmp_path: Path
) -> None:
    """Vast.ai's variables sit in PID 1's environment; a refused call (500) is tried again at the
    next poll; the key never shows."""
    environ = tmp_path / "environ"
    environ.write_bytes(f"PATH=/bin\0CONTAINER_ID={INSTANCE}\0CONTAINER_API_KEY={KEY}\0".encode())
    api.state.fail_next = [[500, json.dumps({"error": "server_error", "msg": "boom"}),
                            "application/json"]]
    watcher = start(VASTLLM_IDLE_INIT_ENVIRON=str(environ), CONTAINER_ID="", CONTAINER_API_KEY="")
    wait_for(lambda: len(calls(api)) == 2)
    time.sleep(0.5)
    assert len(calls(api)) == 2
    assert all(c["key_ok"] for c in calls(api))
    assert api.state.instances[INSTANCE]["actual_status"] == "stopped"
    log = watcher.stop()
    assert "trying again at the next poll" in log
    assert KEY not in log


def test_without_a_key_it_says_so_and_exits(start: Any, api: VastApiDouble) -> None:
    watcher = start(CONTAINER_API_KEY="")
    assert watcher.proc.wait(10) == 2
    assert "no API key" in watcher.stop()
    assert calls(api) == []


# -- the budget (vastllm_max_spend_usd) -------------------------------------------------------

BUDGET = 0.0003  # USD: at the double's recorded 4090 price ($0.2467/h), about 4.4 s


def budget_env(tmp: Path, api: VastApiDouble, budget: float = BUDGET) -> dict[str, str]:
    """The idle clock off, a budget, and the price the role records from vast_dph_total: the
    double's own for this instance."""
    price = tmp / "price.json"
    price.write_text(json.dumps({"dph_total": api.state.instances[INSTANCE]["dph_total"]}))
    return {
        "VASTLLM_IDLE_STOP_MINUTES": "0",
        "VASTLLM_IDLE_MAX_SPEND_USD": str(budget),
        "VASTLLM_IDLE_PRICE_FILE": str(price),
        "VASTLLM_IDLE_SPEND_STATE_FILE": str(tmp / "state" / "spend.json"),
    }


def seconds_of(budget: float, api: VastApiDouble) -> float:
    return budget / float(api.state.instances[INSTANCE]["dph_total"]) * 3600


def spend_state(tmp: Path) -> dict[str, Any]:
    return json.loads((tmp / "state" / "spend.json").read_text())  # type: ignore[no-any-return]


def test_the_budget_warns_at_80_percent_once_and_stops_at_100_exactly_once(
    start: Any, api: VastApiDouble, proxy: FakeProxy, tmp_path: Path
) -> None:
    began = time.monotonic()
    watcher = start(**budget_env(tmp_path, api))
    wait_for(lambda: "the instance stops at 100 %" in watcher.log.read_text())
    warned = time.monotonic() - began
    assert calls(api) == []
    keep(0.5, proxy.request)  # in use: the budget stops it all the same
    wait_for(lambda: calls(api))
    stopped = time.monotonic() - began
    time.sleep(1.0)
    assert [(c["path"], c["body"]) for c in calls(api)] == [
        (f"/api/v0/instances/{INSTANCE}/", {"state": "stopped"})]
    assert api.state.instances[INSTANCE]["actual_status"] == "stopped"
    full = seconds_of(BUDGET, api)
    assert 0.8 * full <= warned < stopped
    assert full <= stopped < full + 3.0
    log = watcher.stop()
    assert log.count("the instance stops at 100 %") == 1
    assert "budget: asked Vast.ai to stop this instance" in log
    assert KEY not in log
    state = spend_state(tmp_path)
    assert state["instance_id"] == INSTANCE
    assert state["warned_for_usd"] == BUDGET
    assert BUDGET <= state["spent_usd"] < BUDGET * 1.1


def test_the_spend_survives_a_restart_of_the_watcher(
    start: Any, api: VastApiDouble, tmp_path: Path
) -> None:
    env = budget_env(tmp_path, api)
    first = start(**env)
    wait_for(lambda: "the instance stops at 100 %" in first.log.read_text())
    log = first.stop()  # killed, as a reboot or a new site.yml would
    assert calls(api) == []
    spent = spend_state(tmp_path)["spent_usd"]
    assert 0.8 * BUDGET <= spent < BUDGET
    began = time.monotonic()
    second = start(**env)
    wait_for(lambda: calls(api))
    took = time.monotonic() - began
    assert took < 0.75 * seconds_of(BUDGET, api)  # went on from what was spent, not from 0
    time.sleep(0.5)
    assert len(calls(api)) == 1
    log = second.stop()
    assert f"${spent:.4g} spent so far" in log
    assert "the instance stops at 100 %" not in log  # warned once, before the restart
    assert "asked Vast.ai to stop this instance" in log


def test_the_budget_needs_the_recorded_price(
    start: Any, api: VastApiDouble, tmp_path: Path
) -> None:
    env = budget_env(tmp_path, api)
    (tmp_path / "price.json").unlink()
    watcher = start(**env)
    assert watcher.proc.wait(10) == 2
    assert "cannot read the price file" in watcher.stop()
    watcher = start(VASTLLM_IDLE_STOP_MINUTES="0")
    assert watcher.proc.wait(10) == 2
    assert "nothing to watch" in watcher.stop()
    assert calls(api) == []


def test_budget_steps_with_a_clock(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Another instance's state counts for nothing; a raised budget warns again; a failed stop
    is tried again at the next step."""
    now = [0.0]
    state_file = tmp_path / "spend.json"
    state_file.write_text(json.dumps(
        {"instance_id": 7, "spent_usd": 5.0, "warned_for_usd": 6.0}))
    stops: list[int] = []
    fail = [True]

    def stop() -> None:
        if fail[0]:
            fail[0] = False
            raise RuntimeError("refused")
        stops.append(1)

    def budget(limit: float) -> Budget:
        return Budget(limit_usd=limit, price_per_hour=1.0, state_file=state_file,
                      instance_id=INSTANCE, stop=stop, stop_errors=(RuntimeError,),
                      clock=lambda: now[0])

    b = budget(10.0)
    assert b.state.spent_usd == 0.0  # instance 7's spend is not this one's
    now[0] = 8.5 * 3600
    assert b.step() == "warned"
    now[0] = 9 * 3600
    assert b.step() == "counting"  # warned once
    b = budget(20.0)  # raised (a new site.yml): goes on from $9
    assert b.state.spent_usd == pytest.approx(9.0)
    now[0] = 16.5 * 3600
    assert b.step() == "warned"  # $16.5 of $20: the warning of the new budget
    now[0] = 30 * 3600
    with caplog.at_level("WARNING", logger="vastllm.idle"):
        assert b.step() == "failed"
        now[0] = 30 * 3600 + 1
        assert b.step() == "stopped"
        assert b.step() == "done"
    assert stops == [1]
    assert "trying again at the next poll" in caplog.text
    state_file.write_text("{")
    assert budget(1.0).state.spent_usd == 0.0


# -- the parts -------------------------------------------------------------------------------


def test_parse_counts_model_routes_and_streams_only() -> None:
    m = Metrics()
    for route in ("/", "/health", "/metrics", "unmatched"):
        m.request(route, 200)
    assert parse(m.render([UpstreamGauge("a", True, 0)], None).decode()) == (0, 0)
    m.request("/v1/messages", 200)
    m.request("/v1/chat/completions", 502)
    text = m.render([UpstreamGauge("a", True, 2), UpstreamGauge("b", False, 1)], None).decode()
    assert parse(text) == (2, 3)
    with pytest.raises(MetricsUnreadable):
        parse("# HELP other_total x\nother_total 3\n")


def test_busy_marks(tmp_path: Path) -> None:
    with busy("cascade", tmp_path), busy("ollama-pull", tmp_path):
        assert [m.what for m in marks(tmp_path)] == ["cascade", "ollama-pull"]
    assert marks(tmp_path) == []
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / f"fetch.{dead}").write_text(json.dumps(
        {"what": "fetch", "pid": int(dead), "since": 1.0}))
    assert marks(tmp_path) == []  # its process is gone
    (tmp_path / "garbled").write_text("{")
    assert [m.what for m in marks(tmp_path)] == ["garbled"]  # counts: better left running
    with pytest.raises(ValueError, match="lower-case"), busy("Fetch/../x", tmp_path):
        pass
    blocked = tmp_path / "file"
    blocked.write_text("")
    with busy("fetch", blocked / "sub") as mark:  # cannot be written: the job still runs
        assert mark is None
