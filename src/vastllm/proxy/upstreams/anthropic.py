"""Any server of Anthropic's Messages API (vLLM, llama.cpp's ``llama-server``, SGLang, Ollama
from 0.14, Anthropic's own API): upstream kind ``anthropic``.

Two ways through it:

* pass-through (``send_raw`` of :mod:`.base`, which an Ollama upstream from 0.14 shares):
  ``/v1/messages`` from a client goes up as the client sent it (model renamed, ``max_tokens``
  clamped, see :mod:`vastllm.proxy.anthropic.passthrough`) and the answer's bytes come back
  unchanged:
  thinking blocks, ``input_json_delta`` pieces and the server's own ids and usage included;
* translated (:meth:`AnthropicClient.events`): a neutral request (the OpenAI routes, the seed's
  ``/chat``) becomes a Messages request, and the answer (JSON or SSE) becomes neutral events.
  Thinking is not part of the neutral model and is dropped there.

Headers: ``anthropic-version`` (the client's on pass-through, else :data:`ANTHROPIC_VERSION`),
``anthropic-beta`` when the client sent it, and the upstream's key as ``x-api-key`` (Anthropic's
API, which refuses an API key sent as Bearer) for a paid upstream, else as both ``x-api-key``
and ``Authorization: Bearer`` (vLLM's ``--api-key``); the upstream's ``auth`` setting overrides.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import orjson

from vastllm.proxy import errors, validate
from vastllm.proxy.neutral import (
    ChatRequest,
    Event,
    Finish,
    FinishReason,
    Message,
    TextDelta,
    ToolCall,
)
from vastllm.proxy.upstreams.base import Failover, UpstreamClient

ANTHROPIC_VERSION = "2023-06-01"
MESSAGES = "/v1/messages"
STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "refusal": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
}


def _image_block(url: str) -> dict[str, Any]:
    if url.startswith("data:") and ";base64," in url:
        media, _, data = url[len("data:") :].partition(";base64,")
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _user_blocks(m: Message) -> str | list[dict[str, Any]]:
    if "images" not in m:
        return str(m["content"])
    blocks = [_image_block(u) for u in m["images"]]
    if m["content"]:
        blocks.append({"type": "text", "text": m["content"]})
    return blocks


def _tool_input(arguments: str) -> dict[str, Any]:
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"value": value}


def anthropic_messages(messages: list[Message]) -> tuple[str, list[dict[str, Any]]]:
    """Neutral messages -> (system text, Messages API ``messages``): system messages join the
    system text, tool results of one turn become one user message of ``tool_result`` blocks."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m["role"]
        if role == "system":
            if m["content"]:
                system.append(str(m["content"]))
            continue
        if role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": m.get("tool_call_id", ""),
                "content": str(m["content"]),
            }
            last = out[-1] if out else None
            if (
                last is not None
                and last["role"] == "user"
                and isinstance(last["content"], list)
                and all(b.get("type") == "tool_result" for b in last["content"])
            ):
                last["content"].append(block)
                continue
            out.append({"role": "user", "content": [block]})
            continue
        if role == "assistant":
            calls = m.get("tool_calls") or []
            if not calls:
                out.append({"role": "assistant", "content": str(m["content"])})
                continue
            blocks: list[dict[str, Any]] = []
            if m["content"]:
                blocks.append({"type": "text", "text": m["content"]})
            blocks.extend(
                {
                    "type": "tool_use",
                    "id": c["id"],
                    "name": c["name"],
                    "input": _tool_input(c["arguments"]),
                }
                for c in calls
            )
            out.append({"role": "assistant", "content": blocks})
            continue
        out.append({"role": "user", "content": _user_blocks(m)})
    return "\n\n".join(system), out


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for t in tools:
        fn = t.get("function") or {}
        tool = {
            "name": fn.get("name", ""),
            "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
        }
        if fn.get("description"):
            tool["description"] = fn["description"]
        out.append(tool)
    return out


def _tool_choice(choice: str | dict[str, str]) -> dict[str, str]:
    if isinstance(choice, dict):
        return {"type": "tool", "name": choice["name"]}
    return {"type": {"required": "any"}.get(choice, choice)}


