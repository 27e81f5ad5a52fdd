"""OpenAI Chat Completions request -> neutral :class:`ChatRequest` (messages, images, tools,
tool choice, sampling); 400s name the offending field."""

from __future__ import annotations

from typing import Any

from vastllm.proxy import validate as v
from vastllm.proxy.errors import InvalidRequest
from vastllm.proxy.neutral import ChatRequest, Message

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
