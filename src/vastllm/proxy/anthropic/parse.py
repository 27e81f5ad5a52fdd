"""Anthropic Messages request -> neutral :class:`ChatRequest`.

Translated: ``system`` (string or text blocks), ``system`` messages inside ``messages`` (Claude
Code's mid-conversation system prompts), text / image / tool_use / tool_result / document(text)
blocks, ``tools`` + ``tool_choice``, ``stop_sequences``, ``max_tokens``, ``temperature``,
``top_p``, ``top_k``. Accepted and ignored: ``thinking`` (and thinking blocks in history),
``metadata``, ``cache_control`` anywhere, ``context_management``, ``output_config``,
``service_tier``, ``container``, server tools without an ``input_schema``, unknown fields.

The ``x-anthropic-billing-header: ...`` line Claude Code puts first in ``system`` is billing
metadata for Anthropic's servers; it is dropped before the model (it changes between sessions and
would defeat both this cache and the upstream's prompt-prefix cache).
"""

from __future__ import annotations

from typing import Any

from vastllm.proxy import validate as v
from vastllm.proxy.errors import InvalidRequest
from vastllm.proxy.neutral import ChatRequest, Message

BILLING_PREFIX = "x-anthropic-billing-header:"
IGNORED_BLOCKS = frozenset(
    {"thinking", "redacted_thinking", "server_tool_use", "web_search_tool_result"}
)


def strip_billing(text: str) -> str:
    """Remove a leading billing-header line from a system text."""
    if not text.startswith(BILLING_PREFIX):
        return text
    _, _, rest = text.partition("\n")
    return rest


def _system_text(system: object) -> str:
    if system is None:
        return ""
    if isinstance(system, str):
        return strip_billing(system)
    if not isinstance(system, list):
        raise InvalidRequest("system: expected a string or a list of text blocks")
    parts: list[str] = []
    for i, block in enumerate(system):
        b = v.obj(block, f"system.{i}")
        if b.get("type") != "text":
            raise InvalidRequest(f"system.{i}.type: only 'text' blocks are allowed in system")
        text = strip_billing(v.string(b.get("text"), f"system.{i}.text"))
        if text:
            parts.append(text)
    return "\n\n".join(parts)


def _image_url(block: dict[str, Any], where: str) -> str:
    src = v.obj(block.get("source"), f"{where}.source")
    kind = src.get("type")
    if kind == "base64":
        media = v.string(src.get("media_type"), f"{where}.source.media_type", allow_empty=False)
        data = v.string(src.get("data"), f"{where}.source.data", allow_empty=False)
        return f"data:{media};base64,{data}"
    if kind == "url":
        return v.string(src.get("url"), f"{where}.source.url", allow_empty=False)
    raise InvalidRequest(f"{where}.source.type: expected 'base64' or 'url'")


def _document_text(block: dict[str, Any], where: str) -> str:
    src = v.obj(block.get("source"), f"{where}.source")
    if src.get("type") == "text":
        return v.string(src.get("data"), f"{where}.source.data")
    raise InvalidRequest(f"{where}: only documents with a 'text' source are supported")


def _tool_result_content(value: object, where: str, images: list[str]) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise InvalidRequest(f"{where}: expected a string or a list of blocks")
    parts: list[str] = []
    for i, block in enumerate(value):
        b = v.obj(block, f"{where}.{i}")
        kind = b.get("type")
        if kind == "text":
            parts.append(v.string(b.get("text"), f"{where}.{i}.text"))
        elif kind == "image":
            images.append(_image_url(b, f"{where}.{i}"))
        elif kind == "document":
            parts.append(_document_text(b, f"{where}.{i}"))
        elif kind not in IGNORED_BLOCKS:
            raise InvalidRequest(f"{where}.{i}.type: unsupported block type {kind!r}")
    return "\n".join(parts)


