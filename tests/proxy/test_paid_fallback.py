"""A paid API as the last resort: real proxy processes between the official SDKs, the Ollama double
(the local upstream) and the Anthropic API double (the paid one, tests/doubles/
anthropic_api_double.py), all on loopback ports chosen at run time.

The paid upstream answers only when no local one can (down, busy with 429/503/529, at its
max_outstanding); its answers name it in ``x-vastllm-upstream`` and ``x-vastllm-paid``, are
counted in /metrics and against the day's cap, are never cached, and its key never shows."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from pydantic import ValidationError

from tests.proxy.conftest import (
    MODEL,
    AnthropicDouble,
    OllamaDouble,
    Proxy,
    RedisServer,
    running_redis,
    upstream,
    wait_until,
    write_active_model,
)
from vastllm.proxy.settings import ProxySettings

KEY = "sk-ant-api03-double-" + "k" * 24  # the paid double's key: must show nowhere
PAID_MODEL = "claude-sonnet-4-5"


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("paid")


@pytest.fixture(scope="module")
def paid(tmp: Path) -> Iterator[AnthropicDouble]:
    d = AnthropicDouble(tmp, KEY)
    yield d
    d.kill()


@pytest.fixture
def local(tmp: Path) -> Iterator[OllamaDouble]:
    d = OllamaDouble(tmp, [MODEL])
    yield d
    d.kill()


def paid_upstream(double: AnthropicDouble, **extra: Any) -> dict[str, Any]:
    return {
        "name": "anthropic-api",
        "kind": "anthropic",
        "base_url": double.url,
        "api_key": KEY,
        "paid": True,
        "model": PAID_MODEL,
        **extra,
    }


def start_proxy(
    tmp: Path,
    local: OllamaDouble,
    paid: AnthropicDouble,
    *,
    local_extra: Any = None,
    **settings: Any,
) -> Proxy:
    return Proxy(
        tmp,
        upstreams=[{**upstream("local", local), **(local_extra or {})}, paid_upstream(paid)],
        active_model_file=str(write_active_model(tmp / "active.json", 32768)),
        **{"redis_url": "", **settings},
    )


def ask(proxy: Proxy, text: str, **extra: Any) -> httpx.Response:
    return httpx.post(
        proxy.url + "/v1/messages",
        json={
            "model": "claude-opus-4-8",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": text}],
            **extra,
        },
        timeout=30,
    )


def metric(proxy: Proxy, line_start: str) -> float:
    text = httpx.get(proxy.url + "/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return 0.0


PAID_SENT = 'vastllm_proxy_paid_requests_total{upstream="anthropic-api"}'


def test_local_first_then_the_paid_api_while_local_is_busy_then_local_again(
    tmp: Path, local: OllamaDouble, paid: AnthropicDouble
) -> None:
    proxy = start_proxy(tmp, local, paid)
    try:
        client = anthropic.Anthropic(base_url=proxy.url, api_key="sk-client", max_retries=0)
        before = paid.calls()
        first = client.messages.with_raw_response.create(
            model="claude-opus-4-8", max_tokens=50, messages=[{"role": "user", "content": "one"}]
        )
        assert first.headers["x-vastllm-upstream"] == "local"
        assert "x-vastllm-paid" not in first.headers
        assert "You said: one" in first.parse().content[0].text  # type: ignore[union-attr]
        assert paid.calls() == before

        local.config(fail_status=503, fail_message="server busy")  # busy: 503, as Ollama says
        second = client.messages.with_raw_response.create(
            model="claude-opus-4-8", max_tokens=50, messages=[{"role": "user", "content": "two"}]
        )
        assert second.headers["x-vastllm-upstream"] == "anthropic-api"
        assert second.headers["x-vastllm-paid"] == "1"
        text = second.parse().content[0].text  # type: ignore[union-attr]
        assert text == f"Paid double ({PAID_MODEL}) says: two"
        sent = paid.last_request()
        assert sent["body"]["model"] == PAID_MODEL
        assert sent["headers"]["x-api-key"] == "***"  # the key went as x-api-key ...
        assert "authorization" not in sent["headers"]  # ... and only so (the API refuses Bearer)
        assert metric(proxy, PAID_SENT) == 1

        local.config(fail_status=None)
        third = client.messages.with_raw_response.create(
            model="claude-opus-4-8", max_tokens=50, messages=[{"role": "user", "content": "three"}]
        )
        assert third.headers["x-vastllm-upstream"] == "local"
        assert paid.calls() == before + 1
    finally:
        proxy.stop()
    assert KEY not in proxy.log.read_text()


def test_a_dead_local_upstream_goes_to_the_paid_api_until_it_is_back(
    tmp: Path, local: OllamaDouble, paid: AnthropicDouble
) -> None:
    proxy = start_proxy(tmp, local, paid)
    back: OllamaDouble | None = None
    try:
        assert ask(proxy, "up").headers["x-vastllm-upstream"] == "local"
        local.kill()
        down = ask(proxy, "down")
        assert down.headers["x-vastllm-upstream"] == "anthropic-api"
        assert down.json()["content"][0]["text"] == f"Paid double ({PAID_MODEL}) says: down"
        back = OllamaDouble(tmp, [MODEL], port=local.port)  # the host is back where it was
        wait_until(lambda: upstream_healthy(proxy, "local"), what="local upstream healthy again")
        assert ask(proxy, "back").headers["x-vastllm-upstream"] == "local"
    finally:
        proxy.stop()
        if back is not None:
            back.kill()


def upstream_healthy(proxy: Proxy, name: str) -> bool:
    return any(u["name"] == name and u["healthy"] for u in proxy.health()["upstreams"])


def test_the_paid_api_streams_and_serves_openai_routes(
    tmp: Path, local: OllamaDouble, paid: AnthropicDouble
) -> None:
    proxy = start_proxy(tmp, local, paid)
    try:
        local.kill()
        with httpx.stream(
            "POST",
            proxy.url + "/v1/messages",
            json={
                "model": "claude-opus-4-8",
                "max_tokens": 50,
                "messages": [{"role": "user", "content": "streamed"}],
                "stream": True,
            },
            timeout=30,
        ) as resp:
            assert resp.headers["x-vastllm-upstream"] == "anthropic-api"
            assert resp.headers["x-vastllm-paid"] == "1"
            events = [
                json.loads(line[5:]) for line in resp.iter_lines() if line.startswith("data:")
            ]
        assert [e["type"] for e in events][-1] == "message_stop"
        text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
        assert text == f"Paid double ({PAID_MODEL}) says: streamed"

        oa = openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-client", max_retries=0)
        raw = oa.chat.completions.with_raw_response.create(
            model="claude-opus-4-8", messages=[{"role": "user", "content": "from openai"}]
        )
        assert raw.headers["x-vastllm-upstream"] == "anthropic-api"
        assert raw.parse().choices[0].message.content == (
            f"Paid double ({PAID_MODEL}) says: from openai"
        )
        health = httpx.get(proxy.url + "/health", timeout=10).text
        assert KEY not in health
    finally:
        proxy.stop()
    assert KEY not in proxy.log.read_text()


def test_the_daily_cap_ends_in_529_with_the_reason(
    tmp: Path, local: OllamaDouble, paid: AnthropicDouble
) -> None:
    proxy = start_proxy(tmp, local, paid, paid_requests_per_day=2)
    try:
        local.config(fail_status=529, fail_message="overloaded")
        assert ask(proxy, "a").headers["x-vastllm-upstream"] == "anthropic-api"
        assert ask(proxy, "b").headers["x-vastllm-upstream"] == "anthropic-api"
        assert proxy.health()["paid_today"] == {"sent": 2, "per_day": 2}
        capped = ask(proxy, "c")
        assert capped.status_code == 529
        err = capped.json()
        assert err["type"] == "error"
        assert err["error"]["type"] == "overloaded_error"
        message = err["error"]["message"]
        assert "daily cap of 2 paid requests" in message
        assert "00:00 UTC" in message
        assert "local" in message  # what the local upstream answered is in it too
        assert metric(proxy, PAID_SENT) == 2
        assert metric(proxy, "vastllm_proxy_paid_refused_total") == 1
        local.config(fail_status=None)
        assert ask(proxy, "d").headers["x-vastllm-upstream"] == "local"  # local is never capped
    finally:
        proxy.stop()


def test_the_cap_is_kept_in_redis_for_all_workers_and_paid_answers_are_not_cached(
    tmp: Path, local: OllamaDouble, paid: AnthropicDouble
) -> None:
    with running_redis() as redis:
        proxy = start_proxy(tmp, local, paid, redis_url=redis.url, paid_requests_per_day=3)
        again = start_proxy(tmp, local, paid, redis_url=redis.url, paid_requests_per_day=3)
        try:
            local.config(fail_status=503, fail_message="busy")
            same = {"temperature": 0}  # cacheable: deterministic
            one = ask(proxy, "same question", **same)
            two = ask(proxy, "same question", **same)
            assert one.headers["x-vastllm-cache"] == two.headers["x-vastllm-cache"] == "miss"
            assert two.headers["x-vastllm-paid"] == "1"  # asked again, not served from the cache
            # a second proxy process on the same Redis shares the day's count: 2 spent, 1 left
            assert ask(again, "other").headers["x-vastllm-paid"] == "1"
            assert ask(again, "more").status_code == 529
            assert redis_count(redis) == 3  # the refused 4th is not counted
        finally:
            proxy.stop()
            again.stop()


def redis_count(redis: RedisServer) -> int:
    """Today's paid count in Redis, read with a raw inline GET."""
    day = time.strftime("%Y-%m-%d", time.gmtime())
    with socket.create_connection(("127.0.0.1", redis.port), timeout=5) as s:
        s.sendall(f"GET vastllm:paid:{day}\r\n".encode())
        reply = s.recv(100)
    assert reply.startswith(b"$"), reply
    return int(reply.split(b"\r\n")[1])


