"""OpenAI Chat Completions <-> neutral model: request parsing, JSON answers, SSE chunks."""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from vastllm.proxy import validate as v
from vastllm.proxy.chat import ChatRequest, ChatResult, Event, Finish, Message, TextDelta, ToolCall
from vastllm.proxy.errors import InvalidRequest, ProxyError

ROLES = ("system", "developer", "user", "assistant", "tool")


def _content_text(value: object, where: str, images: list[str]) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise InvalidRequest(f"{where}: expected a string or a list of content parts")
    parts: list[str] = []
    for i, part in enumerate(value):
        p = v.obj(part, f"{where}.{i}")
        kind = p.get("type")
        if kind == "text":
            parts.append(v.string(p.get("text"), f"{where}.{i}.text"))
        elif kind == "image_url":
            img = v.obj(p.get("image_url"), f"{where}.{i}.image_url")
            images.append(v.string(img.get("url"), f"{where}.{i}.image_url.url", allow_empty=False))
        else:
            raise InvalidRequest(f"{where}.{i}.type: unsupported content part {kind!r}")
    return "\n".join(parts)


def _message(raw: object, i: int) -> Message:
    m = v.obj(raw, f"messages.{i}")
    role = m.get("role")
    if role not in ROLES:
        raise InvalidRequest(f"messages.{i}.role: expected one of {', '.join(ROLES)}, got {role!r}")
    images: list[str] = []
    text = _content_text(m.get("content"), f"messages.{i}.content", images)
    out: Message = {"role": "system" if role == "developer" else role, "content": text}
    if images:
        out["images"] = images
    if role == "assistant" and m.get("tool_calls") is not None:
        calls = m["tool_calls"]
        if not isinstance(calls, list):
            raise InvalidRequest(f"messages.{i}.tool_calls: expected a list")
        out_calls = []
        for j, call in enumerate(calls):
            c = v.obj(call, f"messages.{i}.tool_calls.{j}")
            fn = v.obj(c.get("function"), f"messages.{i}.tool_calls.{j}.function")
            args = fn.get("arguments", "{}")
            if isinstance(args, dict):
                args = v.dumps(args).decode()
            out_calls.append(
                {
                    "id": v.string(c.get("id", f"call_{i}_{j}"), f"messages.{i}.tool_calls.{j}.id"),
                    "name": v.string(fn.get("name"), f"messages.{i}.tool_calls.{j}.function.name"),
                    "arguments": v.string(args, f"messages.{i}.tool_calls.{j}.function.arguments"),
                }
            )
        if out_calls:
            out["tool_calls"] = out_calls
    if role == "tool":
        out["tool_call_id"] = v.string(m.get("tool_call_id", ""), f"messages.{i}.tool_call_id")
        out["name"] = str(m.get("name") or "")
    return out


def _tools(value: object) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest("tools: expected a list")
    out = []
    for i, tool in enumerate(value):
        t = v.obj(tool, f"tools.{i}")
        if t.get("type", "function") != "function":
            raise InvalidRequest(f"tools.{i}.type: only 'function' tools are supported")
        fn = v.obj(t.get("function"), f"tools.{i}.function")
        clean: dict[str, Any] = {"name": v.string(fn.get("name"), f"tools.{i}.function.name")}
        if fn.get("description") is not None:
            clean["description"] = v.string(fn["description"], f"tools.{i}.function.description")
        clean["parameters"] = v.obj(fn.get("parameters", {}), f"tools.{i}.function.parameters")
        out.append({"type": "function", "function": clean})
    return out


def _tool_choice(value: object) -> str | dict[str, str] | None:
    if value is None:
        return None
    if value in ("auto", "none", "required"):
        return str(value)
    if isinstance(value, dict):
        fn = v.obj(value.get("function"), "tool_choice.function")
        return {"name": v.string(fn.get("name"), "tool_choice.function.name", allow_empty=False)}
    raise InvalidRequest("tool_choice: expected 'auto', 'none', 'required' or a function choice")


def parse(body: dict[str, Any], *, default_model: str = "") -> ChatRequest:
    """Validate and translate a /v1/chat/completions body."""
    model = body.get("model", default_model)
    model = v.string(model, "model")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("messages: Field required (a non-empty list)")
    messages = [_message(m, i) for i, m in enumerate(raw)]
    max_tokens = v.opt_int(body, "max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = v.opt_int(body, "max_tokens", 1)
    n = v.opt_int(body, "n", 1)
    if n is not None and n != 1:
        raise InvalidRequest("n: only n=1 is supported")
    tools = _tools(body.get("tools"))
    choice = _tool_choice(body.get("tool_choice"))
    if choice == "none":
        tools, choice = [], None
    top_k = v.opt_int(body, "top_k", 0)
    return ChatRequest(
        model=model,
        messages=messages,
        tools=tools,
        tool_choice=choice if tools else None,
        max_tokens=max_tokens,
        temperature=v.opt_number(body, "temperature", 0.0, 2.0),
        top_p=v.opt_number(body, "top_p", 0.0, 1.0),
        top_k=top_k or None,
        seed=v.opt_int(body, "seed", -(2**63)),
        stop=v.stop_list(body.get("stop"), "stop"),
        stream=v.opt_bool(body, "stream"),
    )


def include_usage(body: dict[str, Any]) -> bool:
    opts = body.get("stream_options")
    return isinstance(opts, dict) and opts.get("include_usage") is True


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
        return b"data: " + err.openai_body() + b"\n\n"
