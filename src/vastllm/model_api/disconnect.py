"""Noticing that the HTTP client went away, so its generation can be cancelled.

Starlette does not cancel a handler when its client disconnects (it only stops a streaming
response), so a handler that waits for a slot or for a whole completion races the wait against
the ASGI ``http.disconnect`` message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from fastapi import FastAPI, Request, Response
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

log = logging.getLogger(__name__)
T = TypeVar("T")
# nginx's "client closed request": only our access log ever sees it
CLIENT_CLOSED_REQUEST = 499


class ClientGone(Exception):
    """The client disconnected before the answer was ready."""


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def unless_disconnected(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``; cancel it and raise ClientGone if the client disconnects first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        raise ClientGone
    return task.result()


class CancelOnCloseStreamingResponse(StreamingResponse):
    """A streaming response that runs ``on_close`` however the stream ends (done,
    client gone, server shutting down)."""

    def __init__(self, *args: Any, on_close: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


def install_disconnect_handler(app: FastAPI) -> None:
    @app.exception_handler(ClientGone)
    async def _client_gone(request: Request, _: ClientGone) -> Response:
        log.info("client went away: %s %s", request.method, request.url.path)
        return Response(status_code=CLIENT_CLOSED_REQUEST)
