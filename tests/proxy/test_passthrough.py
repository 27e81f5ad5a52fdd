"""What the pass-through path changes in a request on the way up, how its cache keys differ, what
it counts as a whole answer, and an Ollama upstream with Messages getting ``/v1/messages``
untranslated (the real exchange with vLLM: tests/vllm/test_passthrough.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.proxy.conftest import MODEL, OllamaDouble, Proxy, RedisServer, upstream
from vastllm.proxy.anthropic import parse, passthrough
from vastllm.proxy.neutral import ModelTarget

BILLING = "x-anthropic-billing-header: cc_version=2.1.197.73f; cc_entrypoint=sdk-cli;"


def prepared(body: dict[str, Any], *, room: int = 100) -> Any:
    req = parse.parse(body)
    req.target = ModelTarget("smollm2", "anthropic", 8192)
    req.num_predict = min(body.get("max_tokens", room), room)
    return req


def sent(raw: passthrough.RawRequest) -> dict[str, Any]:
    return dict(json.loads(raw.body))


def body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-opus-4-8",
        "max_tokens": 64000,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }


def test_model_max_tokens_billing_and_empty_tools_change_the_rest_goes_up_as_sent() -> None:
    b = body(
        system=[
            {"type": "text", "text": BILLING},
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "x"}},
        ],
        tools=[],
        thinking={"type": "adaptive"},
        metadata={"user_id": "u"},
        stream=True,
    )
    raw = passthrough.build(prepared(b, room=7000), b, {}, count_only=False)
    up = sent(raw)
    assert up["model"] == "smollm2"
    assert up["max_tokens"] == 7000
    assert up["system"] == [
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "x"}}
    ]
    assert "tools" not in up
    assert (up["thinking"], up["metadata"], up["stream"]) == (
        {"type": "adaptive"},
        {"user_id": "u"},
        True,
    )
    assert raw.stream
    assert raw.path == "/v1/messages"


def test_a_billing_line_in_a_string_system_goes_and_the_rest_stays() -> None:
    b = body(system=f"{BILLING}\nYou are helpful.", tools=[{"name": "t", "input_schema": {}}])
    up = sent(passthrough.build(prepared(b), b, {}, count_only=False))
    assert up["system"] == "You are helpful."
    assert up["tools"] == [{"name": "t", "input_schema": {}}]


def test_anthropic_headers_are_forwarded_and_others_are_not() -> None:
    b = body()
    headers = {
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "interleaved-thinking-2025-05-14",
        "x-api-key": "secret",
        "anthropic-dangerous-direct-browser-access": "true",
    }
    raw = passthrough.build(prepared(b), b, headers, count_only=False)
    assert dict(raw.headers) == {
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "interleaved-thinking-2025-05-14",
    }


def test_count_tokens_goes_to_its_own_path_with_max_tokens_untouched() -> None:
    b = body(stream=True)
    raw = passthrough.build(prepared(b), b, {}, count_only=True)
    assert raw.path == "/v1/messages/count_tokens"
    assert not raw.stream
    assert sent(raw)["max_tokens"] == 64000


def test_cache_keys_differ_by_stream_and_beta_and_body_but_not_by_other_headers() -> None:
    def key(b: dict[str, Any], **headers: str) -> str:
        raw = passthrough.build(prepared(b), b, headers, count_only=False)
        return passthrough.raw_cache_key(raw)

    base = key(body())
    assert base == key(body(), **{"x-claude-code-session-id": "s1"})
    assert base != key(body(stream=True))
    assert base != key(body(), **{"anthropic-beta": "b"})
    assert base != key(body(temperature=0))


@pytest.mark.parametrize(
    ("data", "stream", "whole"),
    [
        (b'{"type":"message","content":[]}', False, True),
        (b'{"type":"error","error":{}}', False, False),
        (b"not json", False, False),
        (b"event: message_start\ndata: {}\n\nevent: message_stop\ndata: {}\n\n", True, True),
        (b"event: message_start\ndata: {}\n\n", True, False),
        (b"event: error\ndata: {}\n\nevent: message_stop\ndata: {}\n\n", True, False),
    ],
)
def test_only_whole_answers_are_cached(data: bytes, stream: bool, whole: bool) -> None:
    assert (passthrough.complete_answer(data, stream) is not None) is whole


def test_usage_is_read_from_the_stream_and_from_json() -> None:
    stream = (
        b'event: message_start\ndata: {"type":"message_start","message":{"usage":'
        b'{"input_tokens":12,"output_tokens":1}}}\n\n'
        b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":9}}\n\n'
    )
    assert passthrough.usage(stream, True) == (12, 9)
    assert passthrough.usage(b'{"usage":{"input_tokens":3,"output_tokens":4}}', False) == (3, 4)
    assert passthrough.usage(b"junk", False) == (0, 0)


def send_messages(
    proxy: Proxy, double: OllamaDouble, body: dict[str, Any]
) -> tuple[httpx.Response, tuple[int, int]]:
    """POST /v1/messages through ``proxy``: the answer (200 checked), and how many
    ``/v1/messages`` and ``/api/chat`` calls the double got for it."""
    routes = ("POST /v1/messages", "POST /api/chat")
    before = [double.calls(r) for r in routes]
    resp = httpx.post(
        proxy.url + "/v1/messages",
        json=body,
        headers={"anthropic-version": "2023-06-01"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    after = [double.calls(r) for r in routes]
    return resp, (after[0] - before[0], after[1] - before[1])


@pytest.fixture
def messages_proxy(
    workdir: Path, double: OllamaDouble, redis_server: RedisServer, active_model_file: Path
) -> Iterator[Proxy]:
    """A proxy whose Ollama upstream serves Anthropic's Messages API (Ollama 0.14.0 and
    later; the double reports 0.40.2): ``/v1/messages`` passes through to it."""
    p = Proxy(
        workdir,
        upstreams=[{**upstream("main", double), "messages": True}],
        redis_url=redis_server.url,
        active_model_file=str(active_model_file),
    )
    yield p
    p.stop()


def test_an_ollama_with_messages_gets_v1_messages_untranslated(
    messages_proxy: Proxy, double: OllamaDouble, unique: str
) -> None:
    resp, calls = send_messages(
        messages_proxy,
        double,
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 64,
            "stream": True,
            "system": [{"type": "text", "text": BILLING}, {"type": "text", "text": "Be brief."}],
            "messages": [{"role": "user", "content": f"hello {unique}"}],
        },
    )
    assert calls == (1, 0)
    up = double.last_request()
    assert up["path"] == "/v1/messages"
    assert up["body"]["model"] == MODEL
    assert up["body"]["system"] == [{"type": "text", "text": "Be brief."}]
    lines = resp.text.splitlines()
    events = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    assert events[0] == "message_start"
    assert events[-1] == "message_stop"
    assert unique in resp.text


def test_without_messages_the_same_request_is_translated_to_api_chat(
    proxy: Proxy, double: OllamaDouble, unique: str
) -> None:
    _, calls = send_messages(
        proxy,
        double,
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": f"hello {unique}"}],
        },
    )
    assert calls == (0, 1)


def test_a_prompt_longer_than_ollamas_own_context_goes_the_translated_way(
    workdir: Path, double: OllamaDouble, redis_server: RedisServer, active_model_file: Path
) -> None:
    """Ollama's /v1/messages takes no per-request context: with the upstream's context_length
    (its OLLAMA_CONTEXT_LENGTH) at 1024 and the model's at 32768, a short prompt passes through
    with max_tokens clamped to what 1024 leaves, a long one is translated to /api/chat (which
    asks for the model's context with num_ctx) instead of being cut short."""
    proxy = Proxy(
        workdir,
        upstreams=[{**upstream("main", double), "messages": True, "context_length": 1024}],
        redis_url="",
        active_model_file=str(active_model_file),
    )

    def ask(text: str) -> tuple[int, int]:
        body = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 64000,
            "messages": [{"role": "user", "content": text}],
        }
        return send_messages(proxy, double, body)[1]

    try:
        assert ask("hello") == (1, 0)
        sent_max = double.last_request()["body"]["max_tokens"]
        assert 900 < sent_max < 1024
        assert ask("word " * 2000) == (0, 1)
        assert double.last_request()["num_ctx"] == 32768
    finally:
        proxy.stop()
