"""Chat clients the smoke tests talk through: Ollama's ``/api/chat`` and any OpenAI-compatible
``/v1/chat/completions`` (Ollama's own, vastllm's model API). Non-streaming requests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from vastllm.cascade.errors import EngineError
from vastllm.cascade.http import request_json


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: object  # Ollama: a JSON object; OpenAI: a string that should hold JSON


@dataclass(frozen=True)
class ChatReply:
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    prompt_tokens: int | None = None  # prompt_eval_count / usage.prompt_tokens
    finish_reason: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def _tool_calls(message: dict[str, Any]) -> tuple[ToolCall, ...]:
    """The ``tool_calls`` of a reply message (both APIs nest them as ``{"function": {...}}``)."""
    calls = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            calls.append(ToolCall(str(function.get("name")), function.get("arguments")))
    return tuple(calls)


class ChatClient(Protocol):
    base_url: str
    kind: str  # "ollama" or "openai"

    def chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        num_ctx: int | None = None,
        max_tokens: int | None = None,
        timeout: float = 60.0,
    ) -> ChatReply: ...


class OllamaChat:
    """``POST /api/chat`` with ``stream: false``; ``num_ctx`` goes in ``options``."""

    kind = "ollama"

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        num_ctx: int | None = None,
        max_tokens: int | None = None,
        timeout: float = 60.0,
    ) -> ChatReply:
        options: dict[str, Any] = {"temperature": 0}
        if num_ctx is not None:
            options["num_ctx"] = num_ctx
        if max_tokens is not None:
            options["num_predict"] = max_tokens
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "stream": False,
            "options": options,
        }
        if tools:
            body["tools"] = tools
        data = request_json("POST", self.base_url + "/api/chat", body, timeout)
        if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
            raise EngineError("/api/chat answered without a message")
        message = data["message"]
        count = data.get("prompt_eval_count")
        return ChatReply(
            content=str(message.get("content") or ""),
            tool_calls=_tool_calls(message),
            prompt_tokens=count if isinstance(count, int) else None,
            finish_reason=data.get("done_reason"),
            raw=data,
        )


class OpenAIChat:
    """``POST /v1/chat/completions`` (non-streaming). The server picks the context size."""

    kind = "openai"

    def __init__(self, base_url: str, api_key: str | None = None) -> None:
        base = base_url.rstrip("/")
        self.base_url = base[: -len("/v1")] if base.endswith("/v1") else base
        self._api_key = api_key

    def chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        num_ctx: int | None = None,  # not part of the OpenAI API: ignored
        max_tokens: int | None = None,
        timeout: float = 60.0,
    ) -> ChatReply:
        body: dict[str, Any] = {"model": model, "messages": messages, "temperature": 0}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if tools:
            body["tools"] = tools
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else None
        data = request_json("POST", self.base_url + "/v1/chat/completions", body, timeout, headers)
        choices = data.get("choices") if isinstance(data, dict) else None
        if not choices or not isinstance(choices[0], dict):
            raise EngineError("/v1/chat/completions answered without choices")
        message = choices[0].get("message") or {}
        usage = data.get("usage") or {}
        count = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return ChatReply(
            content=str(message.get("content") or ""),
            tool_calls=_tool_calls(message),
            prompt_tokens=count if isinstance(count, int) else None,
            finish_reason=choices[0].get("finish_reason"),
            raw=data,
        )
