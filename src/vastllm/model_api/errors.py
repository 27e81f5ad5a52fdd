"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

Every failure the server answers, including malformed JSON, validation errors, unknown routes and
unexpected exceptions, goes through :func:`install_error_handlers`, so clients (the official SDKs
and our proxy) always get this body, never FastAPI's ``{"detail": ...}`` nor a bare 500.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class APIError(Exception):
    """An error answered to the client as-is (status, OpenAI body, extra headers)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_body(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def _loc(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts)


def validation_message(errors: Sequence[Any]) -> tuple[str, str | None]:
    """Turn pydantic/FastAPI validation errors into one readable message and a ``param``."""
    msgs: list[str] = []
    first_param: str | None = None
    for err in errors[:5]:
        kind = err.get("type", "")
        where = _loc(err.get("loc", ()))
        if kind == "json_invalid":
            detail = (err.get("ctx") or {}).get("error", "")
            msgs.append(f"request body is not valid JSON: {detail}".rstrip(": "))
            continue
        if kind == "missing" and where == "":
            msgs.append("request body is required (a JSON object)")
            continue
        if first_param is None and where:
            first_param = where
        msg = str(err.get("msg", "invalid value"))
        msgs.append(f"{where}: {msg}" if where else msg)
    if len(errors) > 5:
        msgs.append(f"... and {len(errors) - 5} more")
    return "; ".join(msgs) or "invalid request", first_param


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = validation_message(list(exc.errors()))
        return JSONResponse(error_body(message, "invalid_request_error", param), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return JSONResponse(
            error_body(message, "invalid_request_error", None, code),
            status_code=exc.status_code,
            headers=dict(exc.headers or {}),
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
        return JSONResponse(
            error_body("internal server error", "server_error", None, "internal_error"),
            status_code=500,
        )
