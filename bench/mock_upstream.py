"""Zero-latency OpenAI-compatible mock upstream for bench/proxy_bench.py (bench only, not a test).

    .venv/bin/python bench/mock_upstream.py PORT

Listens on 127.0.0.1:PORT and answers, with no work beyond reading the request body:
- ``POST /v1/chat/completions``: one chat completion in OpenAI's shape whose content is
  "Paris is the capital of France."
- ``POST /v1/messages``: the same answer in Anthropic's shape (the direct baseline of the
  Anthropic route, so a client can measure the mock without any proxy in between)
- ``GET /v1/models``: one model, ``mock``
- ``GET /stats``: how many requests each path received (the bench checks which upstream path
  each proxy really used)
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter

from aiohttp import web

ANSWER = "Paris is the capital of France."

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "mock",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": ANSWER},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20},
    }
).encode()

MESSAGE = json.dumps(
    {
        "id": "msg_mock",
        "type": "message",
        "role": "assistant",
        "model": "mock",
        "content": [{"type": "text", "text": ANSWER}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 8},
    }
).encode()

MODELS = json.dumps(
    {"object": "list", "data": [{"id": "mock", "object": "model", "owned_by": "bench"}]}
).encode()

HITS: Counter[str] = Counter()


async def chat_completions(request: web.Request) -> web.Response:
    await request.read()
    HITS["/v1/chat/completions"] += 1
    return web.Response(body=COMPLETION, content_type="application/json")


async def messages(request: web.Request) -> web.Response:
    await request.read()
    HITS["/v1/messages"] += 1
    return web.Response(body=MESSAGE, content_type="application/json")


async def models(_: web.Request) -> web.Response:
    HITS["/v1/models"] += 1
    return web.Response(body=MODELS, content_type="application/json")


async def stats(_: web.Request) -> web.Response:
    return web.json_response(dict(HITS))


def build_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/messages", messages)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/stats", stats)
    return app


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: mock_upstream.py PORT", file=sys.stderr)
        return 2
    web.run_app(build_app(), host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
