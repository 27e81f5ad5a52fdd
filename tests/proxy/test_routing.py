"""Upstream routing: least outstanding, failover, OpenAI-compatible upstreams, the active model
file, context limits and num_ctx."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest

from tests.proxy.conftest import MODEL, OllamaDouble, Proxy, upstream, wait_until
from tests.proxy.test_anthropic import stream_text

NO_CACHE = {"Cache-Control": "no-cache, no-store"}


def post(proxy: Proxy, text: str, **extra: object) -> httpx.Response:
    body = {
        "model": "claude-opus-4-8",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": text}],
    }
    body.update(extra)
    return httpx.post(proxy.url + "/v1/messages", json=body, headers=NO_CACHE, timeout=60)


@pytest.fixture
def pair(workdir: Path) -> Iterator[tuple[Proxy, OllamaDouble, OllamaDouble]]:
    a = OllamaDouble(workdir, [MODEL])
    b = OllamaDouble(workdir, [MODEL])
    proxy = Proxy(
        workdir,
        upstreams=[upstream("a", a), upstream("b", b)],
        default_model=MODEL,
        redis_url="",
        health_interval=60,  # only the start-up check: routing decisions are the requests' own
        active_model_file=str(workdir / "absent.json"),
    )
    yield proxy, a, b
    proxy.stop()
    a.kill()
    b.kill()


def test_least_outstanding_routing(pair: tuple[Proxy, OllamaDouble, OllamaDouble]) -> None:
    proxy, a, b = pair
    # spread: four slow concurrent requests land two on each upstream
    a.config(token_delay=0.1)
    b.config(token_delay=0.1)
    threads = [threading.Thread(target=post, args=(proxy, f"spread {i} x y z")) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert (a.calls(), b.calls()) == (2, 2)

    # busy: while `a` holds a hanging request, every new request goes to `b`
    a.config(hang=True, token_delay=0)
    b.config(token_delay=0)
    hung = threading.Thread(target=post, args=(proxy, "hang on"))
    hung.start()
    try:
        wait_until(lambda: a.calls() == 3, what="the hanging request reached a")
        for i in range(4):
            assert post(proxy, f"busy {i}").status_code == 200
        assert (a.calls(), b.calls()) == (3, 6)
        outstanding = {u["name"]: u["outstanding"] for u in proxy.health()["upstreams"]}
        assert outstanding == {"a": 1, "b": 0}
    finally:
        a.config(hang=False)
        hung.join(30)


def test_failover_on_5xx_and_on_a_dead_upstream(
    pair: tuple[Proxy, OllamaDouble, OllamaDouble],
) -> None:
    proxy, a, b = pair
    a.config(fail_status=500)
    for i in range(4):
        r = post(proxy, f"fail over {i}")
        assert r.status_code == 200, r.text
        assert r.json()["content"][0]["text"] == f"You said: fail over {i}"
    assert a.calls() >= 1  # a was tried, failed, and b answered
    assert b.calls() == 4

    a.kill()
    for i in range(4):
        r = post(proxy, f"a is gone {i}", stream=True)
        assert r.status_code == 200, r.text
        assert stream_text(r) == f"You said: a is gone {i}"
    health = proxy.health()
    states = {u["name"]: u["healthy"] for u in health["upstreams"]}
    assert states == {"a": False, "b": True}
    assert health["status"] == "degraded"
    metrics = httpx.get(proxy.url + "/metrics").text
    assert 'vastllm_proxy_upstream_up{upstream="a"} 0' in metrics
    errors = [
        line
        for line in metrics.splitlines()
        if line.startswith('vastllm_proxy_upstream_errors_total{upstream="a"}')
    ]
    assert int(errors[0].split()[-1]) >= 2


def test_context_overflow_names_both_numbers(proxy: Proxy, knobs: OllamaDouble) -> None:
    calls = knobs.calls()
    r = post(proxy, "word " * 30_000)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert err["message"].startswith("prompt is too long: 37")
    assert "> 32768 maximum" in err["message"]
    count = httpx.post(
        proxy.url + "/v1/messages/count_tokens",
        json={
            "model": "claude-opus-4-8",
            "messages": [{"role": "user", "content": "word " * 30_000}],
        },
    ).json()["input_tokens"]
    assert f"{count} tokens > 32768" in err["message"]  # the same estimate as count_tokens
    assert knobs.calls() == calls
    with pytest.raises(anthropic.BadRequestError):
        anthropic.Anthropic(base_url=proxy.url, api_key="x", max_retries=0).messages.create(
            model="claude-opus-4-8",
            max_tokens=5,
            messages=[{"role": "user", "content": "w " * 70_000}],
        )


@pytest.fixture
def mixed(workdir: Path) -> Iterator[tuple[Proxy, OllamaDouble, Path]]:
    """One double reached two ways: natively (ollama) and through its /v1 API (openai)."""
    double = OllamaDouble(workdir, [MODEL, "llama3.2"])
    active = workdir / "mixed-active.json"
    active.write_text(json.dumps({"name": MODEL, "engine": "ollama", "context_length": 4096}))
    proxy = Proxy(
        workdir,
        upstreams=[
            upstream("native", double),
            {
                "name": "compat",
                "kind": "openai",
                "base_url": double.url + "/v1",
                "api_key": "sk-up",
            },
        ],
        redis_url="",
        active_model_file=str(active),
        aliases={"claude-*": "@active", "small": "llama3.2"},
        context_length=2048,
    )
    yield proxy, double, active
    proxy.stop()
    double.kill()


def rewrite(path: Path, data: dict[str, object]) -> None:
    before = path.stat().st_mtime_ns
    path.write_text(json.dumps(data))
    os.utime(path, ns=(before + 10**9, before + 10**9))


def test_active_model_file_engine_aliases_and_num_ctx(
    mixed: tuple[Proxy, OllamaDouble, Path],
) -> None:
    proxy, double, active = mixed
    assert post(proxy, "native please").status_code == 200
    last = double.last_request()
    assert last["path"] == "/api/chat"
    assert last["options"]["num_ctx"] == 4096
    assert last["num_ctx"] == 4096
    assert last["truncated"] is False

    rewrite(active, {"name": MODEL, "engine": "openai", "context_length": 16384})
    client = anthropic.Anthropic(base_url=proxy.url, api_key="x", max_retries=0)
    msg = client.messages.create(
        model="claude-opus-4-8",
        max_tokens=30,
        messages=[{"role": "user", "content": "Use get_time now"}],
        tools=[
            {
                "name": "get_time",
                "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}},
            }
        ],
    )
    assert msg.stop_reason == "tool_use"
    assert msg.content[-1].input == {"tz": "now"}  # type: ignore[union-attr]
    last = double.last_request()
    assert last["path"] == "/v1/chat/completions"
    assert last["body"]["max_tokens"] == 30
    with client.messages.stream(
        model="claude-opus-4-8",
        max_tokens=30,
        messages=[{"role": "user", "content": "compat stream"}],
    ) as s:
        assert "".join(s.text_stream) == "You said: compat stream"
        assert s.get_final_message().usage.output_tokens == 4
    assert proxy.health()["active_model"] == {
        "name": MODEL,
        "engine": "openai",
        "context_length": 16384,
    }

    # an exact alias maps elsewhere and gets the default context length; with no engine of its
    # own it may go to either upstream (ties rotate between conversations: two different ones
    # are asked), so ask until the native one answered
    paths = set()
    for i in range(2):
        assert post(proxy, f"tiny {i}", model="small").status_code == 200
        last = double.last_request()
        assert last["model"] == "llama3.2"
        paths.add(last["path"])
        if last["path"] == "/api/chat":
            assert last["options"]["num_ctx"] == 2048
    assert paths == {"/api/chat", "/v1/chat/completions"}

    # a broken file is ignored, with no default model the alias has nothing to map to
    rewrite(active, {"engine": "ollama"})
    r = post(proxy, "nobody home")
    assert r.status_code == 404
    assert "maps to the active model, but none is active" in r.json()["error"]["message"]


def test_ollama_truncation_is_prevented_by_num_ctx(proxy: Proxy, knobs: OllamaDouble) -> None:
    """Without num_ctx the double (like Ollama) would cut a 20k-token prompt to 4096 tokens."""
    text = "lorem ipsum " * 7000  # ~21k tokens
    r = post(proxy, text, max_tokens=10)
    assert r.status_code == 200
    last = knobs.last_request()
    assert last["options"]["num_ctx"] == 32768
    assert last["truncated"] is False
    assert last["prompt_tokens"] > 4096
    raw = httpx.post(
        knobs.url + "/api/chat",
        json={"model": MODEL, "stream": False, "messages": [{"role": "user", "content": text}]},
    ).json()
    assert raw["prompt_eval_count"] == 4096  # the double's default window: truncated
    assert knobs.last_request()["truncated"] is True


def test_client_disconnect_cancels_the_upstream_call(proxy: Proxy, knobs: OllamaDouble) -> None:
    """A 600-token answer at one token a second would hold the upstream for ten minutes; when
    the client hangs up after the first event, the proxy lets go of it at once."""
    knobs.config(token_delay=1.0)
    body = {
        "model": "claude-opus-4-8",
        "max_tokens": 1000,
        "stream": True,
        "messages": [{"role": "user", "content": "word " * 600}],
    }
    with httpx.stream(
        "POST", proxy.url + "/v1/messages", json=body, headers=NO_CACHE, timeout=30
    ) as r:
        assert r.status_code == 200
        first = next(r.iter_lines())
        assert first == "event: message_start"
        assert proxy.health()["upstreams"][0]["outstanding"] == 1
    wait_until(
        lambda: proxy.health()["upstreams"][0]["outstanding"] == 0,
        timeout=20,
        what="upstream call released after the client left",
    )
