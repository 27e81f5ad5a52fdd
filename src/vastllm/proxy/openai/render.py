"""Neutral results and events -> OpenAI Chat Completions answers: ``chat.completion`` JSON,
``chat.completion.chunk`` SSE frames, and errors in OpenAI's shape."""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from vastllm.proxy.errors import ProxyError
from vastllm.proxy.neutral import ChatResult, Event, Finish, TextDelta, ToolCall


def error_body(err: ProxyError) -> bytes:
    """``{"error": {"message", "type", "param", "code"}}``."""
    return orjson.dumps(
        {"error": {"message": err.message, "type": err.openai_type, "param": None, "code": None}}
    )


def new_completion_id() -> str:
    return "chatcmpl-" + os.urandom(12).hex()


def _tool_calls_json(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [
        {
            "index": i,
            "id": c.id,
            "type": "function",
            "function": {"name": c.name, "arguments": c.arguments},
        }
        for i, c in enumerate(calls)
    ]


def usage_json(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }


def completion_dict(result: ChatResult, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": result.text}
    if result.tool_calls:
        message["tool_calls"] = _tool_calls_json(result.tool_calls)
    return {
        "id": new_completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_vastllm",
        "choices": [{"index": 0, "message": message, "finish_reason": result.finish}],
        "usage": usage_json(result.input_tokens, result.output_tokens),
    }


def render_completion(result: ChatResult, model: str) -> bytes:
    return orjson.dumps(completion_dict(result, model))


DONE = b"data: [DONE]\n\n"


class StreamEncoder:
    """Neutral events -> ``chat.completion.chunk`` SSE frames."""

    __slots__ = ("_head", "_include_usage", "_ntools", "_tail")

    def __init__(self, model: str, include_usage: bool) -> None:
        head = {
            "id": new_completion_id(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_vastllm",
        }
        # every chunk shares this prefix; only the choice differs
        self._head = b"data: " + orjson.dumps(head)[:-1] + b',"choices":[{"index":0,"delta":'
        self._tail = b',"finish_reason":null}]}\n\n'
        self._include_usage = include_usage
        self._ntools = 0

    def start(self) -> bytes:
        return self._head + b'{"role":"assistant","content":""}' + self._tail

    def feed(self, ev: Event) -> bytes:
        if isinstance(ev, TextDelta):
            if not ev.text:
                return b""
            return self._head + orjson.dumps({"content": ev.text}) + self._tail
        if isinstance(ev, ToolCall):
            call = {
                "index": self._ntools,
                "id": ev.id,
                "type": "function",
                "function": {"name": ev.name, "arguments": ev.arguments},
            }
            self._ntools += 1
            return self._head + orjson.dumps({"tool_calls": [call]}) + self._tail
        return self._finish(ev)

    def _finish(self, fin: Finish) -> bytes:
        reason = fin.reason
        if self._ntools and reason == "stop":
            reason = "tool_calls"
        out = self._head + b'{},"finish_reason":"' + reason.encode() + b'"}]}\n\n'
        if self._include_usage:
            # same prefix, but an empty choices list and the usage object
            prefix = self._head[: self._head.index(b',"choices":')]
            usage = orjson.dumps(usage_json(fin.input_tokens, fin.output_tokens))
            out += prefix + b',"choices":[],"usage":' + usage + b"}\n\n"
        return out + DONE

    @staticmethod
    def error(err: ProxyError) -> bytes:
        return b"data: " + error_body(err) + b"\n\n"
