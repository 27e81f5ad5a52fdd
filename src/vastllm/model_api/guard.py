"""Checks every request passes before FastAPI sees it: Host, Origin, media type, body size.

Why: the model API listens on loopback, reached by the proxy and through the SSH tunnel on the
workstation's loopback, where any web page the workstation's browser opens can reach it too. It
has no API keys. A POST with ``Content-Type: text/plain`` (or none) is a CORS "simple request"
that a page sends without a preflight, and with DNS rebinding (``attacker.example`` made to
resolve to 127.0.0.1) the page can read the answers as well. So, in OpenAI's error shape:

- ``Host`` must be a loopback name (``localhost``, ``127.0.0.1``, ``[::1]``, any port), the
  listen address, or an ``allowed_hosts`` entry; else **421 Misdirected Request**.
- ``Origin`` (browsers send it; the SDKs, the proxy and curl do not) must be in
  ``cors_origins``, empty by default; else **403**. A listed origin gets its preflight
  ``OPTIONS`` answered and ``Access-Control-Allow-Origin`` on the answers.
- A POST to a route must say ``Content-Type: application/json``; else **415**. (FastAPI would
  parse a body without the header as JSON.)
- A request body may hold at most ``max_body_bytes``; else **413**. A POST body is read here,
  counted as it arrives, and handed on whole, so FastAPI never holds more than the limit.

A plain ASGI middleware (not ``BaseHTTPMiddleware``): no extra task per request, streaming and
the ``http.disconnect`` a generation watches for pass through untouched.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vastllm.config_file import HostAllowList
from vastllm.model_api.errors import error_body
from vastllm.model_api.settings import ModelApiSettings

JSON = b"application/json"
ALLOW_METHODS = "GET, HEAD, POST, OPTIONS"
PREFLIGHT_MAX_AGE = "600"
EXPOSE_HEADERS = b"retry-after"


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:80] + "...")


def is_json(content_type: bytes | None) -> bool:
    if content_type == JSON:
        return True
    if content_type is None:
        return False
    return content_type.partition(b";")[0].strip().lower() == JSON


def _refusal(status: int, message: str, code: str) -> JSONResponse:
    type_ = "permission_error" if status == 403 else "invalid_request_error"
    return JSONResponse(error_body(message, type_, None, code), status_code=status)


class Guard:
    """ASGI middleware doing the checks of the module docstring for ``app``."""

    def __init__(self, app: ASGIApp, settings: ModelApiSettings, post_paths: Iterable[str]) -> None:
        self.app = app
        self.hosts = HostAllowList(settings.allowed_hosts, settings.host)
        self.origins = frozenset(o.encode("latin-1") for o in settings.cors_origins)
        self.post_paths = frozenset(post_paths)
        self.max_body = settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = origin = content_type = length = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
            elif name == b"origin":
                origin = value
            elif name == b"content-type":
                content_type = value
            elif name == b"content-length":
                length = value
        answer = self._check(scope, host, origin, content_type, length)
        if answer is not None and answer.status_code == 204:  # a preflight: headers are set
            await answer(scope, receive, send)
            return
        if origin is not None and origin in self.origins:  # errors below carry them too
            send = _with_cors(send, origin)
        if answer is not None:
            await answer(scope, receive, send)
            return
        if scope["method"] == "POST":
            body = await self._read_body(receive)
            if body is None:
                await self._too_large()(scope, receive, send)
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)

    def _check(
        self,
        scope: Scope,
        host: bytes | None,
        origin: bytes | None,
        content_type: bytes | None,
        length: bytes | None,
    ) -> Response | None:
        if not self.hosts.allows(None if host is None else host.decode("latin-1")):
            shown = _shown((host or b"").decode("latin-1"))
            return _refusal(
                421,
                f"this server does not answer for Host {shown}: use 127.0.0.1 or localhost, or "
                "add the name to the model API's allowed_hosts setting",
                "host_not_allowed",
            )
        method = scope["method"]
        if origin is not None:
            if origin not in self.origins:
                return _refusal(
                    403,
                    f"requests from the web origin {_shown(origin.decode('latin-1'))} are not "
                    "allowed: list it in the model API's cors_origins setting",
                    "origin_not_allowed",
                )
            if method == "OPTIONS":
                preflight = self._preflight(scope, origin)
                if preflight is not None:
                    return preflight
        if method == "POST" and scope["path"] in self.post_paths and not is_json(content_type):
            return _refusal(
                415,
                "the request body must be JSON sent with 'Content-Type: application/json'",
                "unsupported_media_type",
            )
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return self._too_large()
        return None

    def _preflight(self, scope: Scope, origin: bytes) -> Response | None:
        wanted = None
        asked = False
        for name, value in scope["headers"]:
            if name == b"access-control-request-method":
                asked = True
            elif name == b"access-control-request-headers":
                wanted = value
        if not asked:
            return None  # an OPTIONS that is not a preflight: the routes answer (405)
        headers = {
            "Access-Control-Allow-Origin": origin.decode("latin-1"),
            "Access-Control-Allow-Methods": ALLOW_METHODS,
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
            "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        }
        if wanted:  # the origin is trusted: whatever headers it wants to send
            headers["Access-Control-Allow-Headers"] = wanted.decode("latin-1")
        return Response(status_code=204, headers=headers)

    def _too_large(self) -> JSONResponse:
        return _refusal(
            413,
            f"request body is larger than {self.max_body} bytes (the max_body_bytes setting)",
            "request_too_large",
        )

    async def _read_body(self, receive: Receive) -> list[Message] | None:
        """The request's messages up to its last body part, or None past ``max_body``."""
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":  # the client went away: pass that on
                return messages
            size += len(message.get("body", b""))
            if size > self.max_body:
                return None
            if not message.get("more_body", False):
                return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that gives the body read already as one message, then goes on live."""
    pending: list[Message] = []
    if messages and messages[-1]["type"] == "http.request":
        body = b"".join(m.get("body", b"") for m in messages)
        pending.append({"type": "http.request", "body": body, "more_body": False})
    else:
        pending.extend(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


def _with_cors(send: Send, origin: bytes) -> Send:
    """A ``send`` that adds the CORS headers of a listed origin to the response's start."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers: list[Any] = list(message.get("headers", []))
            headers += [
                (b"access-control-allow-origin", origin),
                (b"access-control-expose-headers", EXPOSE_HEADERS),
                (b"vary", b"Origin"),
            ]
            message = {**message, "headers": headers}
        await send(message)

    return sending