def build_payload(req: ChatRequest, model: str) -> dict[str, Any]:
    """A Messages API request for a neutral one (the translated way)."""
    system, messages = anthropic_messages(req.messages)
    payload: dict[str, Any] = {
        "model": model,
        "max_tokens": req.num_predict,
        "messages": messages,
        "stream": req.stream,
    }
    if system:
        payload["system"] = system
    for key in ("temperature", "top_p", "top_k"):
        value = getattr(req, key)
        if value is not None:
            payload[key] = value
    if req.stop:
        payload["stop_sequences"] = req.stop
    if req.tools:
        payload["tools"] = _tools(req.tools)
        if req.tool_choice is not None:
            payload["tool_choice"] = _tool_choice(req.tool_choice)
    return payload


def _usage(obj: object) -> tuple[int, int]:
    usage = obj if isinstance(obj, dict) else {}
    return int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)


class AnthropicClient(UpstreamClient):
    kind = "anthropic"
    speaks_messages_by_default = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._headers["anthropic-version"] = ANTHROPIC_VERSION

    async def health(self) -> bool:
        return await self._get_ok(self._v1("/v1/models"))

    async def events(self, req: ChatRequest) -> AsyncGenerator[Event, None]:
        body = validate.dumps(build_payload(req, self.model_for(req)))
        resp = await self._post_bytes(self._v1(MESSAGES), body, {})
        if not req.stream:
            obj = self._decode(await self._read_all(resp))
            for block in obj.get("content") or ():
                if not isinstance(block, dict):
                    continue
                if block.get("type") == "text" and block.get("text"):
                    yield TextDelta(str(block["text"]))
                elif block.get("type") == "tool_use":
                    yield ToolCall(
                        str(block.get("id") or "toolu_0"),
                        str(block.get("name") or ""),
                        orjson.dumps(block.get("input") or {}).decode(),
                    )
            reason = STOP_REASONS.get(str(obj.get("stop_reason")), "stop")
            yield Finish(reason, *_usage(obj.get("usage")))
            return
        async for ev in self._stream_events(resp):
            yield ev

    async def _stream_events(self, resp: Any) -> AsyncGenerator[Event, None]:
        """Messages SSE -> neutral events: text as it comes, a tool call once its block ends."""
        input_tokens = output_tokens = 0
        reason: FinishReason | None = None
        blocks: dict[int, list[str]] = {}  # index -> [type, id, name, partial json]
        async for line in self._lines(resp):
            if not line.startswith(b"data:"):
                continue
            obj = self._decode(line[5:].strip())
            kind = obj.get("type")
            if kind == "message_start":
                message = obj.get("message") or {}
                input_tokens, output_tokens = _usage(message.get("usage"))
            elif kind == "content_block_start":
                block = obj.get("content_block") or {}
                blocks[int(obj.get("index") or 0)] = [
                    str(block.get("type") or ""),
                    str(block.get("id") or ""),
                    str(block.get("name") or ""),
                    "",
                ]
                if block.get("type") == "text" and block.get("text"):
                    yield TextDelta(str(block["text"]))
            elif kind == "content_block_delta":
                delta = obj.get("delta") or {}
                slot = blocks.get(int(obj.get("index") or 0))
                if delta.get("type") == "text_delta" and delta.get("text"):
                    yield TextDelta(str(delta["text"]))
                elif delta.get("type") == "input_json_delta" and slot is not None:
                    slot[3] += str(delta.get("partial_json") or "")
            elif kind == "content_block_stop":
                slot = blocks.pop(int(obj.get("index") or 0), None)
                if slot is not None and slot[0] == "tool_use":
                    yield ToolCall(slot[1] or "toolu_0", slot[2], slot[3] or "{}")
            elif kind == "message_delta":
                delta = obj.get("delta") or {}
                if delta.get("stop_reason"):
                    reason = STOP_REASONS.get(str(delta["stop_reason"]), "stop")
                usage = obj.get("usage") or {}
                output_tokens = int(usage.get("output_tokens") or output_tokens)
                input_tokens = int(usage.get("input_tokens") or input_tokens)
            elif kind == "message_stop":
                break
        if reason is None:
            raise Failover(
                errors.UpstreamFailed(f"upstream {self.name} ended its stream without a stop"),
                unreachable=False,
            )
        yield Finish(reason, input_tokens, output_tokens)
