"""Checks every request passes before authentication: Host, Origin, and the body's media type.

Why: the proxy listens on loopback and is reached through the SSH tunnel on the workstation's
loopback, where any web page the workstation's browser opens can reach it too. A POST with
``Content-Type: text/plain`` (or none) is a CORS "simple request" that a page sends without a
preflight, and with DNS rebinding (``attacker.example`` made to resolve to 127.0.0.1) the page
can read the answers as well. API keys are off by default, so nothing else would stop it:

- ``Host`` must be a loopback name (``localhost``, ``127.0.0.1``, ``[::1]``, any port), the
  address the proxy listens on, or an ``allowed_hosts`` entry; else **421 Misdirected Request**
  (this server does not answer for that name). A rebinding page sends its own name.
- ``Origin`` (sent by browsers on every cross-origin request and every POST; never by the SDKs,
  Claude Code or curl) must be listed in ``cors_origins``, empty by default; else **403**. A
  listed origin gets its preflight ``OPTIONS`` answered and ``Access-Control-Allow-Origin`` on
  the answers, for a browser front end.
- A POST to a route must say ``Content-Type: application/json``; else **415**. A page can send
  that type cross-origin only after a preflight, which only a listed origin passes.

Errors take the route's shape (see :mod:`vastllm.proxy.errors`). The checks cost a few dict
lookups and string operations per request; nothing is compiled or allocated per request, and the
CORS response hook is installed only when ``cors_origins`` is set.
"""

from __future__ import annotations

from aiohttp import web

from vastllm.config_file import HostAllowList
from vastllm.proxy import errors
from vastllm.proxy.settings import ProxySettings

JSON = "application/json"
PREFLIGHT_MAX_AGE = "600"
ALLOW_METHODS = "GET, HEAD, POST, OPTIONS"
# answer headers a browser front end may read
EXPOSE_HEADERS = (
    "x-vastllm-cache, x-vastllm-coalesced, x-vastllm-upstream, x-vastllm-paid, retry-after"
)


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:80] + "...")


def is_json(content_type: str | None) -> bool:
    """``application/json``, with parameters (``; charset=utf-8``) or in any case."""
    if content_type == JSON:  # what the SDKs send: the one comparison on the hot path
        return True
    if content_type is None:
        return False
    return content_type.partition(";")[0].strip().lower() == JSON


class Guard:
    """The checks of the module docstring, built once from the settings."""

    __slots__ = ("_hosts", "_origins")

    def __init__(self, settings: ProxySettings) -> None:
        self._hosts = HostAllowList(settings.allowed_hosts, settings.host)
        self._origins = frozenset(settings.cors_origins)

    @property
    def cors(self) -> bool:
        return bool(self._origins)

    def check(self, request: web.Request) -> web.Response | None:
        """Raise the refusal, return the answer to a CORS preflight, or None to go on."""
        headers = request.headers
        host = headers.get("Host")
        if not self._hosts.allows(host):
            raise errors.MisdirectedRequest(
                f"this server does not answer for Host {_shown(host or '')}: use "
                "127.0.0.1 or localhost, or add the name to the proxy's allowed_hosts setting"
            )
        origin = headers.get("Origin")
        if origin is not None:
            if origin not in self._origins:
                raise errors.Forbidden(
                    f"requests from the web origin {_shown(origin)} are not allowed: "
                    "list it in the proxy's cors_origins setting"
                )
            if request.method == "OPTIONS" and "Access-Control-Request-Method" in headers:
                return self._preflight(origin, headers.get("Access-Control-Request-Headers"))
        if (
            request.method == "POST"
            and request.match_info.http_exception is None
            and not is_json(headers.get("Content-Type"))
        ):
            raise errors.UnsupportedMediaType(
                "the request body must be JSON sent with 'Content-Type: application/json'"
            )
        return None

    def _preflight(self, origin: str, wanted_headers: str | None) -> web.Response:
        headers = {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": ALLOW_METHODS,
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
            "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        }
        if wanted_headers:  # the origin is trusted: whatever headers it wants to send
            headers["Access-Control-Allow-Headers"] = wanted_headers
        return web.Response(status=204, headers=headers)

    async def add_cors_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        """``on_response_prepare`` hook (streams too): CORS headers for a listed origin."""
        origin = request.headers.get("Origin")
        if origin is not None and origin in self._origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
            response.headers.add("Vary", "Origin")
