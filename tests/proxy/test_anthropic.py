"""Anthropic Messages API through the proxy, with the official SDK and raw HTTP."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import pytest

from tests.proxy.conftest import MODEL, OllamaDouble, Proxy
from tests.support import FIXTURES

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather of a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture
def client(proxy: Proxy) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.url, api_key="sk-test", max_retries=0)


def parse_sse(raw: str) -> list[tuple[str, dict[str, Any]]]:
    """(event, data) pairs of an SSE body, checking each frame's event equals data.type."""
    events = []
    for frame in raw.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.split("\n"))
        data = json.loads(lines["data"])
        assert data["type"] == lines["event"], frame
        events.append((lines["event"], data))
    return events


def stream_text(r: httpx.Response) -> str:
    """The text of a whole, well-ordered SSE answer."""
    assert r.status_code == 200, r.text
    events = parse_sse(r.text)
    check_event_order(events)
    return "".join(d["delta"].get("text", "") for e, d in events if e == "content_block_delta")


def check_event_order(events: list[tuple[str, dict[str, Any]]]) -> None:
    """Anthropic's grammar: message_start, ping, blocks (start, deltas, stop), message_delta,
    message_stop; block indexes count up from 0 and deltas match their block's type."""
    names = [e for e, _ in events]
    assert names[0] == "message_start"
    assert names[1] == "ping"
    assert names[-2:] == ["message_delta", "message_stop"]
    open_block: dict[str, Any] | None = None
    next_index = 0
    for name, data in events[2:-2]:
        if name == "content_block_start":
            assert open_block is None
            assert data["index"] == next_index
            open_block = data["content_block"]
        elif name == "content_block_delta":
            assert open_block is not None
            assert data["index"] == next_index
            want = "text_delta" if open_block["type"] == "text" else "input_json_delta"
            assert data["delta"]["type"] == want
        elif name == "content_block_stop":
            assert open_block is not None
            assert data["index"] == next_index
            open_block = None
            next_index += 1
        else:
            assert name == "ping", name
    assert open_block is None
    assert next_index >= 1
    usage = events[-2][1]["usage"]
    assert usage["output_tokens"] > 0
    assert usage["input_tokens"] > 0


def test_text_answer_echoes_the_user_message(client: anthropic.Anthropic, unique: str) -> None:
    msg = client.messages.create(
        model="claude-sonnet-5",
        max_tokens=200,
        system="You are terse.",
        messages=[{"role": "user", "content": f"Name a colour {unique}"}],
    )
    assert msg.content[0].type == "text"
    assert msg.content[0].text == f"You said: Name a colour {unique}"
    assert msg.stop_reason == "end_turn"
    assert msg.model == "claude-sonnet-5"
    assert msg.usage.input_tokens > 0
    assert msg.usage.output_tokens == len(msg.content[0].text.split())


def test_sdk_stream_and_raw_event_order(
    client: anthropic.Anthropic, proxy: Proxy, unique: str
) -> None:
    with client.messages.stream(
        model="claude-opus-4-8",
        max_tokens=100,
        messages=[{"role": "user", "content": f"Stream this {unique}"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == f"You said: Stream this {unique}"
    assert final.stop_reason == "end_turn"

    body = {
        "model": "claude-opus-4-8",
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": f"Raw stream {unique}"}],
    }
    r = httpx.post(proxy.url + "/v1/messages", json=body, timeout=30)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(r.text)
    check_event_order(events)
    deltas = "".join(d["delta"]["text"] for e, d in events if e == "content_block_delta")
    assert deltas == f"You said: Raw stream {unique}"
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"


def test_max_tokens_cuts_the_answer(
    client: anthropic.Anthropic, knobs: OllamaDouble, unique: str
) -> None:
    msg = client.messages.create(
        model="claude-opus-4-8",
        max_tokens=2,
        messages=[{"role": "user", "content": f"one two three four {unique}"}],
    )
    assert msg.stop_reason == "max_tokens"
    assert msg.content[0].text == "You said:"
    assert knobs.last_request()["options"]["num_predict"] == 2


def test_stop_sequences_and_sampling_reach_the_upstream(
    client: anthropic.Anthropic, knobs: OllamaDouble, unique: str
) -> None:
    msg = client.messages.create(
        model="claude-opus-4-8",
        max_tokens=50,
        stop_sequences=["STOP"],
        # this SDK version no longer has sampling parameters; the API still takes them
        extra_body={"temperature": 0.3, "top_p": 0.9, "top_k": 20},
        messages=[{"role": "user", "content": f"alpha STOP beta {unique}"}],
    )
    assert msg.content[0].text == "You said: alpha "
    options = knobs.last_request()["options"]
    assert options["temperature"] == 0.3
    assert options["top_p"] == 0.9
    assert options["top_k"] == 20
    assert options["stop"] == ["STOP"]


def test_tool_use_round_trip(client: anthropic.Anthropic, knobs: OllamaDouble, unique: str) -> None:
    question = f"Use get_weather Paris{unique}"
    first = client.messages.create(
        model="claude-opus-4-8",
        max_tokens=200,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": question}],
    )
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "get_weather"
    assert call.input == {"city": f"Paris{unique}"}
    sent = knobs.last_request()["body"]
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tools"][0]["function"]["parameters"] == WEATHER_TOOL["input_schema"]

    second = client.messages.create(
        model="claude-opus-4-8",
        max_tokens=200,
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": question},
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21C"}
                ],
            },
        ],
    )
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "Tool get_weather returned: sunny, 21C"
    msgs = knobs.last_request()["body"]["messages"]
    assert msgs[1]["role"] == "assistant"
    assert msgs[1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": {"city": f"Paris{unique}"},
    }
    assert msgs[2] == {"role": "tool", "content": "sunny, 21C", "tool_name": "get_weather"}


