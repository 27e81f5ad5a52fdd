"""Neutral events/results -> Anthropic Messages answers (JSON and SSE), and errors in
Anthropic's shape.

The stream follows Anthropic's event order: ``message_start``, ``ping``, then per content block
``content_block_start`` / ``content_block_delta`` (``text_delta`` or ``input_json_delta``) /
``content_block_stop``, then ``message_delta`` (``stop_reason`` and cumulative ``usage``) and
``message_stop``. An upstream failure after the stream began becomes an ``error`` event.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from vastllm.proxy.errors import ProxyError
from vastllm.proxy.neutral import ChatResult, Event, Finish, TextDelta, ToolCall

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def error_dict(err: ProxyError) -> dict[str, Any]:
    """``{"type": "error", "error": {"type", "message"}}``: the body, and the SSE error event."""
    return {"type": "error", "error": {"type": err.anthropic_type, "message": err.message}}


def error_body(err: ProxyError) -> bytes:
    return orjson.dumps(error_dict(err))


def new_message_id() -> str:
    return "msg_" + os.urandom(12).hex()


def _tool_input(arguments: str) -> Any:
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"value": value}


def _usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def render_message(result: ChatResult, model: str) -> bytes:
    content: list[dict[str, Any]] = []
    if result.text or not result.tool_calls:
        content.append({"type": "text", "text": result.text})
    for call in result.tool_calls:
        content.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": _tool_input(call.arguments),
            }
        )
    return orjson.dumps(
        {
            "id": new_message_id(),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": STOP_REASONS[result.finish],
            "stop_sequence": None,
            "usage": _usage(result.input_tokens, result.output_tokens),
        }
    )


def sse(event: bytes, data: dict[str, Any]) -> bytes:
    return b"event: " + event + b"\ndata: " + orjson.dumps(data) + b"\n\n"


PING = sse(b"ping", {"type": "ping"})
MESSAGE_STOP = sse(b"message_stop", {"type": "message_stop"})


class StreamEncoder:
    """Turns neutral events into Anthropic SSE frames, tracking content-block indexes."""

    __slots__ = ("_index", "_model", "_open_text", "_prompt_tokens", "_saw_tool")

    def __init__(self, model: str, prompt_tokens: int) -> None:
        self._model = model
        self._prompt_tokens = prompt_tokens
        self._index = -1
        self._open_text = False
        self._saw_tool = False

    def start(self) -> bytes:
        message: dict[str, Any] = {
            "id": new_message_id(),
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(self._prompt_tokens, 1),
        }
        return sse(b"message_start", {"type": "message_start", "message": message}) + PING

    def _close_text(self) -> bytes:
        if not self._open_text:
            return b""
        self._open_text = False
        return sse(b"content_block_stop", {"type": "content_block_stop", "index": self._index})

    def feed(self, ev: Event) -> bytes:
        if isinstance(ev, TextDelta):
            return self._text(ev.text)
        if isinstance(ev, ToolCall):
            return self._tool(ev)
        return self._finish(ev)

    def _text(self, text: str) -> bytes:
        head = b""
        if not self._open_text:
            self._index += 1
            self._open_text = True
            head = sse(
                b"content_block_start",
                {
                    "type": "content_block_start",
                    "index": self._index,
                    "content_block": {"type": "text", "text": ""},
                },
            )
        if not text:
            return head
        return head + sse(
            b"content_block_delta",
            {
                "type": "content_block_delta",
                "index": self._index,
                "delta": {"type": "text_delta", "text": text},
            },
        )

    def _tool(self, call: ToolCall) -> bytes:
        out = self._close_text()
        self._index += 1
        self._saw_tool = True
        i = self._index
        out += sse(
            b"content_block_start",
            {
                "type": "content_block_start",
                "index": i,
                "content_block": {
                    "type": "tool_use",
                    "id": call.id,
                    "name": call.name,
                    "input": {},
                },
            },
        )
        out += sse(
            b"content_block_delta",
            {
                "type": "content_block_delta",
                "index": i,
                "delta": {"type": "input_json_delta", "partial_json": call.arguments or "{}"},
            },
        )
        return out + sse(b"content_block_stop", {"type": "content_block_stop", "index": i})

    def _finish(self, fin: Finish) -> bytes:
        out = b""
        if self._index < 0:
            out += self._text("")  # every message carries at least one content block
        out += self._close_text()
        reason = fin.reason
        if self._saw_tool and reason == "stop":
            reason = "tool_calls"
        out += sse(
            b"message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": STOP_REASONS[reason], "stop_sequence": None},
                "usage": {
                    "input_tokens": fin.input_tokens,
                    "output_tokens": fin.output_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                },
            },
        )
        return out + MESSAGE_STOP

    @staticmethod
    def error(err: ProxyError) -> bytes:
        return sse(b"error", error_dict(err))
