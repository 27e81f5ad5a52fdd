"""The captured Claude Code requests (tests/fixtures/claude-code) replayed through every upstream
kind: Ollama translated to /api/chat, Ollama's own /v1/messages passed through, an OpenAI-kind
server (/v1/chat/completions), an Anthropic-kind server (/v1/messages), and a paid Anthropic
API as the only upstream. Each answer must be a whole Messages stream, from the endpoint that
kind speaks. The real vLLM's turn is tests/vllm/test_passthrough.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.proxy.conftest import MODEL, AnthropicDouble, OllamaDouble, Proxy
from tests.proxy.test_anthropic import replay

KEY = "sk-ant-api03-replay-" + "z" * 20
CAPTURED = ["request-minimal.json", "request-1.json", "request-2.json"]
# kind -> (upstream settings beyond name/base_url, the endpoint the double counts)
KINDS: dict[str, tuple[dict[str, Any], str]] = {
    "ollama": ({"kind": "ollama"}, "POST /api/chat"),
    "ollama-messages": (
        {"kind": "ollama", "messages": True, "context_length": 32768},
        "POST /v1/messages",
    ),
    "openai": ({"kind": "openai"}, "POST /v1/chat/completions"),
    "anthropic": ({"kind": "anthropic"}, "POST /v1/messages"),
    "paid-anthropic": (
        {"kind": "anthropic", "paid": True, "model": "claude-sonnet-4-5", "api_key": KEY},
        "POST /v1/messages",
    ),
}


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("replay")


@pytest.fixture(scope="module")
def ollama(tmp: Path) -> Iterator[OllamaDouble]:
    d = OllamaDouble(tmp, [MODEL])
    yield d
    d.kill()


@pytest.fixture(scope="module")
def paid(tmp: Path) -> Iterator[AnthropicDouble]:
    d = AnthropicDouble(tmp, KEY)
    yield d
    d.kill()


@pytest.fixture(scope="module", params=list(KINDS))
def kind_proxy(
    request: pytest.FixtureRequest, tmp: Path, ollama: OllamaDouble, paid: AnthropicDouble
) -> Iterator[tuple[Proxy, OllamaDouble | AnthropicDouble, str]]:
    name: str = request.param
    extra, endpoint = KINDS[name]
    double: OllamaDouble | AnthropicDouble = paid if extra.get("paid") else ollama
    engine = "ollama" if extra["kind"] == "ollama" else extra["kind"]
    active = tmp / f"active-{name}.json"
    active.write_text(json.dumps({"name": MODEL, "engine": engine, "context_length": 32768}))
    proxy = Proxy(
        tmp,
        upstreams=[{"name": name, "base_url": double.url, **extra}],
        active_model_file=str(active),
        redis_url="",
    )
    yield proxy, double, endpoint
    proxy.stop()


def events_of(body: str) -> list[dict[str, Any]]:
    out = []
    for frame in body.strip().split("\n\n"):
        data = [line[5:].strip() for line in frame.split("\n") if line.startswith("data:")]
        if data:
            out.append(json.loads(data[0]))
    return out


def check_whole_stream(events: list[dict[str, Any]]) -> None:
    """A Messages stream a client can finish: message_start first, blocks that open, take deltas
    of their type and close in index order, message_delta with a stop reason, message_stop last
    (pings may come anywhere)."""
    types = [e["type"] for e in events if e["type"] != "ping"]
    assert types[0] == "message_start"
    assert types[-2:] == ["message_delta", "message_stop"]
    assert events[-2]["delta"]["stop_reason"]
    open_type: str | None = None
    index = 0
    for e in events:
        if e["type"] == "content_block_start":
            assert open_type is None
            assert e["index"] == index
            open_type = e["content_block"]["type"]
        elif e["type"] == "content_block_delta":
            assert e["index"] == index
            want = {"text": "text_delta", "tool_use": "input_json_delta"}.get(open_type or "")
            assert e["delta"]["type"] == want
        elif e["type"] == "content_block_stop":
            assert e["index"] == index
            open_type = None
            index += 1
    assert open_type is None
    assert index >= 1


@pytest.mark.parametrize("captured_name", CAPTURED)
def test_captured_claude_code_requests_through_every_upstream_kind(
    kind_proxy: tuple[Proxy, OllamaDouble | AnthropicDouble, str], captured_name: str
) -> None:
    proxy, double, endpoint = kind_proxy
    before = double.stats().get(endpoint, 0)
    _, r = replay(proxy, captured_name)
    assert r.status_code == 200, r.text
    check_whole_stream(events_of(r.text))
    assert double.stats().get(endpoint, 0) == before + 1  # the endpoint of that kind got it
    assert r.headers["x-vastllm-upstream"] == proxy_name(proxy)


def proxy_name(proxy: Proxy) -> str:
    return str(proxy.health()["upstreams"][0]["name"])
