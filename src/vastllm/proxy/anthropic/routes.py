"""Anthropic routes: ``POST /v1/messages`` (``?beta=true`` too) and
``POST /v1/messages/count_tokens``."""

from __future__ import annotations

import orjson
from aiohttp import web

from vastllm.proxy import http_io, tokens
from vastllm.proxy.anthropic import parse, render
from vastllm.proxy.state import state_of


async def messages(request: web.Request) -> web.StreamResponse:
    st = state_of(request)
    body = await http_io.read_json(request, st.settings.max_body_bytes)
    req = parse.parse(body)
    ex, headers = await http_io.execute(st.service, request, req)
    if req.stream:
        encoder = render.StreamEncoder(req.model, req.prompt_tokens)
        return await http_io.stream(request, ex, encoder, headers)
    result = await ex.final()
    return http_io.json_response(render.render_message(result, req.model), headers=headers)


async def count_tokens(request: web.Request) -> web.Response:
    """``{"input_tokens": N}`` using the estimate documented in :mod:`vastllm.proxy.tokens`."""
    st = state_of(request)
    body = await http_io.read_json(request, st.settings.max_body_bytes)
    req = parse.parse(body, count_only=True)
    return http_io.json_response(orjson.dumps({"input_tokens": tokens.estimate(req)}))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
