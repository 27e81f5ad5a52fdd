"""HTTP plumbing shared by the route modules: reading bodies, cache directives, SSE streaming."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any, Protocol

import orjson
from aiohttp import web

from vastllm.proxy import errors
from vastllm.proxy.neutral import ChatRequest, Event
from vastllm.proxy.service import ChatService, Execution, RawExecution

JSON = "application/json"


async def read_json(request: web.Request, max_bytes: int) -> dict[str, Any]:
    """The request body as a JSON object, or a 400/413 in the caller's error shape."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise errors.RequestTooLarge(
            f"request body is {request.content_length} bytes; the limit is {max_bytes}"
        )
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as e:
        raise errors.RequestTooLarge(f"request body exceeds the limit of {max_bytes} bytes") from e
    if not raw:
        raise errors.InvalidRequest("request body is empty: expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise errors.InvalidRequest(f"request body is not valid JSON: {e}") from e
    if not isinstance(body, dict):
        raise errors.InvalidRequest("request body must be a JSON object")
    return body


def cache_directives(headers: Mapping[str, str]) -> tuple[bool, bool]:
    """(no_cache, no_store) from ``Cache-Control`` / ``Pragma``."""
    value = headers.get("cache-control", "")
    pragma = headers.get("pragma", "")
    if not value and not pragma:
        return False, False
    tokens = {t.strip().lower() for t in value.split(",")}
    no_cache = "no-cache" in tokens or "no-cache" in pragma.lower()
    return no_cache, "no-store" in tokens


def json_response(
    body: bytes, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(body=body, status=status, content_type=JSON, headers=headers)


class Encoder(Protocol):
    def start(self) -> bytes: ...
    def feed(self, ev: Event) -> bytes: ...
    @staticmethod
    def error(err: errors.ProxyError) -> bytes: ...


async def _relay(
    request: web.Request,
    frames: AsyncGenerator[bytes, None],
    ex: Execution | RawExecution,
    on_error: Callable[[errors.ProxyError], bytes],
) -> web.StreamResponse:
    """Send SSE frames as they come. Errors before the first frame become a plain HTTP error
    (answered as JSON by the middleware); later ones the frame ``on_error`` makes. The headers
    are made after the first frame, when the upstream that answers is known."""
    async with contextlib.aclosing(frames) as it:
        first = await anext(it)
        resp = web.StreamResponse(headers=answer_headers(ex))
        resp.content_type = "text/event-stream"
        resp.headers["Cache-Control"] = "no-cache"
        await resp.prepare(request)
        try:
            await resp.write(first)
            try:
                async for frame in it:
                    await resp.write(frame)
            except errors.ProxyError as e:
                await resp.write(on_error(e))
            await resp.write_eof()
        except ConnectionError:
            pass  # the client went away; closing `frames` releases the upstream call
        return resp


async def stream(
    request: web.Request, execution: Execution, encoder: Encoder
) -> web.StreamResponse:
    """Send an execution as SSE in the encoder's dialect."""

    async def frames() -> AsyncGenerator[bytes, None]:
        async with contextlib.aclosing(execution.events()) as events:
            head = encoder.start()
            async for ev in events:
                yield head + encoder.feed(ev)
                head = b""

    return await _relay(request, frames(), execution, encoder.error)


async def execute(service: ChatService, request: web.Request, req: ChatRequest) -> Execution:
    """Run a parsed chat request with the client's cache directives."""
    if req.target is None:
        service.prepare(req)
    no_cache, no_store = cache_directives(request.headers)
    return await service.execute(req, no_cache=no_cache, no_store=no_store)


def answer_headers(ex: Execution | RawExecution) -> dict[str, str]:
    """The headers every chat answer carries (made once its first part is in):
    ``x-vastllm-cache``, ``x-vastllm-coalesced`` for a joined flight, and ``x-vastllm-upstream``
    (with ``x-vastllm-paid: 1`` for a paid API) naming the upstream that answered."""
    headers = {"x-vastllm-cache": ex.status}
    if ex.coalesced:
        headers["x-vastllm-coalesced"] = "1"
    served = ex.served
    if served is not None and served.upstream:
        headers["x-vastllm-upstream"] = served.upstream
        if served.paid:
            headers["x-vastllm-paid"] = "1"
    return headers


async def send_raw(
    request: web.Request,
    ex: RawExecution,
    stream: bool,
    stream_error: Callable[[errors.ProxyError], bytes],
) -> web.StreamResponse:
    """A pass-through answer as the upstream sent it: SSE relayed chunk by chunk, or the JSON
    body whole. Errors before the first byte become a plain HTTP error; later ones an SSE error
    event (``stream_error``)."""
    if not stream:
        body = b"".join([chunk async for chunk in ex.chunks()])
        return json_response(body, headers=answer_headers(ex))
    return await _relay(request, ex.chunks(), ex, stream_error)
