"""Smoke tests of a served model, through an Ollama or OpenAI-compatible chat client.

1. ``check_answers``: a short chat answers within the timeout.
2. ``check_tool_call``: one ``get_weather`` tool; the answer must be a structured tool call with
   JSON-object arguments. A call printed into the text (raw JSON, ``<tool_call>`` tags) is
   reported as such: the model "knows" the tool but the engine's template does not parse it.
3. ``check_context``: a prompt of ``fill`` x the context length (estimated at 4 characters per
   token) must be counted in full by the server (``prompt_eval_count`` / ``usage.prompt_tokens``
   at least ``1 - tolerance`` of the estimate and below the context size). A server that cuts
   the prompt to a smaller context shows a smaller count. With Ollama the request carries
   ``options.num_ctx`` = the candidate's context, otherwise Ollama would use its default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vastllm.cascade.clients import ChatClient, ChatReply
from vastllm.cascade.errors import EngineError, HttpStatusError

CHARS_PER_TOKEN = 4
FILLER = "The quick brown fox jumps over the lazy dog while the cat watches the river. "

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    },
}
TOOL_PROMPT = (
    "You must call a tool to answer. What is the weather like in Paris right now? "
    "Use get_weather Paris"
)


@dataclass(frozen=True)
class SmokeConfig:
    answer_timeout: float = 120.0
    tool_timeout: float = 120.0
    context_timeout: float = 600.0
    context_fill: float = 0.7
    context_tolerance: float = 0.25
    check_tools: bool = True
    check_context: bool = True


@dataclass(frozen=True)
class SmokeResult:
    reason: str | None  # None: all checks passed
    checks: tuple[str, ...] = ()  # names of the checks that passed

    @property
    def ok(self) -> bool:
        return self.reason is None


# Ollama's 404 for a model it does not have: "model 'NAME' not found" (older servers add ", try
# pulling it first"; its OpenAI routes quote the name with double quotes)
_MODEL_NOT_FOUND = re.compile(r"""model ['"](?P<name>[^'"]+)['"] not found""")


def chat_error_reason(exc: EngineError) -> str:
    """A failed chat in words. A 404 naming the model means it is not pulled on this host, not
    that the registry lacks it: it is never read as a pull error."""
    if isinstance(exc, HttpStatusError) and exc.status == 404:
        found = _MODEL_NOT_FOUND.search(exc.detail)
        if found:
            return (
                f"the model {found['name']} is not pulled on this host (HTTP 404: {exc.detail}): "
                "pull it, or let recovery pull it (vastllm recover)"
            )
    return str(exc)


def _call(fn: Callable[[], ChatReply], what: str) -> ChatReply:
    try:
        return fn()
    except EngineError as exc:
        raise SmokeFailure(f"{what}: {chat_error_reason(exc)}") from exc


class SmokeFailure(Exception):
    pass


def check_answers(client: ChatClient, model: str, timeout: float, num_ctx: int | None) -> None:
    reply = _call(
        lambda: client.chat(
            model,
            [{"role": "user", "content": "Reply with the single word: ready"}],
            num_ctx=num_ctx,
            max_tokens=16,
            timeout=timeout,
        ),
        "chat failed",
    )
    if not reply.content.strip() and not reply.tool_calls:
        raise SmokeFailure("chat failed: the model answered with empty text")


_TEXT_CALL = re.compile(r"<tool_call>|<\|tool_call|\[TOOL_CALLS\]|\"(?:name|function)\"\s*:")


def tool_call_in_text(text: str, tool: str) -> bool:
    """True when ``text`` looks like a tool call printed as text instead of a structured one."""
    return tool in text and bool(_TEXT_CALL.search(text))


def check_tool_call(client: ChatClient, model: str, timeout: float, num_ctx: int | None) -> None:
    reply = _call(
        lambda: client.chat(
            model,
            [{"role": "user", "content": TOOL_PROMPT}],
            tools=[WEATHER_TOOL],
            num_ctx=num_ctx,
            max_tokens=256,
            timeout=timeout,
        ),
        "tool-call probe failed",
    )
    name = WEATHER_TOOL["function"]["name"]
    if not reply.tool_calls:
        snippet = " ".join(reply.content.split())[:160]
        if tool_call_in_text(reply.content, name):
            raise SmokeFailure(
                "tool-call probe failed: the model printed the tool call as text instead of a "
                f"structured tool_calls entry: {snippet!r}"
            )
        raise SmokeFailure(f"tool-call probe failed: no tool call, the model said {snippet!r}")
    call = reply.tool_calls[0]
    if call.name != name:
        raise SmokeFailure(f"tool-call probe failed: called {call.name!r}, expected {name!r}")
    arguments = call.arguments
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError as exc:
            raise SmokeFailure(
                f"tool-call probe failed: arguments are not valid JSON: {call.arguments!r:.160}"
            ) from exc
    if not isinstance(arguments, dict):
        raise SmokeFailure(
            f"tool-call probe failed: arguments are not a JSON object: {arguments!r:.160}"
        )
    if not isinstance(arguments.get("city"), str):
        raise SmokeFailure(
            f"tool-call probe failed: the required string argument 'city' is missing: "
            f"{json.dumps(arguments)[:160]}"
        )


def context_prompt(context_length: int, fill: float) -> str:
    target_chars = int(context_length * fill) * CHARS_PER_TOKEN
    head = "Read the following text. It is only there to fill the context.\n"
    tail = "\nNow reply with the single word: done"
    body_chars = max(0, target_chars - len(head) - len(tail))
    body = (FILLER * (body_chars // len(FILLER) + 1))[:body_chars]
    return head + body + tail


def check_context(
    client: ChatClient,
    model: str,
    context_length: int,
    num_ctx: int | None,
    config: SmokeConfig,
) -> None:
    prompt = context_prompt(context_length, config.context_fill)
    expected = len(prompt) // CHARS_PER_TOKEN
    reply = _call(
        lambda: client.chat(
            model,
            [{"role": "user", "content": prompt}],
            num_ctx=num_ctx,
            max_tokens=8,
            timeout=config.context_timeout,
        ),
        f"long-prompt probe (~{expected} tokens) failed",
    )
    counted = reply.prompt_tokens
    if counted is None:
        raise SmokeFailure(
            "long-prompt probe failed: the server reported no prompt token count "
            "(prompt_eval_count / usage.prompt_tokens)"
        )
    low = int(expected * (1 - config.context_tolerance))
    limit = num_ctx if num_ctx is not None else context_length
    if counted < low or counted >= limit:
        where = f"num_ctx {num_ctx}" if num_ctx is not None else "the server's own setting"
        raise SmokeFailure(
            f"prompt truncated: sent ~{expected} tokens for a {context_length}-token context, "
            f"the server counted {counted} (context from {where})"
        )


def run_smoke(
    client: ChatClient,
    model: str,
    context_length: int,
    *,
    num_ctx: int | None,
    config: SmokeConfig | None = None,
) -> SmokeResult:
    """All checks in order; the first failure is the reason."""
    config = config or SmokeConfig()
    passed: list[str] = []
    try:
        check_answers(client, model, config.answer_timeout, num_ctx)
        passed.append("answers")
        if config.check_tools:
            check_tool_call(client, model, config.tool_timeout, num_ctx)
            passed.append("tool-call")
        if config.check_context:
            check_context(client, model, context_length, num_ctx, config)
            passed.append("context")
    except SmokeFailure as exc:
        return SmokeResult(f"smoke test: {exc}", tuple(passed))
    return SmokeResult(None, tuple(passed))
