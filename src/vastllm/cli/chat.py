"""``vastllm chat``: one Anthropic Messages API request through the tunnel and the proxy, the
answer's text written as it streams in."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from vastllm.cli.errors import CliFailure, UsageProblem
from vastllm.cli.sse import iter_events

ANTHROPIC_VERSION = "2023-06-01"
KEY_ENV = ("VASTLLM_PROXY_API_KEY", "ANTHROPIC_AUTH_TOKEN")


def api_key_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """The proxy key: $VASTLLM_PROXY_API_KEY, else $ANTHROPIC_AUTH_TOKEN, else none."""
    env = os.environ if env is None else env
    for name in KEY_ENV:
        if env.get(name):
            return env[name]
    return None


@dataclass(frozen=True)
class ChatRequest:
    url: str
    message: str
    model: str
    max_tokens: int
    stream: bool = True
    temperature: float | None = None
    timeout: float = 600.0
    api_key: str | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": [{"role": "user", "content": self.message}],
            "stream": self.stream,
        }
        if self.temperature is not None:
            body["temperature"] = self.temperature
        return body

    def headers(self) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION, "accept": "application/json"}
        if self.stream:
            headers["accept"] = "text/event-stream"
        if self.api_key:
            headers["x-api-key"] = self.api_key
        return headers

    @property
    def endpoint(self) -> str:
        return self.url.rstrip("/") + "/v1/messages"


def _error_text(payload: Any) -> str | None:
    """``type: message`` of an Anthropic error object, or None when it is not one."""
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        error = payload["error"]
        return f"{error.get('type', 'error')}: {error.get('message', '')}".strip()
    return None


def http_error(status: int, body: str) -> CliFailure:
    try:
        text = _error_text(json.loads(body))
    except ValueError:
        text = None
    message = f"the proxy answered HTTP {status}: {text or body.strip()[:300] or 'no body'}"
    if status == 401:
        message += f"\n(set the proxy's key in ${KEY_ENV[0]})"
    return CliFailure(message)


def _network_error(request: ChatRequest, exc: httpx.HTTPError) -> CliFailure:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return CliFailure(
            f"cannot connect to {request.url}: the tunnel to the GPU host is not up.\n"
            "Open it with `vastllm tunnel`, or see what is wrong with `vastllm status`."
        )
    if isinstance(exc, httpx.ReadTimeout):
        return CliFailure(f"no answer from {request.url} within {request.timeout:g} s")
    if isinstance(exc, httpx.RemoteProtocolError):
        return CliFailure(
            f"{request.url} closed the connection before the answer ended: the proxy on the "
            "GPU host may be down; see `vastllm status` (and `vastllm recover`)"
        )
    return CliFailure(f"request to {request.endpoint} failed: {exc}")


def _stream(response: httpx.Response, write: Callable[[str], None]) -> None:
    for event in iter_events(response.iter_lines()):
        if event.event == "ping" or not event.data:
            continue
        try:
            data = json.loads(event.data)
        except ValueError as exc:
            raise CliFailure(f"the proxy sent an event that is not JSON: {exc}") from exc
        kind = data.get("type", event.event) if isinstance(data, dict) else event.event
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                write(str(delta["text"]))
        elif kind == "error":
            raise CliFailure(f"the answer failed: {_error_text(data) or event.data}")
        elif kind == "message_stop":
            return
    raise CliFailure("the answer stopped before its end (the stream closed early)")


def _whole(response: httpx.Response, write: Callable[[str], None]) -> None:
    try:
        data = response.json()
    except ValueError as exc:
        raise CliFailure(f"the proxy's answer is not JSON: {exc}") from exc
    blocks = data.get("content") if isinstance(data, dict) else None
    for block in blocks or []:
        if isinstance(block, dict) and block.get("type") == "text":
            write(str(block.get("text", "")))


def chat(request: ChatRequest, write: Callable[[str], None]) -> None:
    """Send the request and write the answer's text (streamed, or whole with stream=False)."""
    timeout = httpx.Timeout(request.timeout, connect=10.0)
    try:
        with (
            httpx.Client(timeout=timeout, trust_env=False) as client,
            client.stream(
                "POST", request.endpoint, json=request.body(), headers=request.headers()
            ) as response,
        ):
            if response.status_code >= 400:
                raise http_error(response.status_code, response.read().decode(errors="replace"))
            if request.stream:
                _stream(response, write)
            else:
                response.read()
                _whole(response, write)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise UsageProblem(f"bad --url {request.url!r}: {exc}") from exc
    except httpx.HTTPError as exc:
        raise _network_error(request, exc) from exc
