"""Shared steps of the generation routes: run a prepared request to its end, and shape the
OpenAI chat-completion answer (whole or as server-sent events)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Request

from vastllm.model_api.disconnect import unless_disconnected
from vastllm.model_api.errors import APIError, error_body
from vastllm.model_api.generation import GenerationResult
from vastllm.model_api.schemas import AssistantMessage, ChatCompletion, Choice, Usage
from vastllm.model_api.service import Job


def shutting_down() -> APIError:
    return APIError(
        503, "the server is shutting down", type_="service_unavailable", code="shutting_down"
    )


async def run_to_end(request: Request, start: Callable[[], Awaitable[Job]]) -> GenerationResult:
    """Start (admission, tokenizing, a slot: see ``GenerationService.start``), generate, collect;
    a client that disconnects cancels it all."""

    async def work() -> GenerationResult:
        job = await start()
        try:
            return await job.wait()
        finally:
            job.cancel()  # a no-op once finished; stops the worker when we are cancelled

    result = await unless_disconnected(request, work())
    if result.finish_reason == "cancelled":
        raise shutting_down()
    return result


def usage_of(result: GenerationResult) -> Usage:
    return Usage(
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        total_tokens=result.prompt_tokens + result.completion_tokens,
    )


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def chat_completion(model: str, result: GenerationResult) -> ChatCompletion:
    if result.finish_reason == "cancelled":
        raise shutting_down()
    return ChatCompletion(
        id=completion_id(),
        created=int(time.time()),
        model=model,
        choices=[
            Choice(
                message=AssistantMessage(content=result.text), finish_reason=result.finish_reason
            )
        ],
        usage=usage_of(result),
    )


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


async def chat_completion_events(job: Job, model: str, include_usage: bool) -> AsyncIterator[str]:
    """``chat.completion.chunk`` events: role, content pieces, finish_reason, optional usage,
    then ``data: [DONE]``. A failure mid-stream becomes an ``{"error": ...}`` event."""
    cid, created = completion_id(), int(time.time())
    extra: dict[str, Any] = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _sse(
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [choice],
                **extra,
            }
        )

    yield chunk({"role": "assistant", "content": ""})
    try:
        async for piece in job.pieces():
            yield chunk({"content": piece})
    except Exception as e:  # the worker failed: tell the client in-band, the status is sent
        yield _sse(error_body(f"generation failed: {type(e).__name__}", "server_error"))
        yield "data: [DONE]\n\n"
        return
    result = job.finished()
    if result.finish_reason == "cancelled":
        yield _sse(shutting_down().body())
        yield "data: [DONE]\n\n"
        return
    yield chunk({}, result.finish_reason)
    if include_usage:
        yield _sse(
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage_of(result).model_dump(),
            }
        )
    yield "data: [DONE]\n\n"
