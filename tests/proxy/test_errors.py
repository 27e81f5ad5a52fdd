"""Every error status in Anthropic's and OpenAI's shapes; bad input is a 4xx, never a 500."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.proxy.conftest import MODEL, OllamaDouble, Proxy, upstream, wait_until
from tests.support import free_port

MSG = {"role": "user", "content": "hi"}
# raw bodies need the media type the SDKs send (the proxy answers 415 without it)
JSON = {"Content-Type": "application/json"}


def anthropic_error(r: httpx.Response, status: int, kind: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == kind
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    return str(body["error"]["message"])


def openai_error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    return str(err["message"])


@pytest.fixture(scope="module")
def strict(workdir: Path, redis_server: Any) -> Iterator[tuple[Proxy, OllamaDouble]]:
    """API keys from the environment, a 64 KiB body limit, one request in flight at most."""
    double = OllamaDouble(workdir, [MODEL])
    proxy = Proxy(
        workdir,
        env_settings={"VASTLLM_PROXY_API_KEYS": "sk-good,sk-other"},
        upstreams=[upstream("strict", double)],
        default_model=MODEL,
        redis_url=redis_server.url,
        max_body_bytes=64 * 1024,
        max_outstanding=1,
        active_model_file=str(workdir / "absent.json"),
    )
    yield proxy, double
    proxy.stop()
    double.kill()


def test_400_shapes_and_sdk_classes(proxy: Proxy) -> None:
    a = anthropic.Anthropic(base_url=proxy.url, api_key="x", max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as ei:
        a.messages.create(model="claude-opus-4-8", max_tokens=0, messages=[MSG])
    assert ei.value.status_code == 400
    assert ei.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    o = openai.OpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as eo:
        o.chat.completions.create(model=MODEL, messages=[{"role": "robot", "content": "x"}])
    assert eo.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    assert "robot" in eo.value.body["message"]  # type: ignore[index]


def test_401_api_keys(strict: tuple[Proxy, OllamaDouble]) -> None:
    proxy, _ = strict
    body = {"model": "claude-opus-4-8", "max_tokens": 20, "messages": [MSG]}
    r = httpx.post(proxy.url + "/v1/messages", json=body)
    assert "missing API key" in anthropic_error(r, 401, "authentication_error")
    r = httpx.post(proxy.url + "/v1/messages", json=body, headers={"x-api-key": "sk-bad"})
    assert anthropic_error(r, 401, "authentication_error") == "invalid API key"
    openai_error(httpx.post(proxy.url + "/v1/chat/completions", json={"messages": [MSG]}), 401)
    for headers in ({"x-api-key": "sk-good"}, {"Authorization": "Bearer sk-other"}):
        r = httpx.post(proxy.url + "/v1/messages", json=body, headers=headers)
        assert r.status_code == 200, r.text
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=proxy.url, api_key="nope", max_retries=0).messages.create(
            model="claude-opus-4-8", max_tokens=5, messages=[MSG]
        )
    ok = openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-good", max_retries=0)
    assert ok.chat.completions.create(model=MODEL, messages=[MSG]).choices[0].message.content
    # health and metrics stay open for monitors; the key never shows up in the log
    assert httpx.get(proxy.url + "/health").status_code == 200
    assert httpx.get(proxy.url + "/metrics").status_code == 200
    assert "sk-good" not in proxy.log.read_text()


def test_404_unknown_route_and_unknown_model(proxy: Proxy) -> None:
    r = httpx.post(proxy.url + "/v1/nothing", json={})
    anthropic_error(r, 404, "not_found_error")
    a = anthropic.Anthropic(base_url=proxy.url, api_key="x", max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as ei:
        a.messages.create(model="no-such-model", max_tokens=5, messages=[MSG])
    assert "model 'no-such-model' not found" in str(ei.value)
    o = openai.OpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.NotFoundError):
        o.chat.completions.create(model="no-such-model", messages=[MSG])
    r = httpx.get(proxy.url + "/v1/messages")
    anthropic_error(r, 405, "invalid_request_error")


def test_413_body_limit(strict: tuple[Proxy, OllamaDouble]) -> None:
    proxy, _ = strict
    big = {
        "model": "claude-opus-4-8",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "x" * 70_000}],
    }
    r = httpx.post(proxy.url + "/v1/messages", json=big, headers={"x-api-key": "sk-good"})
    anthropic_error(r, 413, "request_too_large")
    with pytest.raises(anthropic.RequestTooLargeError):
        anthropic.Anthropic(base_url=proxy.url, api_key="sk-good", max_retries=0).messages.create(
            model="claude-opus-4-8",
            max_tokens=5,
            messages=big["messages"],  # type: ignore[arg-type]
        )
    r = httpx.post(
        proxy.url + "/v1/chat/completions",
        json={"messages": big["messages"]},
        headers={"x-api-key": "sk-good"},
    )
    openai_error(r, 413)

    # a chunked body without Content-Length is cut off at the limit too
    def chunks() -> Iterator[bytes]:
        yield b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"'
        for _ in range(80):
            yield b"y" * 1024
        yield b'"}]}'

    r = httpx.post(
        proxy.url + "/v1/messages", content=chunks(), headers={"x-api-key": "sk-good", **JSON}
    )
    anthropic_error(r, 413, "request_too_large")


def test_429_and_500_from_the_upstream(proxy: Proxy, knobs: OllamaDouble) -> None:
    a = anthropic.Anthropic(base_url=proxy.url, api_key="x", max_retries=0)
    o = openai.OpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0)
    knobs.config(fail_status=429, fail_message="too many requests")
    with pytest.raises(anthropic.RateLimitError) as ei:
        a.messages.create(model="claude-opus-4-8", max_tokens=5, messages=[MSG])
    assert ei.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    with pytest.raises(openai.RateLimitError):
        o.chat.completions.create(model=MODEL, messages=[MSG])
    knobs.config(fail_status=500, fail_message="the model failed to generate a response")
    with pytest.raises(anthropic.InternalServerError) as e5:
        a.messages.create(model="claude-opus-4-8", max_tokens=5, messages=[MSG])
    assert e5.value.status_code == 500
    assert e5.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    assert "the model failed to generate a response" in str(e5.value)
    r = httpx.post(
        proxy.url + "/v1/messages",
        json={"model": "claude-opus-4-8", "max_tokens": 5, "stream": True, "messages": [MSG]},
    )
    anthropic_error(r, 500, "api_error")  # failed before the stream began: a plain JSON error


def test_mid_stream_failure_becomes_an_error_event(
    proxy: Proxy, knobs: OllamaDouble, unique: str
) -> None:
    knobs.config(fail_after_tokens=2)
    body = {
        "model": "claude-opus-4-8",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": f"a b c d {unique}"}],
    }
    r = httpx.post(proxy.url + "/v1/messages", json=body)
    assert r.status_code == 200
    frames = r.text.strip().split("\n\n")
    assert frames[-1].startswith("event: error\n")
    assert json.loads(frames[-1].split("data: ", 1)[1])["error"]["type"] == "api_error"


def test_503_when_no_upstream_is_reachable(workdir: Path) -> None:
    dead = {"name": "dead", "kind": "ollama", "base_url": f"http://127.0.0.1:{free_port()}"}
    proxy = Proxy(workdir, upstreams=[dead], default_model=MODEL, redis_url="")
    try:
        a = anthropic.Anthropic(base_url=proxy.url, api_key="x", max_retries=0)
        with pytest.raises(anthropic.ServiceUnavailableError) as ei:
            a.messages.create(model="claude-opus-4-8", max_tokens=5, messages=[MSG])
        assert ei.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
        o = openai.OpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.InternalServerError) as eo:
            o.chat.completions.create(model=MODEL, messages=[MSG])
        assert eo.value.status_code == 503
        wait_until(lambda: proxy.health()["status"] == "degraded", what="degraded health")
        assert proxy.health()["upstreams"][0]["healthy"] is False
    finally:
        proxy.stop()


def test_529_when_the_proxy_is_at_its_limit(strict: tuple[Proxy, OllamaDouble]) -> None:
    proxy, double = strict
    double.config(hang=True)
    headers = {"x-api-key": "sk-good"}
    body = {"model": "claude-opus-4-8", "max_tokens": 5, "messages": [MSG]}
    first: dict[str, httpx.Response] = {}
    t = threading.Thread(
        target=lambda: first.update(
            r=httpx.post(proxy.url + "/v1/messages", json=body, headers=headers, timeout=30)
        )
    )
    t.start()
    try:
        wait_until(lambda: proxy.health()["upstreams"][0]["outstanding"] == 1, what="one in flight")
        with pytest.raises(anthropic.OverloadedError) as ei:
            anthropic.Anthropic(
                base_url=proxy.url, api_key="sk-good", max_retries=0
            ).messages.create(model="claude-opus-4-8", max_tokens=5, messages=[MSG])
        assert ei.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    finally:
        double.config(hang=False)
        t.join(30)
    assert first["r"].status_code == 200


BAD_ANTHROPIC: list[tuple[bytes | dict[str, Any], str]] = [
    (b"{not json", "not valid JSON"),
    (b"", "empty"),
    (b"[1, 2]", "JSON object"),
    ({"max_tokens": 5, "messages": [MSG]}, "model"),
    ({"model": "m", "max_tokens": 5}, "messages"),
    ({"model": "m", "messages": [MSG]}, "max_tokens"),
    ({"model": "m", "max_tokens": "5", "messages": [MSG]}, "max_tokens"),
    ({"model": "m", "max_tokens": 5, "messages": "hi"}, "messages"),
    ({"model": "m", "max_tokens": 5, "messages": []}, "messages"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "robot", "content": "x"}]}, "role"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user"}]}, "content"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": 5}]}, "content"),
    (
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": [{"type": "video"}]}],
        },
        "video",
    ),
    ({"model": "m", "max_tokens": 5, "messages": [MSG], "temperature": "hot"}, "temperature"),
    ({"model": "m", "max_tokens": 5, "messages": [MSG], "temperature": 7}, "temperature"),
    ({"model": "m", "max_tokens": 5, "messages": [MSG], "system": 3}, "system"),
    (
        {"model": "m", "max_tokens": 5, "messages": [MSG], "tools": [{"description": "x"}]},
        "tools.0",
    ),
    (
        {"model": "m", "max_tokens": 5, "messages": [MSG], "tool_choice": {"type": "maybe"}},
        "tool_choice",
    ),
    ({"model": "m", "max_tokens": 5, "messages": [MSG], "stop_sequences": [1]}, "stop_sequences"),
    ({"model": "m", "max_tokens": 5, "messages": [MSG], "stream": "yes"}, "stream"),
]


@pytest.mark.parametrize(("body", "needle"), BAD_ANTHROPIC)
def test_bad_anthropic_input(proxy: Proxy, body: bytes | dict[str, Any], needle: str) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = httpx.post(proxy.url + "/v1/messages", content=raw, headers=JSON)
    assert needle in anthropic_error(r, 400, "invalid_request_error")


BAD_OPENAI: list[tuple[bytes | dict[str, Any], str]] = [
    (b"{", "not valid JSON"),
    ({"model": "m"}, "messages"),
    ({"model": 5, "messages": [MSG]}, "model"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "role"),
    ({"messages": [{"role": "user", "content": [{"type": "audio"}]}]}, "audio"),
    ({"messages": [MSG], "max_tokens": -1}, "max_tokens"),
    ({"messages": [MSG], "n": 3}, "n"),
    ({"messages": [MSG], "tools": [{"type": "function"}]}, "tools.0.function"),
    ({"messages": [MSG], "stop": 5}, "stop"),
]


@pytest.mark.parametrize(("body", "needle"), BAD_OPENAI)
def test_bad_openai_input(proxy: Proxy, body: bytes | dict[str, Any], needle: str) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = httpx.post(proxy.url + "/v1/chat/completions", content=raw, headers=JSON)
    assert needle in openai_error(r, 400)
    r = httpx.post(proxy.url + "/generate", json={"prompt": 5})
    assert "prompt" in openai_error(r, 400)


json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-5, 70000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
block = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image", "tool_use", "tool_result", "thinking", "weird"])},
    optional={
        "text": json_value,
        "id": json_value,
        "name": json_value,
        "input": json_value,
        "tool_use_id": json_value,
        "content": json_value,
        "source": json_value,
    },
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "tool", "robot"]) | json_value},
    optional={"content": st.text(max_size=30) | st.lists(block, max_size=3) | json_value},
)
anthropic_body = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["claude-opus-4-8", MODEL]) | json_value,
        "max_tokens": st.integers(-2, 100) | json_value,
        "messages": st.lists(message, max_size=3) | json_value,
        "system": st.text(max_size=20) | st.lists(block, max_size=2) | json_value,
        "temperature": st.floats(-1, 3, allow_nan=False, allow_infinity=False) | json_value,
        "stream": st.booleans() | json_value,
        "tools": st.lists(json_value, max_size=2),
        "tool_choice": json_value,
        "stop_sequences": json_value,
        "top_k": json_value,
    },
)
openai_body = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from([MODEL, "claude-x"]) | json_value,
        "messages": st.lists(message, max_size=3) | json_value,
        "max_tokens": st.integers(-2, 100) | json_value,
        "stream": st.booleans() | json_value,
        "tools": json_value,
        "tool_choice": json_value,
        "stop": json_value,
        "seed": json_value,
        "n": json_value,
    },
)
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(body=anthropic_body)
def test_fuzz_messages_never_5xx(proxy: Proxy, body: dict[str, Any]) -> None:
    r = httpx.post(
        proxy.url + "/v1/messages", json=body, headers={"Cache-Control": "no-store"}, timeout=30
    )
    assert r.status_code < 500, (body, r.text)
    if r.status_code >= 400:
        assert r.json()["type"] == "error"


@FUZZ
@given(body=openai_body)
def test_fuzz_chat_completions_never_5xx(proxy: Proxy, body: dict[str, Any]) -> None:
    r = httpx.post(
        proxy.url + "/v1/chat/completions",
        json=body,
        headers={"Cache-Control": "no-store"},
        timeout=30,
    )
    assert r.status_code < 500, (body, r.text)
    if r.status_code >= 400:
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_health_reports_the_active_model(proxy: Proxy) -> None:
    h = proxy.health()
    assert h["status"] == "ok"
    assert h["redis"] == "ok"
    assert h["active_model"] == {"name": MODEL, "engine": "ollama", "context_length": 32768}
    assert h["upstreams"][0]["name"] == "main"
    assert h["upstreams"][0]["outstanding"] == 0
