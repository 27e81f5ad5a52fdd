"""Anthropic routes: ``POST /v1/messages`` (``?beta=true`` too) and
``POST /v1/messages/count_tokens``.

A model served by an upstream that speaks Anthropic's Messages API is answered by pass-through
(:mod:`vastllm.proxy.anthropic.passthrough`); any other by translation to the neutral model."""

from __future__ import annotations

import orjson
from aiohttp import web

from vastllm.proxy import errors, http_io, tokens
from vastllm.proxy.anthropic import parse, passthrough, render
from vastllm.proxy.state import state_of


async def messages(request: web.Request) -> web.StreamResponse:
    st = state_of(request)
    body = await http_io.read_json(request, st.settings.max_body_bytes)
    req = parse.parse(body)
    st.service.prepare(req)
    room = st.router.passthrough_room(req.target, req.prompt_tokens)
    if room is not None:
        raw = passthrough.build(req, body, request.headers, count_only=False, room=room)
        no_cache, no_store = http_io.cache_directives(request.headers)
        rex = await st.service.execute_raw(req, raw, no_cache=no_cache, no_store=no_store)
        return await http_io.send_raw(request, rex, raw.stream, render.StreamEncoder.error)
    ex = await http_io.execute(st.service, request, req)
    if req.stream:
        encoder = render.StreamEncoder(req.model, req.prompt_tokens)
        return await http_io.stream(request, ex, encoder)
    result = await ex.final()
    return http_io.json_response(
        render.render_message(result, req.model), headers=http_io.answer_headers(ex)
    )


async def count_tokens(request: web.Request) -> web.Response:
    """The Anthropic-kind upstream's own count when it has one, else ``{"input_tokens": N}``
    from the estimate documented in :mod:`vastllm.proxy.tokens`."""
    st = state_of(request)
    body = await http_io.read_json(request, st.settings.max_body_bytes)
    req = parse.parse(body, count_only=True)
    req.target = target = st.catalog.resolve(req.model)
    if st.router.passthrough_room(target, 0) is not None:
        raw = passthrough.build(req, body, request.headers, count_only=True)
        try:
            counted = await st.router.count_tokens(target, raw)
        except errors.InvalidRequest:
            counted = None  # an upstream that cannot count this request: the estimate
        if counted is not None:
            return http_io.json_response(counted)
    return http_io.json_response(orjson.dumps({"input_tokens": tokens.estimate(req)}))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
