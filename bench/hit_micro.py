"""Microseconds of each in-process step of a cache hit (no sockets): where the CPU goes besides
aiohttp and Redis. Not a test; prints a Markdown table.

    .venv/bin/python bench/hit_micro.py [--n 20000]

Steps, as the hit path runs them: decode the body (orjson), translate it (OpenAI and Anthropic
parsers), resolve the model and check the context (``ChatService.prepare``, which stats the
active model file), the cache key (sorted JSON + SHA-256), decode the cached entry, render the
answer for each API, and build the aiohttp response object.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

import orjson  # noqa: E402

from vastllm.proxy import http_io  # noqa: E402
from vastllm.proxy.anthropic import parse as anthropic_parse  # noqa: E402
from vastllm.proxy.anthropic import render as anthropic_render  # noqa: E402
from vastllm.proxy.cache.store import cache_key  # noqa: E402
from vastllm.proxy.metrics import Metrics  # noqa: E402
from vastllm.proxy.models import ModelCatalog  # noqa: E402
from vastllm.proxy.neutral import ChatResult  # noqa: E402
from vastllm.proxy.openai import parse as openai_parse  # noqa: E402
from vastllm.proxy.openai import render as openai_render  # noqa: E402
from vastllm.proxy.service import ChatService  # noqa: E402
from vastllm.proxy.settings import ProxySettings  # noqa: E402

RAW = (
    b'{"model":"mock","max_tokens":32,"temperature":0,"messages":[{"role":"user",'
    b'"content":"What is the capital of France?"}]}'
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    n = ap.parse_args().n
    settings = ProxySettings(
        aliases={}, default_model="mock", active_model_file=Path("/nonexistent"), redis_url=""
    )
    catalog = ModelCatalog(settings)
    service = ChatService(settings, catalog, None, None, Metrics())  # type: ignore[arg-type]
    entry = ChatResult("Paris is the capital of France.", [], "stop", 12, 8).to_json()
    body = orjson.loads(RAW)
    req = openai_parse.parse(body)
    service.prepare(req)
    result = ChatResult.from_json(entry)

    def whole() -> Any:
        r = openai_parse.parse(orjson.loads(RAW))
        service.prepare(r)
        cache_key(r)
        res = ChatResult.from_json(entry)
        body = openai_render.render_completion(res, r.model)
        return http_io.json_response(body, headers={"x-vastllm-cache": "hit"})

    steps: list[tuple[str, Callable[[], Any]]] = [
        ("decode the body (orjson.loads)", lambda: orjson.loads(RAW)),
        ("OpenAI parse", lambda: openai_parse.parse(body)),
        ("Anthropic parse", lambda: anthropic_parse.parse(body)),
        ("prepare (resolve model, estimate, clamp)", lambda: service.prepare(req)),
        ("cache key (sorted JSON + SHA-256)", lambda: cache_key(req)),
        ("decode the cache entry", lambda: ChatResult.from_json(entry)),
        ("render OpenAI completion", lambda: openai_render.render_completion(result, "mock")),
        ("render Anthropic message", lambda: anthropic_render.render_message(result, "mock")),
        ("aiohttp web.Response", lambda: http_io.json_response(b"{}", headers={"a": "b"})),
        ("all of the above for one OpenAI hit", whole),
    ]
    print("| step | us per call |")
    print("|---|---|")
    for name, fn in steps:
        fn()
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        print(f"| {name} | {(time.perf_counter_ns() - t0) / n / 1000:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
