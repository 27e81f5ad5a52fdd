"""Upstream kind ``anthropic`` against the real vLLM: ``/v1/messages`` passed through (the
answer is vLLM's own, event for event), cached as vLLM's bytes, ``count_tokens`` forwarded, and
the OpenAI routes translated to Messages and back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.proxy.conftest import Proxy
from tests.support import REPO, free_port
from tests.vllm.conftest import (
    CLIENT_TIMEOUT,
    MAX_MODEL_LEN,
    SERVED_NAME,
    VllmServer,
    message_text,
    write_active_model,
)

FIXTURES = REPO / "tests" / "fixtures" / "claude-code"

QUESTION = "What is the capital of France? Answer in one sentence."
PIXEL_PNG = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def ask(text: str, *, stream: bool = False, max_tokens: int = 24) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    }


def post(url: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    """One raw POST /v1/messages: the bytes exactly as the server sent them."""
    return httpx.post(
        url + "/v1/messages",
        json=body,
        headers={"anthropic-version": "2023-06-01", **headers},
        timeout=CLIENT_TIMEOUT,
    )


def sse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for frame in raw.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.strip().splitlines() if ": " in line)
        if "event" in lines:
            out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_a_stream_is_vllms_own_event_for_event_and_a_hit_replays_its_bytes(
    vllm: VllmServer, native_proxy: Proxy, unique: str
) -> None:
    body = ask(f"{QUESTION} {unique}", stream=True)
    direct = post(vllm.url, {**body, "model": SERVED_NAME})
    miss = post(native_proxy.url, body)
    assert direct.status_code == miss.status_code == 200, miss.text
    assert miss.headers["content-type"].startswith("text/event-stream")
    assert miss.headers["x-vastllm-cache"] == "miss"
    theirs, ours = sse_events(direct.content), sse_events(miss.content)
    # the same event sequence vLLM sent, text deltas included (temperature 0)
    assert [e for e, _ in ours] == [e for e, _ in theirs]
    assert ours[0][0] == "message_start"
    assert ours[-1][0] == "message_stop"
    deltas = [d["delta"].get("text", "") for e, d in ours if e == "content_block_delta"]
    assert deltas == [d["delta"].get("text", "") for e, d in theirs if e == "content_block_delta"]
    assert "Paris" in "".join(deltas)
    # the model name in the answer is vLLM's: nothing was rewritten on the way back
    assert ours[0][1]["message"]["model"] == theirs[0][1]["message"]["model"]

    hit = post(native_proxy.url, body)
    assert hit.headers["x-vastllm-cache"] == "hit"
    assert hit.content == miss.content


def test_a_json_answer_through_the_sdk_and_its_cache_hit_are_the_same_bytes(
    native_proxy: Proxy, native_claude: anthropic.Anthropic, unique: str
) -> None:
    kwargs: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "max_tokens": 24,
        "extra_body": {"temperature": 0},  # this SDK has no temperature argument any more
        "messages": [{"role": "user", "content": f"{QUESTION} {unique}"}],
    }
    first = native_claude.messages.with_raw_response.create(**kwargs)
    second = native_claude.messages.with_raw_response.create(**kwargs)
    assert first.headers["x-vastllm-cache"] == "miss"
    assert second.headers["x-vastllm-cache"] == "hit"
    assert first.http_response.content == second.http_response.content
    msg = first.parse()
    assert "Paris" in message_text(msg)
    assert msg.usage.input_tokens > 0
    assert msg.stop_reason in ("end_turn", "max_tokens")


def test_a_tool_use_tool_result_round_trip_passes_through(
    direct_claude: anthropic.Anthropic, native_claude: anthropic.Anthropic, unique: str
) -> None:
    """History with a tool_use and its tool_result goes up as it came; vLLM answers from the
    result (tool_choice none: the test model has no tool-call parser here)."""
    tools: list[Any] = [
        {
            "name": "get_weather",
            "description": "Current weather of a city.",
            "input_schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
    ]
    messages: list[Any] = [
        {"role": "user", "content": f"What is the weather in Paris? {unique}"},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_01",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01",
                    "content": "Sunny, 24 degrees Celsius.",
                },
            ],
        },
    ]
    kwargs: dict[str, Any] = {
        "max_tokens": 32,
        "extra_body": {"temperature": 0},
        "tools": tools,
        "tool_choice": {"type": "none"},
        "messages": messages,
    }
    ours = native_claude.messages.create(model="claude-sonnet-4-5", **kwargs)
    theirs = direct_claude.messages.create(model=SERVED_NAME, **kwargs)
    assert message_text(ours) == message_text(theirs)
    assert message_text(ours).strip()


def test_count_tokens_is_vllms_count(
    direct_claude: anthropic.Anthropic, native_claude: anthropic.Anthropic
) -> None:
    messages: list[Any] = [{"role": "user", "content": QUESTION}]
    ours = native_claude.messages.count_tokens(model="claude-sonnet-4-5", messages=messages)
    theirs = direct_claude.messages.count_tokens(model=SERVED_NAME, messages=messages)
    assert ours.input_tokens == theirs.input_tokens > 0


def test_an_upstream_refusal_keeps_anthropics_shape(native_proxy: Proxy) -> None:
    """vLLM refuses what it cannot do (here: an image for a text-only model); the client gets
    an Anthropic error body, with a 4xx status and vLLM's message."""
    body = ask("Describe this image.")
    body["messages"][0]["content"] = [
        {
            "type": "image",
            "source": {
                "type": "base64",
                "media_type": "image/png",
                "data": PIXEL_PNG,
            },
        },
        {"type": "text", "text": "Describe this image."},
    ]
    resp = post(native_proxy.url, body)
    assert 400 <= resp.status_code < 500, resp.text
    err = resp.json()
    assert err["type"] == "error", err
    assert err["error"]["type"] == "invalid_request_error", err
    assert err["error"]["message"].startswith("upstream vllm: "), err


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_openai_clients_are_translated_to_messages_and_back(
    native_proxy: Proxy, stream: bool, unique: str
) -> None:
    client = openai.OpenAI(
        base_url=native_proxy.url + "/v1", api_key="unused", max_retries=0, timeout=CLIENT_TIMEOUT
    )
    messages: list[Any] = [
        {"role": "system", "content": "You answer in one short sentence."},
        {"role": "user", "content": f"What is the capital of France? {unique}"},
    ]
    if not stream:
        done = client.chat.completions.create(
            model="claude-sonnet-4-5", messages=messages, max_tokens=24, temperature=0
        )
        text = done.choices[0].message.content or ""
        assert done.usage is not None
        assert done.usage.prompt_tokens > 0
    else:
        chunks = client.chat.completions.create(
            model="claude-sonnet-4-5",
            messages=messages,
            max_tokens=24,
            temperature=0,
            stream=True,
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Paris" in text


def test_claude_codes_recorded_request_passes_through_to_an_answer(
    native_proxy: Proxy, unique: str
) -> None:
    """request-minimal.json as Claude Code sent it (billing line, thinking, context_management,
    output_config, an empty tools list, beta headers): a whole streamed answer comes back."""
    recorded = json.loads((FIXTURES / "request-minimal.json").read_text())
    body = recorded["body"]
    body["messages"][-1]["content"] = _with_unique(body["messages"][-1]["content"], unique)
    # its max_tokens 64000 would be clamped to the ~7,800 tokens the context leaves: minutes of
    # CPU decoding (the clamp has its own test in test_proxy.py)
    body["max_tokens"] = 32
    headers = {k: v for k, v in recorded["headers"].items() if k.lower().startswith("anthropic-")}
    resp = httpx.post(
        native_proxy.url + recorded["path"], json=body, headers=headers, timeout=CLIENT_TIMEOUT
    )
    assert resp.status_code == 200, resp.text
    events = sse_events(resp.content)
    assert events[0][0] == "message_start"
    assert events[-1][0] == "message_stop"
    assert any(e == "content_block_delta" for e, _ in events)


def test_claude_codes_first_turn_is_the_proxys_context_400(native_proxy: Proxy) -> None:
    """request-1.json (~20k tokens) does not fit the 8192-token test model: the proxy answers
    the 400 Claude Code shows, before anything goes up."""
    recorded = json.loads((FIXTURES / "request-1.json").read_text())
    resp = httpx.post(
        native_proxy.url + recorded["path"],
        json=recorded["body"],
        headers={"anthropic-version": "2023-06-01"},
        timeout=CLIENT_TIMEOUT,
    )
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert err["message"].startswith("prompt is too long: ")
    assert f"{MAX_MODEL_LEN}-token context" in err["message"]


def _with_unique(content: Any, unique: str) -> Any:
    if isinstance(content, str):
        return f"{content} {unique}"
    return [*content, {"type": "text", "text": unique}]


def test_a_dead_anthropic_upstream_fails_over_to_the_next(
    workdir: Path, vllm: VllmServer, unique: str
) -> None:
    active = write_active_model(workdir, "anthropic")
    dead = f"http://127.0.0.1:{free_port()}"
    proxy = Proxy(
        workdir,
        upstreams=[
            {"name": "gone", "kind": "anthropic", "base_url": dead},
            {"name": "vllm", "kind": "anthropic", "base_url": vllm.url},
        ],
        redis_url="",
        active_model_file=str(active),
        health_interval=60,
    )
    try:
        for _ in range(2):  # least-outstanding with ties rotating: one of them picks "gone" first
            resp = post(proxy.url, ask(f"{QUESTION} {unique}"))
            assert resp.status_code == 200, resp.text
            assert resp.json()["type"] == "message"
    finally:
        proxy.stop()
