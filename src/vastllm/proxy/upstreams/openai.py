"""Any OpenAI-compatible ``/v1/chat/completions`` server (the project's model API, vLLM,
llama.cpp, Ollama's compatibility layer). Streamed tool-call fragments are gathered per index and
passed on whole when the stream ends."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import orjson

from vastllm.proxy import errors
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

SEED_KEYS = ("gpu", "vram_used", "vram_total")
HEALTH_TIMEOUT = 5.0


def seed_figures(obj: object) -> dict[str, str | None] | None:
    """``gpu``, ``vram_used``, ``vram_total`` of an upstream's ``/health`` answer (the model API
    and the first seed send them), None when it names none of them."""
    if not isinstance(obj, dict):
        return None
    figures = {k: v if isinstance(v := obj.get(k), str) else None for k in SEED_KEYS}
    return figures if any(figures.values()) else None


def openai_messages(messages: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if len(m) == 2:
            out.append(m)
            continue
        role = m["role"]
        o: dict[str, Any] = {"role": role, "content": m["content"]}
        if "images" in m:
            parts: list[dict[str, Any]] = []
            if m["content"]:
                parts.append({"type": "text", "text": m["content"]})
            parts.extend({"type": "image_url", "image_url": {"url": u}} for u in m["images"])
            o["content"] = parts
        if "tool_calls" in m:
            o["tool_calls"] = [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in m["tool_calls"]
            ]
        if role == "tool":
            o["tool_call_id"] = m.get("tool_call_id", "")
        out.append(o)
    return out


def build_payload(req: ChatRequest, model: str) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": model,
        "messages": openai_messages(req.messages),
        "max_tokens": req.num_predict,
        "stream": req.stream,
    }
    if req.stream:
        payload["stream_options"] = {"include_usage": True}
    for key in ("temperature", "top_p", "top_k", "seed"):
        value = getattr(req, key)
        if value is not None:
            payload[key] = value
    if req.stop:
        payload["stop"] = req.stop
    if req.tools:
        payload["tools"] = req.tools
        choice = req.tool_choice
        if isinstance(choice, dict):
            payload["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
        elif choice is not None:
            payload["tool_choice"] = choice
    return payload


def _reason(value: object) -> FinishReason:
    if value == "length":
        return "length"
    if value in ("tool_calls", "function_call"):
        return "tool_calls"
    return "stop"


def _usage(obj: dict[str, Any]) -> tuple[int, int]:
    usage = obj.get("usage") or {}
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


class OpenAIClient(UpstreamClient):
    kind = "openai"
    # the GPU figures of the server's own /health, read with each health check (None: unknown)
    gpu: dict[str, str | None] | None = None

    def _path(self, tail: str) -> str:
        return tail if not self.base_url.endswith("/v1") else tail.removeprefix("/v1")

    async def health(self) -> bool:
        ok = await self._get_ok(self._path("/v1/models"))
        self.gpu = await self._gpu_figures() if ok else None
        return ok

    async def _gpu_figures(self) -> dict[str, str | None] | None:
        """:func:`seed_figures` of ``GET /health`` at the server's root, whatever its status
        (the model API answers 503 with the same JSON while loading); None on any failure."""
        url = self.base_url.removesuffix("/v1") + "/health"
        try:
            async with self._session.get(
                url, headers=self._headers, timeout=aiohttp.ClientTimeout(total=HEALTH_TIMEOUT)
            ) as resp:
                raw = await resp.read()
            return seed_figures(orjson.loads(raw))
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
            return None

    async def events(self, req: ChatRequest) -> AsyncGenerator[Event, None]:
        resp = await self._post(
            self._path("/v1/chat/completions"), build_payload(req, self.model_for(req))
        )
        if not req.stream:
            obj = self._decode(await self._read_all(resp))
            choices = obj.get("choices") or [{}]
            message = choices[0].get("message") or {}
            if message.get("content"):
                yield TextDelta(message["content"])
            calls = message.get("tool_calls") or []
            for c in calls:
                fn = c.get("function") or {}
                yield ToolCall(
                    c.get("id") or "call_0", fn.get("name", ""), fn.get("arguments") or "{}"
                )
            yield Finish(_reason(choices[0].get("finish_reason")), *_usage(obj))
            return
        reason: FinishReason | None = None
        tokens = (0, 0)
        pending: dict[int, list[str]] = {}  # index -> [id, name, arguments]
        async for line in self._lines(resp):
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            obj = self._decode(data)
            if obj.get("usage"):
                tokens = _usage(obj)
            for choice in obj.get("choices") or ():
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    yield TextDelta(delta["content"])
                for tc in delta.get("tool_calls") or ():
                    slot = pending.setdefault(int(tc.get("index", len(pending))), ["", "", ""])
                    fn = tc.get("function") or {}
                    slot[0] = tc.get("id") or slot[0]
                    slot[1] += fn.get("name") or ""
                    slot[2] += fn.get("arguments") or ""
                if choice.get("finish_reason"):
                    reason = _reason(choice["finish_reason"])
        if reason is None:
            raise Failover(
                errors.UpstreamFailed(f"upstream {self.name} ended its stream without a finish"),
                unreachable=False,
            )
        for i in sorted(pending):
            call_id, name, args = pending[i]
            yield ToolCall(call_id or f"call_{i}", name, args or "{}")
        yield Finish(reason, *tokens)
