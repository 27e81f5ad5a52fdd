"""Mock inference engine for bench/gateway_bench.py: a GPU host whose capacity is its own, not
this machine's (bench only, not a test).

    .venv/bin/python bench/mock_engine.py PORT [--delay-ms 200] [--slots 4]

Listens on 127.0.0.1:PORT and plays a GPU host's proxy behind the workstation gateway:

- ``POST /v1/messages`` (Anthropic's shape): the request takes one of ``--slots`` slots (an
  ``asyncio.Semaphore``, like a GPU's batch: requests beyond it wait for a slot, in arrival
  order), holds it ``--delay-ms`` and answers "Paris is the capital of France." as JSON, or, when
  the body asks ``"stream": true``, as Messages SSE (``message_start`` at once, the text in one
  ``text_delta`` per word spread over the delay, ``message_stop`` at the end of it);
- ``GET /v1/models``: one model, ``mock`` (the gateway's health check of an ``anthropic``-kind
  upstream, :meth:`vastllm.proxy.upstreams.anthropic.AnthropicClient.health`);
- ``GET /stats``: requests served, the most in flight and the most waiting for a slot at once,
  and the total seconds spent waiting (the bench checks that both hosts were saturated);
  ``?reset=peaks`` starts the two peaks again from the present after answering.

The work per request is reading the body and a sleep, so on a shared 2-core machine the
requests/s a host serves is ``slots / delay`` whatever else runs there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass

from aiohttp import web
from mock_upstream import ANSWER, MESSAGE, MODELS


@dataclass
class Stats:
    slots: int
    delay_ms: float
    served: int = 0
    streamed: int = 0
    waiting: int = 0
    in_flight: int = 0
    peak_waiting: int = 0
    peak_in_flight: int = 0
    wait_s: float = 0.0


STATS = web.AppKey("stats", Stats)
SLOTS = web.AppKey("slots", asyncio.Semaphore)
DELAY = web.AppKey("delay", float)


def _event(kind: str, data: dict[str, object]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def sse_events(words: list[str]) -> tuple[bytes, list[bytes], bytes]:
    """(head, one delta per word, tail) of a Messages SSE answer."""
    head = _event(
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_mock",
                "type": "message",
                "role": "assistant",
                "model": "mock",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 12, "output_tokens": 1},
            },
        },
    ) + _event(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    )
    deltas = [
        _event(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}},
        )
        for w in words
    ]
    tail = (
        _event("content_block_stop", {"type": "content_block_stop", "index": 0})
        + _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(words)},
            },
        )
        + _event("message_stop", {"type": "message_stop"})
    )
    return head, deltas, tail


WORDS = [w + " " for w in ANSWER.split(" ")[:-1]] + [ANSWER.split(" ")[-1]]
SSE_HEAD, SSE_DELTAS, SSE_TAIL = sse_events(WORDS)


async def messages(request: web.Request) -> web.StreamResponse:
    raw = await request.read()
    try:
        body = json.loads(raw)
    except json.JSONDecodeError:
        return web.json_response(
            {"type": "error", "error": {"type": "invalid_request_error", "message": "bad JSON"}},
            status=400,
        )
    stream = isinstance(body, dict) and body.get("stream") is True
    st = request.app[STATS]
    slots = request.app[SLOTS]
    st.waiting += 1
    st.peak_waiting = max(st.peak_waiting, st.waiting)
    t0 = time.monotonic()
    try:
        await slots.acquire()
    finally:
        st.waiting -= 1
    st.wait_s += time.monotonic() - t0
    st.in_flight += 1
    st.peak_in_flight = max(st.peak_in_flight, st.in_flight)
    try:
        resp = await _answer(request, stream, request.app[DELAY])
    finally:
        st.in_flight -= 1
        slots.release()
    st.served += 1
    if stream:
        st.streamed += 1
    return resp


async def _answer(request: web.Request, stream: bool, delay: float) -> web.StreamResponse:
    if not stream:
        if delay > 0:
            await asyncio.sleep(delay)
        return web.Response(body=MESSAGE, content_type="application/json")
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await resp.prepare(request)
    await resp.write(SSE_HEAD)
    step = delay / len(SSE_DELTAS)
    for delta in SSE_DELTAS:
        if step > 0:
            await asyncio.sleep(step)
        await resp.write(delta)
    await resp.write(SSE_TAIL)
    await resp.write_eof()
    return resp


async def models(_: web.Request) -> web.Response:
    return web.Response(body=MODELS, content_type="application/json")


async def stats(request: web.Request) -> web.Response:
    st = request.app[STATS]
    out = web.json_response(asdict(st))
    if request.query.get("reset") == "peaks":  # the next case's peaks start from now
        st.peak_in_flight, st.peak_waiting = st.in_flight, st.waiting
    return out


def build_app(delay_s: float, slots: int) -> web.Application:
    app = web.Application()
    app[STATS] = Stats(slots=slots, delay_ms=delay_s * 1000)
    app[SLOTS] = asyncio.Semaphore(slots)
    app[DELAY] = delay_s
    app.router.add_post("/v1/messages", messages)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/stats", stats)
    return app


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("port", type=int)
    ap.add_argument("--delay-ms", type=float, default=200.0, help="time one request holds a slot")
    ap.add_argument("--slots", type=int, default=4, help="requests served at once")
    args = ap.parse_args()
    if args.slots < 1 or args.delay_ms < 0:
        ap.error("--slots must be >= 1 and --delay-ms >= 0")
    app = build_app(args.delay_ms / 1000, args.slots)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
