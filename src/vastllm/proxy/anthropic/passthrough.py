"""``/v1/messages`` passed through to an upstream that speaks Anthropic's Messages API.

When the model a request resolves to is served by an upstream that speaks the Messages API (kind
``anthropic``, e.g. vLLM with ``engine: anthropic`` in the active model file; or an Ollama
upstream from 0.14.0 with ``messages: true``), the proxy does not translate: the request goes
up as the client sent it and the upstream's bytes come back unchanged, so thinking blocks, tool
input streamed piece by piece (``input_json_delta``) and the server's usage reach the client as
the server sent them. The proxy still parses the request first (validation, the context check,
the estimate) and changes four things on the way up:

* ``model``: the upstream's name for it (aliases such as ``claude-*`` -> the active model);
* ``max_tokens``: clamped to the context left, as on the translated path (of the upstream's
  ``context_length`` when it has one: Ollama's ``/v1/messages`` takes no per-request context,
  so a prompt longer than its ``OLLAMA_CONTEXT_LENGTH`` goes the translated way instead);
* the ``x-anthropic-billing-header`` line Claude Code puts first in ``system``: dropped (it
  changes between sessions and would defeat the upstream's prefix cache and this one);
* an empty ``tools`` list (Claude Code's ``--tools ""``): dropped, it means no tools, and vLLM
  0.32 turns it into ``tool_choice: auto``, which it refuses without a tool-call parser.

``anthropic-version`` and ``anthropic-beta`` are forwarded. The cache stores a finished answer's
bytes (a stream only when it reached ``message_stop`` without an ``error`` event), keyed by the
request as sent up; a hit answers the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from vastllm.proxy import validate
from vastllm.proxy.anthropic.parse import strip_billing
from vastllm.proxy.neutral import ChatRequest

FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")
KEY_VERSION = b"anthropic-passthrough:v1\n"


@dataclass(frozen=True, slots=True)
class RawRequest:
    body: bytes  # JSON as it goes up
    headers: tuple[tuple[str, str], ...]  # forwarded anthropic-* headers
    stream: bool
    path: str = "/v1/messages"


def _system(system: object) -> object:
    if isinstance(system, str):
        return strip_billing(system)
    if isinstance(system, list) and system and isinstance(system[0], dict):
        first = system[0]
        if first.get("type") == "text" and isinstance(first.get("text"), str):
            text = strip_billing(first["text"])
            rest = system[1:]
            return ([{**first, "text": text}] if text else []) + rest
    return system


def build(
    req: ChatRequest,
    body: dict[str, Any],
    client_headers: Mapping[str, str],
    *,
    count_only: bool,
    room: int | None = None,
) -> RawRequest:
    """What goes up for ``body`` (already parsed into ``req`` and resolved); ``room``: the
    tokens the upstream's context leaves for the answer, when it is less than the model's."""
    assert req.target is not None  # noqa: S101 - resolved by the caller
    out = dict(body)
    out["model"] = req.target.name
    if not count_only:
        out["max_tokens"] = req.num_predict if room is None else min(req.num_predict, room)
    if "system" in out:
        out["system"] = _system(out["system"])
    if out.get("tools") == []:
        del out["tools"]
    headers = tuple((h, client_headers[h]) for h in FORWARDED_HEADERS if h in client_headers)
    return RawRequest(
        body=validate.dumps(out),
        headers=headers,
        stream=bool(out.get("stream")) and not count_only,
        path="/v1/messages/count_tokens" if count_only else "/v1/messages",
    )


def raw_cache_key(raw: RawRequest) -> str:
    """Hex SHA-256 of the request as sent up, its stream flag and its beta header."""
    h = hashlib.sha256(KEY_VERSION)
    h.update(b"stream\n" if raw.stream else b"json\n")
    h.update(dict(raw.headers).get("anthropic-beta", "").encode() + b"\n")
    h.update(raw.body)
    return h.hexdigest()


def complete_answer(data: bytes, stream: bool) -> bytes | None:
    """``data`` when it is a whole answer worth caching, else None."""
    if stream:
        ok = b"event: message_stop" in data and b"event: error" not in data
        return data if ok else None
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(obj, dict) and obj.get("type") == "message" else None


def usage(data: bytes, stream: bool) -> tuple[int, int]:
    """(input, output) tokens an answer reports, for /metrics; (0, 0) when it says nothing."""
    if not stream:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return 0, 0
        u = obj.get("usage") if isinstance(obj, dict) else None
        return _pair(u, 0, 0)
    inp = out = 0
    for line in data.split(b"\n"):
        if not line.startswith(b"data:") or b"usage" not in line:
            continue
        try:
            obj = orjson.loads(line[5:])
        except orjson.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        if obj.get("type") == "message_start":
            message = obj.get("message")
            inp, out = _pair(message.get("usage") if isinstance(message, dict) else None, inp, out)
        elif obj.get("type") == "message_delta":
            inp, out = _pair(obj.get("usage"), inp, out)
    return inp, out


def _pair(u: object, inp: int, out: int) -> tuple[int, int]:
    if not isinstance(u, dict):
        return inp, out
    i, o = u.get("input_tokens"), u.get("output_tokens")
    return (i if isinstance(i, int) and i else inp), (o if isinstance(o, int) and o else out)


def renamed(body: bytes, model: str) -> bytes:
    """``body`` as built, asking for ``model`` instead (an upstream with a model of its own)."""
    out = orjson.loads(body)
    out["model"] = model
    return validate.dumps(out)
