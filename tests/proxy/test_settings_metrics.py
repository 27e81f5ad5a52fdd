"""Settings sources, the entry point's error path, and the Prometheus exposition."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from tests.proxy.conftest import Proxy
from tests.support import REPO
from vastllm import prometheus
from vastllm.proxy.metrics import OUTPUT_RATE, RATE_WINDOW, Metrics, UpstreamGauge
from vastllm.proxy.settings import ProxySettings


def test_env_over_config_file_over_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "proxy.yaml"
    cfg.write_text(
        "port: 9001\ncache_mode: all\nupstreams:\n"
        "  - {name: gpu, kind: openai, base_url: 'http://10.0.0.1:8000/', api_key: sk-up}\n"
    )
    monkeypatch.setenv("VASTLLM_PROXY_CONFIG", str(cfg))
    monkeypatch.setenv("VASTLLM_PROXY_PORT", "9002")
    monkeypatch.setenv("VASTLLM_PROXY_API_KEYS", "k1, k2")
    s = ProxySettings()
    assert s.port == 9002  # env wins over the file
    assert s.cache_mode == "all"  # file wins over the default
    assert s.host == "127.0.0.1"  # loopback unless told otherwise
    assert s.upstreams[0].base_url == "http://10.0.0.1:8000"
    assert s.upstreams[0].api_key is not None
    assert "sk-up" not in repr(s)
    assert [k.get_secret_value() for k in s.api_keys] == ["k1", "k2"]
    monkeypatch.setenv("VASTLLM_PROXY_API_KEYS", '["k3"]')
    assert [k.get_secret_value() for k in ProxySettings().api_keys] == ["k3"]

    monkeypatch.setenv(
        "VASTLLM_PROXY_UPSTREAMS", json.dumps([{"name": "x", "base_url": "http://a"}] * 2)
    )
    with pytest.raises(ValidationError, match="unique"):
        ProxySettings()
    monkeypatch.setenv(
        "VASTLLM_PROXY_UPSTREAMS", '[{"name": "x", "kind": "tgi", "base_url": "http://a"}]'
    )
    with pytest.raises(ValidationError):
        ProxySettings()


def test_entry_point_rejects_bad_settings(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps({"cache_mode": "sometimes"}))
    out = subprocess.run(
        [sys.executable, "-m", "vastllm.proxy"],
        env={"VASTLLM_PROXY_CONFIG": str(cfg), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert "invalid settings" in out.stderr
    assert "cache_mode" in out.stderr


SAMPLE = re.compile(r'^[a-z_]+(\{([a-z_]+="[^"]*",?)+\})? -?[0-9.e+-]+$')


def test_metrics_exposition(proxy: Proxy, unique: str) -> None:
    body = {
        "model": "claude-opus-4-8",
        "max_tokens": 20,
        "temperature": 0,
        "messages": [{"role": "user", "content": f"metrics {unique}"}],
    }
    for _ in range(2):
        assert httpx.post(proxy.url + "/v1/messages", json=body).status_code == 200
    httpx.post(
        proxy.url + "/v1/messages", content=b"{", headers={"content-type": "application/json"}
    )
    r = httpx.get(proxy.url + "/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-z_]+ .+$", line), line
            continue
        assert SAMPLE.match(line), line
        name, value = line.rsplit(" ", 1)
        values[name] = float(value)
    assert values['vastllm_proxy_requests_total{route="/v1/messages",status="200"}'] >= 2
    assert values['vastllm_proxy_requests_total{route="/v1/messages",status="400"}'] >= 1
    assert values["vastllm_proxy_cache_hits_total"] >= 1
    assert values["vastllm_proxy_cache_misses_total"] >= 1
    assert 0 < values["vastllm_proxy_cache_hit_ratio"] < 1
    assert values['vastllm_proxy_tokens_total{direction="in"}'] > 0
    assert values['vastllm_proxy_tokens_total{direction="out"}'] > 0
    assert values[OUTPUT_RATE] > 0  # the answer above was in the last minute
    assert values["vastllm_proxy_redis_up"] == 1
    buckets = [
        v
        for k, v in values.items()
        if k.startswith('vastllm_proxy_upstream_latency_seconds_bucket{upstream="main"')
    ]
    assert buckets == sorted(buckets)
    assert buckets[-1] == values['vastllm_proxy_upstream_latency_seconds_count{upstream="main"}']
    assert values['vastllm_proxy_upstream_outstanding{upstream="main"}'] == 0


def test_the_exposition_reads_back() -> None:
    m = Metrics()
    m.request('/odd"}\\path\n', 200)
    m.request("/v1/messages", 200)
    m.request("/v1/messages", 200)
    text = m.render([UpstreamGauge("a", True, 2), UpstreamGauge("b", False, 1)], None).decode()
    exposition = prometheus.parse(text + 'not a sample\nbad_value{x="1"} x\n')
    assert "vastllm_proxy_cache_hits_total" in exposition.families
    routes = {s.labels["route"]: s.value for s in exposition.named("vastllm_proxy_requests_total")}
    assert routes == {'/odd"}\\path\n': 1, "/v1/messages": 2}
    assert exposition.total("vastllm_proxy_upstream_outstanding") == 3
    assert exposition.total("bad_value") is None
    assert exposition.total("no_such_family") is None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def rate_in(metrics: Metrics) -> float:
    for line in metrics.render([], None).decode().splitlines():
        if line.startswith(OUTPUT_RATE + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {OUTPUT_RATE} sample")


def test_output_token_rate_is_taken_over_the_last_minute() -> None:
    clock = Clock()
    m = Metrics(clock)
    assert rate_in(m) == 0
    m.tokens(5, 60)
    clock.now += 30.5
    m.tokens(5, 120)
    m.tokens(5, 0)  # no output: no bucket
    assert rate_in(m) == (60 + 120) / RATE_WINDOW
    clock.now += RATE_WINDOW - 30  # the first answer is now more than a minute old
    assert rate_in(m) == 120 / RATE_WINDOW
    clock.now += 30
    assert rate_in(m) == 0
    assert m.tokens_out == 180  # the counter keeps everything


def test_output_token_rate_sums_the_workers() -> None:
    clocks = Clock(), Clock()
    workers = Metrics(clocks[0]), Metrics(clocks[1])
    workers[0].tokens(1, 30)
    workers[1].tokens(1, 90)
    total = Metrics()
    for w in workers:
        total.add(w.snapshot())
    assert rate_in(total) == 2.0
    assert total.tokens_out == 120
