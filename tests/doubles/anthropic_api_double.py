#!/usr/bin/env python3
"""TEST DOUBLE of Anthropic's API (not Anthropic's API; no model runs here): the paid upstream
the proxy falls back to, so that fallback can be tested with no key and no traffic off loopback.

Standard library only, one file, run as ``python3 anthropic_api_double.py`` with
``ANTHROPIC_DOUBLE_PORT`` (127.0.0.1 only) and ``ANTHROPIC_DOUBLE_API_KEY`` (the one key it
takes; from the environment, never argv). It holds to the documented wire contract
(docs.anthropic.com, API reference: Messages, Streaming, Errors, Models, Versioning):

* ``POST /v1/messages``: ``x-api-key`` required (a missing or other key: 401
  ``authentication_error`` "invalid x-api-key"; a key sent only as ``Authorization: Bearer``:
  401 "OAuth authentication is currently not supported.", what the real API answers, as public
  bug reports of clients that sent it that way show); ``anthropic-version`` required (400);
  ``model``, ``max_tokens`` (>= 1) and ``messages`` required (400 ``invalid_request_error``); a
  model it does not have: 404 ``not_found_error``. The answer is a ``message`` with one text
  block, ``stop_reason`` ``end_turn`` (or ``max_tokens`` when the reply is cut), ``usage``.
  ``stream: true`` gives the documented SSE sequence, each with its ``event:`` line:
  message_start, content_block_start, ping, content_block_delta (text_delta per word),
  content_block_stop, message_delta (stop_reason, output usage), message_stop.
* ``GET /v1/models``: the models it has, paged as the API pages them (one page here).
* Errors are ``{"type": "error", "error": {"type", "message"}, "request_id"}`` with a
  ``request-id`` header, as the API sends them.

The reply is ``"Paid double (<model>) says: <last user text>"``, one "token" per word.
Knobs (``POST /__double__/config``, JSON): ``fail_status`` (every ``/v1/messages`` answers that
status with the API's error type for it, e.g. 529 ``overloaded_error``), ``models``.
Introspection: ``GET /__double__/stats`` (request counts by route), ``GET
/__double__/last_request`` (the last ``/v1/messages`` body and its headers, the key masked).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
MESSAGES = {529: "Overloaded", 429: "Number of requests has exceeded your rate limit"}


class State:
    def __init__(self, key: str) -> None:
        self.key = key
        self.lock = threading.Lock()
        self.knobs: dict[str, Any] = {
            "fail_status": None,
            "models": ["claude-sonnet-4-5", "claude-haiku-4-5"],
        }
        self.stats: dict[str, int] = {}
        self.last: dict[str, Any] = {}

    def count(self, route: str) -> None:
        with self.lock:
            self.stats[route] = self.stats.get(route, 0) + 1


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(b.get("text", ""))
            for b in content
            if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


class Handler(BaseHTTPRequestHandler):
    server_version = "anthropic-api-double"
    state: State

    def log_message(self, format: str, *args: Any) -> None:
        return

    # -- plumbing --------------------------------------------------------------------------
    def _send(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", "req_" + secrets.token_hex(12))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send(
            status,
            {
                "type": "error",
                "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
                "request_id": "req_" + secrets.token_hex(12),
            },
        )

    def _authorized(self) -> bool:
        key = self.headers.get("x-api-key")
        if key is None and self.headers.get("Authorization"):
            self._error(401, "OAuth authentication is currently not supported.")
            return False
        if key != self.state.key:
            self._error(401, "invalid x-api-key")
            return False
        return True

    def _body(self) -> dict[str, Any] | None:
        n = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(n) or b"null")
        except json.JSONDecodeError:
            self._error(400, "There was an issue with the format of your request: invalid JSON")
            return None
        if not isinstance(body, dict):
            self._error(400, "There was an issue with the format of your request")
            return None
        return body

    # -- routes ----------------------------------------------------------------------------
    def do_GET(self) -> None:
        st = self.state
        if self.path == "/__double__/stats":
            with st.lock:
                self._send(200, {"requests": dict(st.stats)})
            return
        if self.path == "/__double__/last_request":
            with st.lock:
                self._send(200, st.last)
            return
        if self.path.split("?")[0] == "/v1/models":
            st.count("GET /v1/models")
            if not self._authorized():
                return
            data = [
                {"type": "model", "id": m, "display_name": m, "created_at": "2025-09-29T00:00:00Z"}
                for m in st.knobs["models"]
            ]
            self._send(
                200,
                {
                    "data": data,
                    "has_more": False,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None,
                },
            )
            return
        self._error(404, "Not Found")

    def do_POST(self) -> None:
        st = self.state
        if self.path == "/__double__/config":
            body = self._body()
            if body is not None:
                with st.lock:
                    st.knobs.update(body)
                    self._send(200, st.knobs)
            return
        if self.path.split("?")[0] != "/v1/messages":
            self._error(404, "Not Found")
            return
        st.count("POST /v1/messages")
        if not self._authorized():
            return
        if not self.headers.get("anthropic-version"):
            self._error(400, "anthropic-version: header is required")
            return
        body = self._body()
        if body is None:
            return
        with st.lock:
            st.last = {
                "body": body,
                "headers": {
                    k.lower(): ("***" if k.lower() in ("x-api-key", "authorization") else v)
                    for k, v in self.headers.items()
                },
            }
            fail = st.knobs["fail_status"]
        if fail:
            self._error(int(fail), MESSAGES.get(int(fail), "Internal server error"))
            return
        self._messages(body)

    def _messages(self, body: dict[str, Any]) -> None:
        model = body.get("model")
        max_tokens = body.get("max_tokens")
        messages = body.get("messages")
        if not isinstance(model, str) or not model:
            self._error(400, "model: Field required")
            return
        if not isinstance(max_tokens, int) or max_tokens < 1:
            self._error(400, "max_tokens: Field required (an integer >= 1)")
            return
        if not isinstance(messages, list) or not messages:
            self._error(400, "messages: Field required (at least one message)")
            return
        if model not in self.state.knobs["models"]:
            self._error(404, f"model: {model}")
            return
        last = next(
            (_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
        )
        words = f"Paid double ({model}) says: {last}".split(" ")
        cut = len(words) > max_tokens
        words = words[:max_tokens]
        prompt = sum(len(json.dumps(m)) for m in messages) // 4 + 1
        stop = "max_tokens" if cut else "end_turn"
        msg_id = "msg_" + secrets.token_hex(12)
        if body.get("stream"):
            self._stream(msg_id, model, words, prompt, stop)
            return
        self._send(
            200,
            {
                "id": msg_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": " ".join(words)}],
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": {"input_tokens": prompt, "output_tokens": len(words)},
            },
        )

    def _stream(self, msg_id: str, model: str, words: list[str], prompt: int, stop: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("request-id", "req_" + secrets.token_hex(12))
        self.end_headers()

        def event(kind: str, data: dict[str, Any]) -> None:
            self.wfile.write(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()

        start = {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": 1},
        }
        event("message_start", {"type": "message_start", "message": start})
        event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        )
        event("ping", {"type": "ping"})
        for i, w in enumerate(words):
            piece = w if i == 0 else " " + w
            event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                },
            )
        event("content_block_stop", {"type": "content_block_stop", "index": 0})
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": len(words)},
            },
        )
        event("message_stop", {"type": "message_stop"})
        self.close_connection = True


def main() -> None:
    port = int(os.environ["ANTHROPIC_DOUBLE_PORT"])
    Handler.state = State(os.environ["ANTHROPIC_DOUBLE_API_KEY"])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
