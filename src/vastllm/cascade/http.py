"""Tiny JSON-over-HTTP helpers on urllib (the host needs no HTTP library)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from vastllm.cascade.errors import EngineError, HttpStatusError


def _error_text(raw: bytes) -> str:
    try:
        body = json.loads(raw.decode("utf-8"))
    except ValueError:
        return raw.decode("utf-8", "replace").strip()[:300]
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            return str(err.get("message") or err)
        if err:
            return str(err)
    return json.dumps(body)[:300]


def open_url(
    method: str,
    url: str,
    body: object | None = None,
    timeout: float = 30.0,
    headers: dict[str, str] | None = None,
) -> Any:
    """Open ``url``; HTTP errors, refused connections and timeouts become EngineError."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if not url.startswith(("http://", "https://")):
        raise EngineError(f"not an http(s) URL: {url}")
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)  # noqa: S310
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - checked above
    except urllib.error.HTTPError as exc:
        detail = _error_text(exc.read())
        raise HttpStatusError(
            f"HTTP {exc.code} from {method} {url}: {detail}", exc.code, detail
        ) from exc
    except TimeoutError as exc:
        raise EngineError(f"no answer from {method} {url} within {timeout:g} s") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise EngineError(f"no answer from {method} {url} within {timeout:g} s") from exc
        raise EngineError(f"cannot reach {url}: {exc.reason}") from exc
    except OSError as exc:
        raise EngineError(f"cannot reach {url}: {exc}") from exc


def request_json(
    method: str,
    url: str,
    body: object | None = None,
    timeout: float = 30.0,
    headers: dict[str, str] | None = None,
) -> Any:
    response = open_url(method, url, body, timeout, headers)
    try:
        with response:
            raw = response.read()
    except TimeoutError as exc:
        raise EngineError(f"no answer from {method} {url} within {timeout:g} s") from exc
    except OSError as exc:
        raise EngineError(f"connection to {url} broke: {exc}") from exc
    try:
        return json.loads(raw.decode("utf-8")) if raw else {}
    except ValueError as exc:
        raise EngineError(f"{method} {url} answered something that is not JSON") from exc


def ndjson_lines(
    method: str, url: str, body: object, timeout: float = 300.0
) -> Iterator[dict[str, Any]]:
    """One dict per NDJSON line; ``timeout`` applies to each read (a stalled stream fails)."""
    response = open_url(method, url, body, timeout)
    with response:
        while True:
            try:
                raw = response.readline()
            except TimeoutError as exc:
                raise EngineError(f"{url}: stream stalled for {timeout:g} s") from exc
            except OSError as exc:
                raise EngineError(f"{url}: stream broke: {exc}") from exc
            if not raw:
                return
            line = raw.strip()
            if not line:
                continue
            try:
                obj = json.loads(line.decode("utf-8"))
            except ValueError as exc:
                raise EngineError(f"{url}: not an NDJSON line: {line[:200]!r}") from exc
            if isinstance(obj, dict):
                yield obj
