"""What every upstream client shares: the pooled POST, error mapping, line splitting.

Clients raise :class:`Failover` for failures another upstream may not have (connection refused,
5xx, a broken stream); the router retries elsewhere when no event was passed on yet, and
otherwise surfaces the wrapped :class:`ProxyError`.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import aiohttp
import orjson

from vastllm.proxy import errors, validate
from vastllm.proxy.anthropic import passthrough
from vastllm.proxy.anthropic.passthrough import RawRequest
from vastllm.proxy.neutral import ChatRequest, Event
from vastllm.proxy.settings import UpstreamSettings


class Failover(Exception):
    """A failure worth retrying on another upstream (if nothing was sent yet)."""

    def __init__(self, error: errors.ProxyError, *, unreachable: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.unreachable = unreachable


_STALE = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


def _error_message(raw: bytes, status: int) -> str:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace").strip()[:500] or f"HTTP {status}"
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, str):
            return err
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
    return raw.decode("utf-8", "replace")[:500]


class UpstreamClient(ABC):
    """One upstream server, spoken to through the process-wide aiohttp session."""

    kind: str = ""
    speaks_messages_by_default = False  # Anthropic's Messages API at /v1/messages

    def __init__(self, cfg: UpstreamSettings, session: aiohttp.ClientSession) -> None:
        self.name = cfg.name
        self.base_url = cfg.base_url
        self._session = session
        self._headers = {"Content-Type": "application/json"}
        if cfg.api_key is not None:
            key = cfg.api_key.get_secret_value()
            auth = cfg.auth_header
            if auth in ("bearer", "both"):
                self._headers["Authorization"] = "Bearer " + key
            if auth in ("x-api-key", "both"):
                self._headers["x-api-key"] = key
        self.speaks_messages = (
            self.speaks_messages_by_default if cfg.messages is None else cfg.messages
        )
        self.context_length = cfg.context_length
        self.model = cfg.model
        self.paid = cfg.paid
        self.priority = cfg.priority
        self.max_outstanding = cfg.max_outstanding

    def model_for(self, req: ChatRequest) -> str:
        """The model name this upstream is asked for: its own ``model``, else the resolved one."""
        if self.model is not None:
            return self.model
        assert req.target is not None  # noqa: S101 - the service resolves before sending
        return req.target.name

    def _v1(self, tail: str) -> str:
        """``tail`` (``/v1/...``) under a base URL given with or without ``/v1``."""
        return tail if not self.base_url.endswith("/v1") else tail.removeprefix("/v1")

    async def send_raw(self, raw: RawRequest) -> AsyncGenerator[bytes, None]:
        """A pass-through request's answer, chunk by chunk as it arrives (servers of the
        Messages API only: ``speaks_messages``)."""
        body = raw.body if self.model is None else passthrough.renamed(raw.body, self.model)
        resp = await self._post_bytes(self._v1(raw.path), body, dict(raw.headers))
        async with contextlib.aclosing(self._chunks(resp)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def count_tokens(self, raw: RawRequest) -> bytes | None:
        """The server's own ``count_tokens`` answer, or None when it has no such endpoint."""
        try:
            resp = await self._post_bytes(self._v1(raw.path), raw.body, dict(raw.headers))
        except errors.NotFound:
            return None
        return await self._read_all(resp)

    @abstractmethod
    def events(self, req: ChatRequest) -> AsyncGenerator[Event, None]:
        """The answer as neutral events (streamed upstream iff ``req.stream``)."""

    @abstractmethod
    async def health(self) -> bool:
        """True when the server answers its cheapest endpoint."""

    async def _get_ok(self, path: str) -> bool:
        try:
            async with self._session.get(
                self.base_url + path,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=5),
            ) as resp:
                await resp.read()
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def _get_json(self, path: str, seconds: float) -> object:
        """``GET path`` as decoded JSON within ``seconds``, else :class:`UpstreamFailed`."""
        where = f"upstream {self.name}: GET {path}"
        try:
            async with self._session.get(
                self.base_url + path,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=seconds),
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except aiohttp.ClientError as e:
            raise errors.UpstreamFailed(f"{where} failed: {e}") from e
        except TimeoutError as e:
            raise errors.UpstreamFailed(f"{where} did not answer within {seconds:g}s") from e
        if status != 200:
            raise errors.UpstreamFailed(f"{where} answered HTTP {status}")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise errors.UpstreamFailed(f"{where} sent invalid JSON") from e

    async def _post(self, path: str, payload: dict[str, Any]) -> aiohttp.ClientResponse:
        body = validate.dumps(payload)  # the client's tools go in: too deep is its 400
        return await self._post_bytes(path, body, {})

    async def _post_bytes(
        self, path: str, body: bytes, extra_headers: dict[str, str]
    ) -> aiohttp.ClientResponse:
        """POST ``body``; a status >= 400 raises its :class:`ProxyError` (5xx as Failover)."""
        url = self.base_url + path
        headers = {**self._headers, **extra_headers} if extra_headers else self._headers
        for attempt in (0, 1):
            try:
                resp = await self._session.post(url, data=body, headers=headers)
                break
            except aiohttp.ClientConnectorError as e:
                raise Failover(
                    errors.Unavailable(f"upstream {self.name} is unreachable: {e.os_error}"),
                    unreachable=True,
                ) from e
            except aiohttp.ConnectionTimeoutError as e:
                raise Failover(
                    errors.Unavailable(f"upstream {self.name} did not accept a connection"),
                    unreachable=True,
                ) from e
            except _STALE as e:
                # a pooled keep-alive connection the server had closed: one fresh try
                if attempt:
                    raise Failover(
                        errors.Unavailable(f"upstream {self.name} dropped the connection"),
                        unreachable=True,
                    ) from e
            except TimeoutError as e:
                raise errors.UpstreamFailed(f"upstream {self.name} timed out") from e
        if resp.status >= 400:
            async with resp:
                raw = await resp.read()
            err = errors.for_status(
                resp.status, f"upstream {self.name}: {_error_message(raw, resp.status)}"
            )
            if resp.status >= 500 or resp.status == 429:
                raise Failover(err, unreachable=False)
            raise err
        return resp

    @contextlib.contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        """A body that breaks off fails over; one that stops coming is a timeout."""
        try:
            yield
        except (aiohttp.ClientPayloadError, *_STALE) as e:
            raise Failover(
                errors.UpstreamFailed(f"upstream {self.name} broke off its {what}: {e}"),
                unreachable=False,
            ) from e
        except TimeoutError as e:
            raise errors.UpstreamFailed(f"upstream {self.name} timed out") from e

    async def _read_all(self, resp: aiohttp.ClientResponse) -> bytes:
        with self._reading("answer"):
            async with resp:
                return await resp.read()

    async def _chunks(self, resp: aiohttp.ClientResponse) -> AsyncGenerator[bytes, None]:
        """Yield the body as it arrives, unchanged (streams, and the pass-through path)."""
        try:
            with self._reading("stream"):
                async with resp:
                    async for chunk in resp.content.iter_any():
                        if chunk:
                            yield chunk
        except asyncio.CancelledError:
            resp.close()
            raise

    async def _lines(self, resp: aiohttp.ClientResponse) -> AsyncGenerator[bytes, None]:
        """Yield the body's non-empty lines; no line-length limit (tool calls can be long)."""
        buf = b""
        # aclosing: when this generator is closed early, the response is released at once
        async with contextlib.aclosing(self._chunks(resp)) as chunks:
            async for chunk in chunks:
                buf += chunk
                if b"\n" not in chunk:
                    continue
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield line
        if buf.strip():
            yield buf

    def _decode(self, raw: bytes) -> dict[str, Any]:
        """One JSON object of an upstream answer; invalid JSON or an error object fails over."""
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise Failover(
                errors.UpstreamFailed(f"upstream {self.name} sent invalid JSON"), unreachable=False
            ) from e
        if not isinstance(obj, dict):
            raise Failover(
                errors.UpstreamFailed(f"upstream {self.name} sent an unexpected answer"),
                unreachable=False,
            )
        if "error" in obj:
            err = obj["error"]
            msg = err.get("message") if isinstance(err, dict) else err
            raise Failover(errors.UpstreamFailed(f"upstream {self.name}: {msg}"), unreachable=False)
        return obj
