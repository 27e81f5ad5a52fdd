"""OpenAI routes (``/v1/chat/completions``, ``/v1/models``) and the seed's ``/chat`` and
``/generate``. Errors on these paths use OpenAI's shape."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from vastllm.proxy import http_io
from vastllm.proxy import validate as v
from vastllm.proxy.errors import InvalidRequest
from vastllm.proxy.neutral import ChatRequest
from vastllm.proxy.openai import parse, render
from vastllm.proxy.state import state_of

PATHS = frozenset({"/v1/chat/completions", "/v1/models", "/chat", "/generate"})


async def chat_completions(request: web.Request) -> web.StreamResponse:
    st = state_of(request)
    body = await http_io.read_json(request, st.settings.max_body_bytes)
    req = parse.parse(body)
    ex = await http_io.execute(st.service, request, req)
    model = req.model or (req.target.name if req.target else "")
    if req.stream:
        encoder = render.StreamEncoder(model, parse.include_usage(body))
        return await http_io.stream(request, ex, encoder)
    result = await ex.final()
    return http_io.json_response(
        render.render_completion(result, model), headers=http_io.answer_headers(ex)
    )


async def models(request: web.Request) -> web.Response:
    """Both SDKs parse this: OpenAI's ``object``/``owned_by`` and Anthropic's ``type``/
    ``display_name``/``created_at`` are all present."""
    st = state_of(request)
    now = int(time.time())
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    data = [
        {
            "id": name,
            "object": "model",
            "created": now,
            "owned_by": "vastllm",
            "type": "model",
            "display_name": name,
            "created_at": stamp,
        }
        for name in st.catalog.listed()
    ]
    body = {
        "object": "list",
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
    return http_io.json_response(orjson.dumps(body))


async def seed_chat(request: web.Request) -> web.Response:
    """``{messages, max_tokens?, temperature?}`` -> one OpenAI chat completion."""
    st = state_of(request)
    body = await http_io.read_json(request, st.settings.max_body_bytes)
    allowed: dict[str, Any] = {
        k: body[k] for k in ("messages", "max_tokens", "temperature", "model") if k in body
    }
    req = parse.parse(allowed)
    ex = await http_io.execute(st.service, request, req)
    result = await ex.final()
    model = req.target.name if req.target else req.model
    return http_io.json_response(
        render.render_completion(result, model), headers=http_io.answer_headers(ex)
    )


async def seed_generate(request: web.Request) -> web.Response:
    """``{prompt, max_tokens, temperature, stop}`` -> ``{text, usage, model}``."""
    st = state_of(request)
    body = await http_io.read_json(request, st.settings.max_body_bytes)
    prompt = v.string(body.get("prompt"), "prompt")
    model = body.get("model", "")
    if not isinstance(model, str):
        raise InvalidRequest("model: expected a string")
    req = ChatRequest(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=v.opt_int(body, "max_tokens", 1),
        temperature=v.opt_number(body, "temperature", 0.0, 2.0),
        stop=v.stop_list(body.get("stop"), "stop"),
    )
    ex = await http_io.execute(st.service, request, req)
    result = await ex.final()
    out: dict[str, Any] = {
        "text": result.text,
        "usage": render.usage_json(result.input_tokens, result.output_tokens),
        "model": req.target.name if req.target else model,
        "finish_reason": result.finish,
    }
    return http_io.json_response(orjson.dumps(out), headers=http_io.answer_headers(ex))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/chat", seed_chat)
    app.router.add_post("/generate", seed_generate)