def test_a_local_upstream_at_its_max_outstanding_overflows_to_the_paid_api(
    tmp: Path, local: OllamaDouble, paid: AnthropicDouble
) -> None:
    proxy = start_proxy(tmp, local, paid, local_extra={"max_outstanding": 1})
    try:
        local.config(first_token_delay=3.0)
        slow: dict[str, httpx.Response] = {}
        t = threading.Thread(target=lambda: slow.update(r=ask(proxy, "slow one", stream=True)))
        t.start()
        deadline = 50
        while metric(proxy, 'vastllm_proxy_upstream_outstanding{upstream="local"}') < 1:
            deadline -= 1
            assert deadline, "the slow request never reached the local upstream"
            time.sleep(0.05)
        overflow = ask(proxy, "overflow")
        assert overflow.headers["x-vastllm-upstream"] == "anthropic-api"
        t.join(30)
        assert slow["r"].headers["x-vastllm-upstream"] == "local"
    finally:
        local.config(first_token_delay=0)
        proxy.stop()


def test_without_a_local_answer_and_with_no_paid_budget_the_local_error_stands(
    tmp: Path, local: OllamaDouble, paid: AnthropicDouble
) -> None:
    proxy = start_proxy(tmp, local, paid, paid_requests_per_day=0)
    try:
        before = paid.calls()
        local.config(fail_status=503, fail_message="busy")
        r = ask(proxy, "x")
        assert r.status_code == 529
        assert "paid_requests_per_day" in r.json()["error"]["message"]
        assert paid.calls() == before
    finally:
        proxy.stop()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"api_key": None}, "a paid upstream needs its api_key"),
        ({"model": None}, "needs the model to ask it for"),
        ({"kind": "ollama"}, "kind anthropic or openai"),
        ({"base_url": "http://api.example.invalid"}, "only travels over https"),
    ],
)
def test_a_paid_upstream_is_refused_without_key_model_https(
    change: dict[str, Any], message: str
) -> None:
    up = {
        "name": "paid",
        "kind": "anthropic",
        "base_url": "https://api.anthropic.com",
        "api_key": KEY,
        "paid": True,
        "model": PAID_MODEL,
        **change,
    }
    with pytest.raises(ValidationError) as e:
        ProxySettings(upstreams=[up])
    assert message in str(e.value)
    assert KEY not in str(e.value)


