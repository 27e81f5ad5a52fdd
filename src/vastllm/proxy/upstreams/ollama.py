"""Ollama's native ``/api/chat`` (NDJSON stream or one JSON object).

``options.num_ctx`` is always the model's context length (a constant per model: a changing
``num_ctx`` makes Ollama reload the model), so long prompts are not silently cut to Ollama's
default window; ``num_predict`` is ``max_tokens`` clamped to what that window leaves.
"""

from __future__ import annotations

import os
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
from vastllm.proxy.settings import UpstreamSettings
from vastllm.proxy.upstreams.base import Failover, UpstreamClient


def _b64(url: str) -> str:
    if not url.startswith("data:"):
        raise errors.InvalidRequest("image URLs are not supported by Ollama: send base64 images")
    _, _, data = url.partition(",")
    return data


def _args(arguments: str) -> Any:
    try:
        return orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {}


def ollama_messages(messages: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if len(m) == 2:  # plain {"role", "content"}: already Ollama's shape
            out.append(m)
            continue
        o: dict[str, Any] = {"role": m["role"], "content": m["content"]}
        if "images" in m:
            o["images"] = [_b64(u) for u in m["images"]]
        if "tool_calls" in m:
            o["tool_calls"] = [
                {"function": {"name": c["name"], "arguments": _args(c["arguments"])}}
                for c in m["tool_calls"]
            ]
        if m["role"] == "tool" and m.get("name"):
            o["tool_name"] = m["name"]
        out.append(o)
    return out


def build_payload(req: ChatRequest, model: str, keep_alive: str | None) -> dict[str, Any]:
    assert req.target is not None  # noqa: S101 - the service resolves before sending
    options: dict[str, Any] = {"num_ctx": req.target.context_length, "num_predict": req.num_predict}
    if req.temperature is not None:
        options["temperature"] = req.temperature
    if req.top_p is not None:
        options["top_p"] = req.top_p
    if req.top_k is not None:
        options["top_k"] = req.top_k
    if req.seed is not None:
        options["seed"] = req.seed
    if req.stop:
        options["stop"] = req.stop
    payload: dict[str, Any] = {
        "model": model,
        "messages": ollama_messages(req.messages),
        "stream": req.stream,
        "options": options,
    }
    if req.tools:
        payload["tools"] = req.tools
    if keep_alive is not None:
        payload["keep_alive"] = keep_alive
    return payload


def _tool_calls(message: dict[str, Any]) -> list[ToolCall]:
    calls = []
    for tc in message.get("tool_calls") or ():
        fn = tc.get("function") or {}
        args = fn.get("arguments", {})
        calls.append(
            ToolCall(
                id=tc.get("id") or "toolu_" + os.urandom(12).hex(),
                name=str(fn.get("name", "")),
                arguments=args if isinstance(args, str) else orjson.dumps(args).decode(),
            )
        )
    return calls


def _finish(obj: dict[str, Any], saw_tool: bool) -> Finish:
    reason: FinishReason = "length" if obj.get("done_reason") == "length" else "stop"
    if saw_tool and reason == "stop":
        reason = "tool_calls"
    return Finish(reason, int(obj.get("prompt_eval_count") or 0), int(obj.get("eval_count") or 0))


class OllamaClient(UpstreamClient):
    kind = "ollama"

    def __init__(
        self, cfg: UpstreamSettings, session: aiohttp.ClientSession, keep_alive: str | None = None
    ) -> None:
        super().__init__(cfg, session)
        self._keep_alive = keep_alive

    async def health(self) -> bool:
        return await self._get_ok("/api/version")

    async def running(self, seconds: float) -> object:
        """``GET /api/ps`` (the loaded models), decoded; :class:`errors.UpstreamFailed` if not."""
        return await self._get_json("/api/ps", seconds)

    async def events(self, req: ChatRequest) -> AsyncGenerator[Event, None]:
        resp = await self._post(
            "/api/chat", build_payload(req, self.model_for(req), self._keep_alive)
        )
        if not req.stream:
            obj = self._decode(await self._read_all(resp))
            message = obj.get("message") or {}
            if message.get("content"):
                yield TextDelta(message["content"])
            calls = _tool_calls(message)
            for call in calls:
                yield call
            yield _finish(obj, bool(calls))
            return
        saw_tool = False
        async for line in self._lines(resp):
            obj = self._decode(line)
            message = obj.get("message") or {}
            content = message.get("content")
            if content:
                yield TextDelta(content)
            if message.get("tool_calls"):
                for call in _tool_calls(message):
                    saw_tool = True
                    yield call
            if obj.get("done"):
                yield _finish(obj, saw_tool)
                return
        raise Failover(
            errors.UpstreamFailed(f"upstream {self.name} ended its stream without 'done'"),
            unreachable=False,
        )
