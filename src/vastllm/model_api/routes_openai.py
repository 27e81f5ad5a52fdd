"""OpenAI-compatible routes: ``POST /v1/chat/completions`` and ``GET /v1/models``.

Any ``model`` name is accepted (this server has one model; answers carry its id). ``tools`` are
rendered through the chat template when the template uses them and ignored otherwise; tool
calls are not parsed out of the answer, which comes back as text.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from vastllm.model_api.completion import chat_completion, chat_completion_events, run_to_end
from vastllm.model_api.deps import RuntimeDep, ServiceDep
from vastllm.model_api.disconnect import CancelOnCloseStreamingResponse, unless_disconnected
from vastllm.model_api.errors import APIError, bad_request
from vastllm.model_api.schemas import ChatCompletion, ChatCompletionRequest, ModelCard, ModelList
from vastllm.model_api.service import Job

if TYPE_CHECKING:
    from vastllm.model_api.engine import Engine

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1")
_warned_tools = False


def _warn_tools_ignored() -> None:
    global _warned_tools  # noqa: PLW0603 - log once per process
    if not _warned_tools:
        log.warning("request has tools but the chat template does not use them: ignored")
        _warned_tools = True


@router.post("/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, runtime: RuntimeDep, service: ServiceDep
) -> ChatCompletion | Response:
    if body.n != 1:
        raise bad_request("only n=1 is supported", param="n")
    messages = [m.for_template() for m in body.messages]

    def encode(engine: Engine) -> list[int]:
        if body.tools and not engine.supports_tools:
            _warn_tools_ignored()
        return engine.encode_chat(messages, body.tools)

    def start() -> Coroutine[Any, Any, Job]:
        return service.start(encode, body, body.requested_max_tokens(), "messages")

    if not body.stream:
        return chat_completion(runtime.model_id, await run_to_end(request, start))
    job = await unless_disconnected(request, start())
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return CancelOnCloseStreamingResponse(
        chat_completion_events(job, runtime.model_id, include_usage),
        on_close=job.cancel,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _card(runtime: RuntimeDep) -> ModelCard:
    engine = runtime.engine
    return ModelCard(
        id=runtime.model_id,
        created=runtime.created,
        context_length=engine.context_length if engine else runtime.settings.context_length,
    )


@router.get("/models")
async def list_models(runtime: RuntimeDep) -> ModelList:
    return ModelList(data=[_card(runtime)])


@router.get("/models/{model_id:path}")
async def get_model(model_id: str, runtime: RuntimeDep) -> ModelCard:
    if model_id != runtime.model_id:
        raise APIError(404, f"model {model_id!r} not found", param="model", code="model_not_found")
    return _card(runtime)