def test_auth_header_defaults_by_kind_and_cost() -> None:
    base = {"name": "u", "base_url": "https://x.example", "api_key": KEY}
    s = ProxySettings(
        upstreams=[
            {**base, "name": "a", "kind": "anthropic", "paid": True, "model": PAID_MODEL},
            {**base, "name": "v", "kind": "anthropic"},
            {**base, "name": "o", "kind": "openai"},
            {**base, "name": "p", "kind": "anthropic", "auth": "bearer"},
        ]
    )
    assert [u.auth_header for u in s.upstreams] == ["x-api-key", "both", "bearer", "bearer"]


def test_passthrough_requests_reach_the_paid_api_as_sent_with_its_model(
    tmp: Path, local: OllamaDouble, paid: AnthropicDouble
) -> None:
    """An Ollama with its own /v1/messages (pass-through) is down: the paid API gets the client's
    request untranslated (its beta header and thinking kept), under the paid model's name."""
    proxy = start_proxy(tmp, local, paid, local_extra={"messages": True})
    try:
        assert ask(proxy, "up").headers["x-vastllm-upstream"] == "local"
        assert local.calls("POST /v1/messages") == 1  # passed through, not translated
        local.kill()
        r = httpx.post(
            proxy.url + "/v1/messages",
            headers={"anthropic-version": "2023-06-01", "anthropic-beta": "context-1m-2025-08-07"},
            json={
                "model": "claude-opus-4-8",
                "max_tokens": 40,
                "thinking": {"type": "enabled", "budget_tokens": 1024},
                "messages": [{"role": "user", "content": "raw"}],
            },
            timeout=30,
        )
        assert r.status_code == 200, r.text
        assert r.headers["x-vastllm-upstream"] == "anthropic-api"
        assert r.json()["model"] == PAID_MODEL  # the paid API's own answer, bytes unchanged
        sent = paid.last_request()
        assert sent["body"]["model"] == PAID_MODEL
        assert sent["body"]["thinking"] == {"type": "enabled", "budget_tokens": 1024}
        assert sent["headers"]["anthropic-beta"] == "context-1m-2025-08-07"
    finally:
        proxy.stop()
