"""``workers: N``: N processes share the port (SO_REUSEPORT) under one WorkerPool; /metrics adds
up all of them; one worker dying takes the whole proxy down for the service manager to restart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.proxy.conftest import OllamaDouble, Proxy, RedisServer, upstream, wait_until
from tests.support import REPO
from vastllm.proxy.metrics import OUTPUT_RATE, RATE_WINDOW


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(x) for x in text.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too
    return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"


def counter(text: str, sample: str) -> float:
    m = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.M)
    return float(m[1]) if m else 0.0


def chat(proxy: Proxy, text: str) -> httpx.Response:
    body = {
        "model": "claude-opus-4-8",
        "max_tokens": 20,
        "temperature": 0,
        "messages": [{"role": "user", "content": text}],
    }
    # a new connection each time, so the kernel spreads them over the workers
    r = httpx.post(proxy.url + "/v1/messages", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r


def start(workdir: Path, double: OllamaDouble, redis: RedisServer, active: Path) -> Proxy:
    p = Proxy(
        workdir,
        workers=2,
        upstreams=[upstream("main", double)],
        redis_url=redis.url,
        active_model_file=str(active),
    )
    wait_until(lambda: len(children(p.proc.pid)) == 2, what="two workers")
    seen: set[int] = set()

    def both_answer() -> bool:
        seen.add(int(httpx.get(p.url + "/health").json()["worker"]))
        return seen == {0, 1}

    wait_until(both_answer, what="both workers answering /health")
    return p


def test_workers_share_the_port_the_cache_and_the_metrics(
    workdir: Path,
    double: OllamaDouble,
    redis_server: RedisServer,
    active_model_file: Path,
    unique: str,
) -> None:
    p = start(workdir, double, redis_server, active_model_file)
    try:
        health = httpx.get(p.url + "/health").json()
        assert health["workers"] == 2
        assert health["status"] == "ok"
        before = double.calls()
        n = 12
        for i in range(n):
            r = chat(p, f"workers {unique} {i}")
            assert r.headers["x-vastllm-cache"] == "miss"
        # the second time every answer comes from Redis, whichever worker takes it
        for i in range(n):
            r = chat(p, f"workers {unique} {i}")
            assert r.headers["x-vastllm-cache"] == "hit"
            assert r.json()["content"][0]["text"] == f"You said: workers {unique} {i}"
        assert double.calls() - before == n

        route = 'vastllm_proxy_requests_total{route="/v1/messages",status="200"}'

        def all_counted() -> bool:
            text = httpx.get(p.url + "/metrics").text
            out = counter(text, 'vastllm_proxy_tokens_total{direction="out"}')
            return (
                counter(text, route) == 2 * n
                and counter(text, "vastllm_proxy_cache_misses_total") == n
                and counter(text, "vastllm_proxy_cache_hits_total") == n
                and counter(text, "vastllm_proxy_cache_hit_ratio") == 0.5
                # a rate sums over the workers: every answer of this test is in the window
                and counter(text, OUTPUT_RATE) == round(out / RATE_WINDOW, 3) > 0
            )

        wait_until(all_counted, what="metrics of both workers added up")
        text = httpx.get(p.url + "/metrics").text
        assert counter(text, 'vastllm_proxy_upstream_up{upstream="main"}') == 1
        count = 'vastllm_proxy_upstream_latency_seconds_count{upstream="main"}'
        assert counter(text, count) == n

        workers = children(p.proc.pid)
        p.proc.send_signal(signal.SIGTERM)
        assert p.proc.wait(20) == 0
        assert not any(alive(w) for w in workers)
    finally:
        p.stop()


def test_a_dead_worker_stops_the_proxy(
    workdir: Path, double: OllamaDouble, redis_server: RedisServer, active_model_file: Path
) -> None:
    p = start(workdir, double, redis_server, active_model_file)
    try:
        first, second = children(p.proc.pid)
        os.kill(first, signal.SIGKILL)
        assert p.proc.wait(20) == 1
        wait_until(lambda: not alive(second), what="the other worker gone")
        assert re.search(r"worker [01] exited with -9; stopping the others", p.log.read_text())
        with pytest.raises(httpx.ConnectError):
            httpx.get(p.url + "/health")
    finally:
        p.stop()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"VASTLLM_PROXY_WORKERS": "2", "VASTLLM_PROXY_PORT": "0"}, "workers > 1 share one port"),
        ({"VASTLLM_PROXY_REDIS_URL": "http://127.0.0.1:1"}, "Redis URL must start with"),
    ],
)
def test_settings_the_workers_cannot_use_are_refused(env: dict[str, str], message: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VASTLLM_PROXY_")}
    done = subprocess.run(
        [sys.executable, "-m", "vastllm.proxy"],
        env={**clean, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "vastllm-proxy: invalid settings" in done.stderr
    assert message in done.stderr