class _Translator:
    def __init__(self) -> None:
        self.out: list[Message] = []
        self.tool_names: dict[str, str] = {}

    def system_message(self, content: object, where: str) -> None:
        if isinstance(content, str):
            text = content
        elif isinstance(content, list):
            parts = []
            for i, block in enumerate(content):
                b = v.obj(block, f"{where}.{i}")
                if b.get("type") != "text":
                    raise InvalidRequest(f"{where}.{i}.type: system messages hold text only")
                parts.append(v.string(b.get("text"), f"{where}.{i}.text"))
            text = "\n\n".join(parts)
        else:
            raise InvalidRequest(f"{where}: expected a string or a list of blocks")
        self.out.append({"role": "system", "content": text})

    def user_message(self, content: object, where: str) -> None:
        if isinstance(content, str):
            self.out.append({"role": "user", "content": content})
            return
        if not isinstance(content, list):
            raise InvalidRequest(f"{where}: expected a string or a list of blocks")
        texts: list[str] = []
        images: list[str] = []
        for i, block in enumerate(content):
            w = f"{where}.{i}"
            b = v.obj(block, w)
            kind = b.get("type")
            if kind == "text":
                texts.append(v.string(b.get("text"), f"{w}.text"))
            elif kind == "image":
                images.append(_image_url(b, w))
            elif kind == "tool_result":
                call_id = v.string(b.get("tool_use_id"), f"{w}.tool_use_id", allow_empty=False)
                result = _tool_result_content(b.get("content"), f"{w}.content", images)
                if b.get("is_error") is True:
                    result = f"Error: {result}"
                self.out.append(
                    {
                        "role": "tool",
                        "content": result,
                        "tool_call_id": call_id,
                        "name": self.tool_names.get(call_id, ""),
                    }
                )
            elif kind == "document":
                texts.append(_document_text(b, w))
            elif kind == "search_result":
                texts.append(_tool_result_content(b.get("content"), f"{w}.content", images))
            elif kind not in IGNORED_BLOCKS:
                raise InvalidRequest(f"{w}.type: unsupported content block type {kind!r}")
        if texts or images:
            msg: Message = {"role": "user", "content": "\n\n".join(texts)}
            if images:
                msg["images"] = images
            self.out.append(msg)

    def assistant_message(self, content: object, where: str) -> None:
        if isinstance(content, str):
            self.out.append({"role": "assistant", "content": content})
            return
        if not isinstance(content, list):
            raise InvalidRequest(f"{where}: expected a string or a list of blocks")
        texts: list[str] = []
        calls: list[dict[str, str]] = []
        for i, block in enumerate(content):
            w = f"{where}.{i}"
            b = v.obj(block, w)
            kind = b.get("type")
            if kind == "text":
                texts.append(v.string(b.get("text"), f"{w}.text"))
            elif kind == "tool_use":
                call_id = v.string(b.get("id"), f"{w}.id", allow_empty=False)
                name = v.string(b.get("name"), f"{w}.name", allow_empty=False)
                args = v.obj(b.get("input", {}), f"{w}.input")
                self.tool_names[call_id] = name
                calls.append({"id": call_id, "name": name, "arguments": v.dumps(args).decode()})
            elif kind not in IGNORED_BLOCKS:
                raise InvalidRequest(f"{w}.type: unsupported content block type {kind!r}")
        msg: Message = {"role": "assistant", "content": "".join(texts)}
        if calls:
            msg["tool_calls"] = calls
        self.out.append(msg)


def _tools(value: object) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest("tools: expected a list")
    tools: list[dict[str, Any]] = []
    for i, tool in enumerate(value):
        t = v.obj(tool, f"tools.{i}")
        schema = t.get("input_schema")
        if schema is None and t.get("type") not in (None, "custom"):
            continue  # a server tool (web_search_...): nothing a local model can run
        name = v.string(t.get("name"), f"tools.{i}.name", allow_empty=False)
        fn: dict[str, Any] = {
            "name": name,
            "parameters": v.obj(schema, f"tools.{i}.input_schema"),
        }
        desc = t.get("description")
        if desc is not None:
            fn["description"] = v.string(desc, f"tools.{i}.description")
        tools.append({"type": "function", "function": fn})
    return tools


def _tool_choice(value: object) -> str | dict[str, str] | None:
    if value is None:
        return None
    c = v.obj(value, "tool_choice")
    kind = c.get("type")
    if kind == "auto":
        return "auto"
    if kind == "any":
        return "required"
    if kind == "none":
        return "none"
    if kind == "tool":
        return {"name": v.string(c.get("name"), "tool_choice.name", allow_empty=False)}
    raise InvalidRequest("tool_choice.type: expected 'auto', 'any', 'tool' or 'none'")


def parse(body: dict[str, Any], *, count_only: bool = False) -> ChatRequest:
    """Validate and translate a Messages API body (or a count_tokens body)."""
    model = v.string(body.get("model"), "model", allow_empty=False)
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list):
        raise InvalidRequest("messages: Field required (a list of messages)")
    if not raw_messages:
        raise InvalidRequest("messages: at least one message is required")
    max_tokens = v.opt_int(body, "max_tokens", 1)
    if max_tokens is None and not count_only:
        raise InvalidRequest("max_tokens: Field required")

    tr = _Translator()
    system = _system_text(body.get("system"))
    if system:
        tr.out.append({"role": "system", "content": system})
    for i, raw in enumerate(raw_messages):
        m = v.obj(raw, f"messages.{i}")
        role = m.get("role")
        content = m.get("content")
        where = f"messages.{i}.content"
        if content is None:
            raise InvalidRequest(f"{where}: Field required")
        if role == "user":
            tr.user_message(content, where)
        elif role == "assistant":
            tr.assistant_message(content, where)
        elif role == "system":
            tr.system_message(content, where)
        else:
            raise InvalidRequest(f"messages.{i}.role: expected 'user' or 'assistant', got {role!r}")

    tools = _tools(body.get("tools"))
    choice = _tool_choice(body.get("tool_choice"))
    if choice == "none":
        tools, choice = [], None
    top_k = v.opt_int(body, "top_k", 0)
    return ChatRequest(
        model=model,
        messages=tr.out,
        tools=tools,
        tool_choice=choice if tools else None,
        max_tokens=max_tokens,
        temperature=v.opt_number(body, "temperature", 0.0, 2.0),
        top_p=v.opt_number(body, "top_p", 0.0, 1.0),
        top_k=top_k or None,
        stop=v.stop_list(body.get("stop_sequences"), "stop_sequences"),
        stream=v.opt_bool(body, "stream"),
    )
