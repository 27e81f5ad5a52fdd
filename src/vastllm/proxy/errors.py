"""Errors the proxy answers with: one exception tree, each class with its HTTP status and its
error type in each dialect.

Every failure a client can see is a :class:`ProxyError`; the HTTP layer picks the body shape by
route, and each dialect renders it (``anthropic.render.error_body``:
``{"type":"error","error":{...}}``; ``openai.render.error_body``:
``{"error":{"message","type","param","code"}}``)::

    ProxyError (500 api_error)
    +-- InvalidRequest (400)        +-- RateLimited (429)
    +-- AuthenticationFailed (401)  +-- UpstreamFailed (500)
    +-- Forbidden (403)             +-- Unavailable (503)
    +-- NotFound (404)              +-- Overloaded (529), see below
    +-- MethodNotAllowed (405)      +-- RequestTooLarge (413)
    +-- MisdirectedRequest (421)    +-- UnsupportedMediaType (415)
                                    +-- Overloaded
                                        +-- Waking (529; 503 on OpenAI's routes)

An error may carry ``retry_after`` (seconds): the answer then has a ``retry-after`` header, which
both SDKs honour when they retry; ``openai_status``, when set, is its status on OpenAI's routes.
"""

from __future__ import annotations


class ProxyError(Exception):
    """Base class: an HTTP status, an Anthropic error type and an OpenAI error type."""

    status: int = 500
    anthropic_type: str = "api_error"
    openai_type: str = "api_error"
    openai_status: int | None = None  # the status on OpenAI's routes when not ``status``

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after  # seconds: the answer's retry-after header
        if status is not None:
            self.status = status

    def status_for_openai(self) -> int:
        return self.openai_status or self.status


class InvalidRequest(ProxyError):
    status = 400
    anthropic_type = "invalid_request_error"
    openai_type = "invalid_request_error"


class AuthenticationFailed(ProxyError):
    status = 401
    anthropic_type = "authentication_error"
    openai_type = "authentication_error"


class Forbidden(ProxyError):
    """A browser origin not in ``cors_origins`` (403)."""

    status = 403
    anthropic_type = "permission_error"
    openai_type = "permission_error"


class NotFound(ProxyError):
    status = 404
    anthropic_type = "not_found_error"
    openai_type = "not_found_error"


class MethodNotAllowed(ProxyError):
    status = 405
    anthropic_type = "invalid_request_error"
    openai_type = "invalid_request_error"


class RequestTooLarge(ProxyError):
    status = 413
    anthropic_type = "request_too_large"
    openai_type = "invalid_request_error"


class MisdirectedRequest(ProxyError):
    """A Host header this proxy does not answer for (421; see :mod:`vastllm.proxy.guard`)."""

    status = 421
    anthropic_type = "invalid_request_error"
    openai_type = "invalid_request_error"


class UnsupportedMediaType(ProxyError):
    """A POST body that is not ``Content-Type: application/json`` (415)."""

    status = 415
    anthropic_type = "invalid_request_error"
    openai_type = "invalid_request_error"


class RateLimited(ProxyError):
    status = 429
    anthropic_type = "rate_limit_error"
    openai_type = "rate_limit_error"


class UpstreamFailed(ProxyError):
    """The upstream answered with an error the proxy cannot route around."""

    status = 500
    anthropic_type = "api_error"
    openai_type = "api_error"


class Unavailable(ProxyError):
    """No upstream could be reached (503)."""

    status = 503
    anthropic_type = "overloaded_error"
    openai_type = "overloaded_error"


class Overloaded(ProxyError):
    """The proxy's own concurrency limit is reached (529, as Anthropic does)."""

    status = 529
    anthropic_type = "overloaded_error"
    openai_type = "overloaded_error"


class Waking(Overloaded):
    """No upstream came back in ``wake_wait`` seconds while the stopped GPU hosts are woken
    (or their wake failed): 529 ``overloaded_error`` with ``retry-after``, as Anthropic's API
    answers when busy; 503 on OpenAI's routes, OpenAI's own "overloaded" status."""

    openai_status = 503


def for_status(status: int, message: str) -> ProxyError:
    """Map an upstream HTTP status to the matching client-facing error."""
    if status == 404:
        return NotFound(message)
    if status == 413:
        return RequestTooLarge(message)
    if status == 429:
        return RateLimited(message)
    if status in (401, 403):
        # the upstream's credentials are the operator's problem, not the client's
        return UpstreamFailed(f"upstream rejected the proxy's credentials: {message}")
    if 400 <= status < 500:
        return InvalidRequest(message)
    return UpstreamFailed(message)
