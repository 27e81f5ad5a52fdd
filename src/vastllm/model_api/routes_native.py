"""The server's own generation routes: ``POST /generate`` (raw prompt, no chat template) and
``POST /chat`` (messages; the answer has the chat-completion shape)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request

from vastllm.model_api.completion import chat_completion, run_to_end, usage_of
from vastllm.model_api.deps import RuntimeDep, ServiceDep
from vastllm.model_api.errors import APIError
from vastllm.model_api.schemas import ChatCompletion, ChatRequest, GenerateRequest, GenerateResponse

if TYPE_CHECKING:
    from vastllm.model_api.engine import Engine

router = APIRouter()


@router.post("/generate")
async def generate(
    body: GenerateRequest, request: Request, runtime: RuntimeDep, service: ServiceDep
) -> GenerateResponse:
    def encode(engine: Engine) -> list[int]:
        return engine.encode_prompt(body.prompt)

    result = await run_to_end(
        request, lambda: service.start(encode, body, body.max_tokens, "prompt")
    )
    if result.finish_reason == "cancelled":  # run_to_end answers 503 for these already
        raise APIError(503, "generation cancelled", type_="service_unavailable")
    return GenerateResponse(
        text=result.text,
        model=runtime.model_id,
        usage=usage_of(result),
        finish_reason=result.finish_reason,
    )


@router.post("/chat")
async def chat(
    body: ChatRequest, request: Request, runtime: RuntimeDep, service: ServiceDep
) -> ChatCompletion:
    messages = [m.for_template() for m in body.messages]

    def encode(engine: Engine) -> list[int]:
        return engine.encode_chat(messages)

    result = await run_to_end(
        request, lambda: service.start(encode, body, body.max_tokens, "messages")
    )
    return chat_completion(runtime.model_id, result)
