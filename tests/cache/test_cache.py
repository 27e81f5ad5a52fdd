"""Redis response cache: hits, stream replay, key normalization, coalescing, Redis outages."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
import redis

from tests.proxy.conftest import MODEL, OllamaDouble, Proxy, RedisServer, upstream, wait_until
from tests.proxy.test_anthropic import parse_sse, stream_text
from tests.support import FIXTURES


def ask(
    proxy: Proxy, text: str, headers: dict[str, str] | None = None, **extra: Any
) -> httpx.Response:
    body = {
        "model": "claude-opus-4-8",
        "max_tokens": 64,
        "temperature": 0,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }
    return httpx.post(proxy.url + "/v1/messages", json=body, headers=headers or {}, timeout=30)


def content(r: httpx.Response) -> Any:
    assert r.status_code == 200, r.text
    return r.json()["content"]


def test_hit_returns_identical_content_without_upstream_call(
    proxy: Proxy, double: OllamaDouble, redis_server: RedisServer, unique: str
) -> None:
    first = ask(proxy, f"cache me {unique}")
    assert first.headers["x-vastllm-cache"] == "miss"
    calls = double.calls()
    second = ask(proxy, f"cache me {unique}")
    assert second.headers["x-vastllm-cache"] == "hit"
    assert content(second) == content(first)
    assert second.json()["usage"] == first.json()["usage"]
    assert double.calls() == calls
    # stored with the configured TTL (default: one week)
    keys = redis.Redis(port=redis_server.port).keys("vastllm:chat:v1:*")
    assert keys
    ttl = redis.Redis(port=redis_server.port).ttl(keys[0])
    assert 0 < ttl <= 7 * 24 * 3600
    # the same question asked through the OpenAI route shares the entry
    r = httpx.post(
        proxy.url + "/v1/chat/completions",
        json={
            "model": "claude-x",
            "max_tokens": 64,
            "temperature": 0,
            "messages": [{"role": "user", "content": f"cache me {unique}"}],
        },
    )
    assert r.headers["x-vastllm-cache"] == "hit"
    assert r.json()["choices"][0]["message"]["content"] == content(first)[0]["text"]
    assert double.calls() == calls


def test_stream_is_stored_and_replayed_as_stream_and_as_json(
    proxy: Proxy, double: OllamaDouble, unique: str
) -> None:
    original = ask(proxy, f"stream me {unique}", stream=True)
    assert original.headers["x-vastllm-cache"] == "miss"
    text = stream_text(original)
    calls = double.calls()
    replay = ask(proxy, f"stream me {unique}", stream=True)
    assert replay.headers["x-vastllm-cache"] == "hit"
    assert stream_text(replay) == text
    as_json = ask(proxy, f"stream me {unique}")
    assert as_json.headers["x-vastllm-cache"] == "hit"
    assert content(as_json)[0]["text"] == text
    assert double.calls() == calls


def test_tool_use_answers_replay_from_cache(
    proxy: Proxy, double: OllamaDouble, unique: str
) -> None:
    tool = {
        "name": "probe",
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
    first = ask(proxy, f"call probe x{unique}", tools=[tool], stream=True)
    calls = double.calls()
    again = ask(proxy, f"call probe x{unique}", tools=[tool], stream=True)
    assert again.headers["x-vastllm-cache"] == "hit"
    assert double.calls() == calls
    strip = [(e, {k: v for k, v in d.items() if k != "message"}) for e, d in parse_sse(first.text)]
    strip2 = [(e, {k: v for k, v in d.items() if k != "message"}) for e, d in parse_sse(again.text)]
    assert strip2 == strip  # same blocks, same tool_use id and input


def test_key_ignores_session_noise(proxy: Proxy, double: OllamaDouble, unique: str) -> None:
    """Billing header, metadata, cache_control, session headers, the claude-* alias and tool-use
    ids differ between two Claude Code sessions: the second still hits."""
    base = json.loads((FIXTURES / "claude-code" / "request-2.json").read_text())["body"]
    base["temperature"] = 0
    base["messages"][0]["content"][1]["text"] = f"Run echo hi {unique}"
    other = copy.deepcopy(base)
    other["model"] = "claude-sonnet-4-9"
    other["system"][0]["text"] = (
        "x-anthropic-billing-header: cc_version=9.9.9.abc; cc_entrypoint=cli;"
    )
    other["metadata"] = {"user_id": "somebody else"}
    other["system"][1].pop("cache_control")
    other["messages"][-1]["content"][0].pop("cache_control")
    other["messages"][-2]["content"][0]["id"] = "toolu_other"
    other["messages"][-1]["content"][0]["tool_use_id"] = "toolu_other"
    url = proxy.url + "/v1/messages?beta=true"
    first = httpx.post(url, json=base, headers={"X-Claude-Code-Session-Id": "one"}, timeout=30)
    assert first.headers["x-vastllm-cache"] == "miss"
    calls = double.calls()
    second = httpx.post(url, json=other, headers={"X-Claude-Code-Session-Id": "two"}, timeout=30)
    assert second.headers["x-vastllm-cache"] == "hit"
    assert stream_text(second) == stream_text(first)
    assert double.calls() == calls
    # but a different question is a different key
    other["messages"][-1]["content"][0]["content"] = "bye"
    third = httpx.post(url, json=other, timeout=30)
    assert third.headers["x-vastllm-cache"] == "miss"


def test_no_cache_header_and_nondeterministic_requests_bypass(
    proxy: Proxy, double: OllamaDouble, unique: str
) -> None:
    ask(proxy, f"fresh {unique}")
    calls = double.calls()
    r = ask(proxy, f"fresh {unique}", headers={"Cache-Control": "no-cache"})
    assert r.headers["x-vastllm-cache"] == "bypass"
    assert double.calls() == calls + 1
    # temperature 1 (Claude Code's default) is not cached in deterministic mode
    for _ in range(2):
        r = ask(proxy, f"random {unique}", temperature=1)
        assert r.headers["x-vastllm-cache"] == "bypass"
    assert double.calls() == calls + 3


def test_concurrent_identical_misses_are_coalesced(
    proxy: Proxy, knobs: OllamaDouble, unique: str
) -> None:
    knobs.config(token_delay=0.05)

    async def run(stream: bool, text: str) -> list[str]:
        client = anthropic.AsyncAnthropic(base_url=proxy.url, api_key="x", max_retries=0)

        async def one() -> str:
            kwargs: dict[str, Any] = {
                "model": "claude-opus-4-8",
                "max_tokens": 64,
                "messages": [{"role": "user", "content": text}],
                "extra_body": {"temperature": 0},
            }
            if stream:
                async with client.messages.stream(**kwargs) as s:
                    return "".join([t async for t in s.text_stream])
            msg = await client.messages.create(**kwargs)
            return str(msg.content[0].text)  # type: ignore[union-attr]

        try:
            return await asyncio.gather(*(one() for _ in range(8)))
        finally:
            await client.close()

    def shared() -> int:
        """Requests answered without their own upstream call: coalesced ones and cache hits."""
        lines = httpx.get(proxy.url + "/metrics").text.splitlines()
        names = ("vastllm_proxy_cache_coalesced_total ", "vastllm_proxy_cache_hits_total ")
        return sum(int(line.split()[-1]) for line in lines if line.startswith(names))

    for stream in (False, True):
        text = f"coalesce stream={stream} one two three {unique}"
        before, shared_before = knobs.calls(), shared()
        answers = asyncio.run(run(stream, text))
        assert knobs.calls() == before + 1
        assert answers == [f"You said: {text}"] * 8
        assert shared() == shared_before + 7


@pytest.fixture
def own_redis(workdir: Path, double: OllamaDouble) -> Iterator[tuple[Proxy, RedisServer]]:
    """A proxy with a Redis of its own (to kill), caching everything, 1 KiB entries at most."""
    redis = RedisServer()
    redis.start()
    proxy = Proxy(
        workdir,
        upstreams=[upstream("main", double)],
        redis_url=redis.url,
        default_model=MODEL,
        cache_mode="all",
        cache_max_entry_bytes=1024,
        active_model_file=str(workdir / "absent.json"),
    )
    yield proxy, redis
    proxy.stop()
    redis.kill()


def test_redis_outage_degrades_then_recovers(
    own_redis: tuple[Proxy, RedisServer], double: OllamaDouble, unique: str
) -> None:
    proxy, redis = own_redis
    # cache_mode=all: a temperature-1 request is cached too
    assert ask(proxy, f"before {unique}", temperature=1).headers["x-vastllm-cache"] == "miss"
    assert ask(proxy, f"before {unique}", temperature=1).headers["x-vastllm-cache"] == "hit"
    # answers over cache_max_entry_bytes are not stored
    long = "word " * 300
    assert ask(proxy, long + unique, max_tokens=1000).headers["x-vastllm-cache"] == "miss"
    assert ask(proxy, long + unique, max_tokens=1000).headers["x-vastllm-cache"] == "miss"

    redis.kill()
    calls = double.calls()
    for text in (f"during {unique}", f"before {unique}"):
        r = ask(proxy, text)
        assert r.status_code == 200
        assert content(r)[0]["text"] == f"You said: {text}"
    r = ask(proxy, f"during stream {unique}", stream=True)
    assert stream_text(r) == f"You said: during stream {unique}"
    assert double.calls() == calls + 3
    health = proxy.health()
    assert health["status"] == "degraded"
    assert health["redis"] == "down"
    metrics = httpx.get(proxy.url + "/metrics").text
    assert "vastllm_proxy_redis_up 0" in metrics

    redis.start()  # same port, empty
    wait_until(lambda: proxy.health()["status"] == "ok", what="health ok after Redis restart")

    def cached_again() -> bool:
        ask(proxy, f"after {unique}")
        return ask(proxy, f"after {unique}").headers["x-vastllm-cache"] == "hit"

    wait_until(cached_again, what="cache hits after Redis restart")