def test_streamed_tool_use(client: anthropic.Anthropic, unique: str) -> None:
    with client.messages.stream(
        model="claude-opus-4-8",
        max_tokens=200,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": f"Please use get_weather: Oslo{unique}"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    call = final.content[-1]
    assert call.type == "tool_use"
    assert call.input == {"city": f"Oslo{unique}"}


def test_system_blocks_images_and_ignored_fields(
    client: anthropic.Anthropic, knobs: OllamaDouble, unique: str
) -> None:
    msg = client.messages.create(
        model="claude-haiku-5",
        max_tokens=64,
        system=[
            {
                "type": "text",
                "text": "x-anthropic-billing-header: cc_version=1.2.3; cc_entrypoint=cli;",
            },
            {"type": "text", "text": "Be kind.", "cache_control": {"type": "ephemeral"}},
        ],
        metadata={"user_id": "someone"},
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": "iVBORw0KGgo=",
                        },
                    },
                    {
                        "type": "text",
                        "text": f"What is this? {unique}",
                        "cache_control": {"type": "ephemeral"},
                    },
                ],
            }
        ],
    )
    assert msg.content[0].text == f"You said: What is this? {unique}"
    sent = knobs.last_request()["body"]
    assert sent["messages"][0] == {"role": "system", "content": "Be kind."}
    assert sent["messages"][1]["images"] == ["iVBORw0KGgo="]
    assert "billing" not in json.dumps(sent)


def test_count_tokens(client: anthropic.Anthropic) -> None:
    short = client.messages.count_tokens(
        model="claude-opus-4-8", messages=[{"role": "user", "content": "hi"}]
    )
    long = client.messages.count_tokens(
        model="claude-opus-4-8",
        system="s" * 400,
        messages=[{"role": "user", "content": "x" * 4000}],
        tools=[WEATHER_TOOL],
    )
    assert 0 < short.input_tokens < 20
    assert 1100 < long.input_tokens < 1300


def replay(proxy: Proxy, name: str) -> tuple[dict[str, Any], httpx.Response]:
    """Send a captured Claude Code request (tests/fixtures/claude-code) as it was recorded, less
    the headers of its own connection; (the capture, the answer)."""
    captured = json.loads((FIXTURES / "claude-code" / name).read_text())
    headers = {
        k: v
        for k, v in captured["headers"].items()
        if k.lower() not in ("host", "content-length", "connection", "accept-encoding")
    }
    r = httpx.post(
        proxy.url + captured["path"],
        content=json.dumps(captured["body"]),
        headers=headers,
        timeout=60,
    )
    return captured, r


@pytest.mark.parametrize("name", ["request-minimal.json", "request-1.json", "request-2.json"])
def test_replay_captured_claude_code_requests(proxy: Proxy, knobs: OllamaDouble, name: str) -> None:
    captured, r = replay(proxy, name)
    assert r.status_code == 200, r.text
    assert r.headers["x-vastllm-cache"] == "bypass"  # Claude Code sends no temperature
    events = parse_sse(r.text)
    check_event_order(events)

    sent = knobs.last_request()["body"]
    assert sent["model"] == MODEL
    assert sent["options"]["num_ctx"] == 32768
    # max_tokens 64000 is clamped to what the 32k context leaves
    assert 0 < sent["options"]["num_predict"] < 32768
    assert "x-anthropic-billing-header" not in json.dumps(sent)
    assert sent["messages"][0]["role"] == "system"
    assert sent["messages"][0]["content"].startswith("You are a Claude agent")
    roles = [m["role"] for m in sent["messages"]]
    body_tools = captured["body"]["tools"]
    assert len(sent.get("tools", [])) == len(body_tools)
    if name == "request-2.json":
        assert roles[-2:] == ["assistant", "tool"]
        assert sent["messages"][-1] == {"role": "tool", "content": "hi", "tool_name": "Bash"}
        text = "".join(d["delta"].get("text", "") for e, d in events if e == "content_block_delta")
        assert text == "Tool Bash returned: hi"
    if name == "request-1.json":
        # the mid-conversation system message stays a system message, in place
        assert roles[:3] == ["system", "user", "system"]
