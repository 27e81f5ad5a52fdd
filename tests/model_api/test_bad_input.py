"""Malformed requests get an OpenAI-shaped 400 (or 404/405), never a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.model_api.conftest import Server

USER = {"role": "user", "content": "hi"}


def assert_openai_error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str)
    assert err["message"]
    assert err["type"] == "invalid_request_error"
    return dict(err)


@pytest.mark.parametrize(
    ("path", "raw", "param", "says"),
    [
        ("/v1/chat/completions", b"{not json", None, "not valid JSON"),
        ("/v1/chat/completions", b"", None, "request body is required"),
        ("/v1/chat/completions", b"[1, 2]", None, "valid dictionary"),
        ("/chat", b'{"messages": [', None, "not valid JSON"),
        ("/generate", b"prompt=hello", None, "not valid JSON"),
    ],
    ids=["truncated-json", "empty-body", "json-array", "chat-truncated", "form-encoded"],
)
def test_unparsable_body(
    server: Server, path: str, raw: bytes, param: str | None, says: str
) -> None:
    r = httpx.post(f"{server.url}{path}", content=raw, headers={"content-type": "application/json"})
    err = assert_openai_error(r, 400)
    assert says in err["message"]
    assert err["param"] == param


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", {"model": "m"}, "messages"),
        ("/v1/chat/completions", {"messages": []}, "messages"),
        ("/v1/chat/completions", {"messages": "hello"}, "messages"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "wizard", "content": "x"}]},
            "messages.0.role",
        ),
        ("/v1/chat/completions", {"messages": [{"content": "x"}]}, "messages.0.role"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": 5}]},
            "messages.0.content.str",
        ),
        ("/v1/chat/completions", {"messages": [USER], "temperature": "hot"}, "temperature"),
        ("/v1/chat/completions", {"messages": [USER], "temperature": 3}, "temperature"),
        ("/v1/chat/completions", {"messages": [USER], "max_tokens": 0}, "max_tokens"),
        ("/v1/chat/completions", {"messages": [USER], "max_tokens": "many"}, "max_tokens"),
        ("/v1/chat/completions", {"messages": [USER], "top_p": 0}, "top_p"),
        ("/v1/chat/completions", {"messages": [USER], "stop": ["x"] * 17}, "stop"),
        ("/v1/chat/completions", {"messages": [USER], "stop": 7}, "stop"),
        ("/v1/chat/completions", {"messages": [USER], "n": 3}, "n"),
        ("/chat", {"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ("/generate", {"max_tokens": 3}, "prompt"),
        ("/generate", {"prompt": ["a", "b"]}, "prompt"),
    ],
    ids=[
        "no-messages",
        "empty-messages",
        "messages-string",
        "unknown-role",
        "no-role",
        "content-number",
        "temperature-string",
        "temperature-too-high",
        "max-tokens-zero",
        "max-tokens-string",
        "top-p-zero",
        "too-many-stops",
        "stop-number",
        "n-3",
        "chat-unknown-role",
        "generate-no-prompt",
        "generate-prompt-list",
    ],
)
def test_invalid_fields(server: Server, path: str, body: dict[str, Any], param: str) -> None:
    r = httpx.post(f"{server.url}{path}", json=body, timeout=30)
    err = assert_openai_error(r, 400)
    assert err["param"] is not None
    assert err["param"].startswith(param), err


def test_unknown_route_is_openai_shaped_404(server: Server) -> None:
    err = assert_openai_error(httpx.get(f"{server.url}/v1/nothing-here"), 404)
    assert err["code"] == "not_found"


def test_wrong_method_is_openai_shaped_405(server: Server) -> None:
    err = assert_openai_error(httpx.get(f"{server.url}/v1/chat/completions"), 405)
    assert err["code"] == "method_not_allowed"


def test_server_still_serves_after_bad_input(server: Server) -> None:
    r = httpx.post(
        f"{server.url}/generate",
        json={"prompt": "Hello", "max_tokens": 1, "temperature": 0},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert "Traceback" not in server.log()
