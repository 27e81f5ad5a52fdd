"""Floors of a cache hit on this machine: what aiohttp and a Redis GET cost with nothing else.

Run on demand (not a test; all traffic on 127.0.0.1):

    .venv/bin/python bench/hit_floor.py [--rounds 3] [--duration 5] [--workers 1,2]

Starts a real ``redis-server`` and, one at a time, minimal aiohttp servers on a free port that
read the POST body and answer a fixed 300-byte JSON: ``bare`` (no Redis), ``redis-py`` (one
``GET`` through redis-py's asyncio client with a blocking pool, as the proxy had it) and ``resp``
(one ``GET`` through the proxy's own pipelined client, vastllm.proxy.cache.redis), each with 1
or more processes sharing the port (SO_REUSEPORT). Measured with ``wrk -t1 -c{1,32} --latency`` and
bench/wrk_post.lua (SAME=1); medians over rounds, variants interleaved, under the exclusive
flock on /tmp/vastllm-bench.lock. Prints a Markdown table.

    .venv/bin/python bench/hit_floor.py --serve MODE PORT REDIS_PORT   # one server (internal)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import proxy_bench as pb  # noqa: E402 - bench/ is a folder of scripts, not a package
from tests.support import free_port, wait_http, wait_tcp  # noqa: E402

MODES = ("bare", "redis-py", "resp")
ANSWER = (
    b'{"id":"chatcmpl-x","object":"chat.completion","created":0,"model":"mock","choices":'
    b'[{"index":0,"message":{"role":"assistant","content":"Paris is the capital of France."},'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":8,'
    b'"total_tokens":20}}'
)


def serve(mode: str, port: int, redis_port: int) -> None:
    from aiohttp import web  # noqa: PLC0415 - server side only

    url = f"redis://127.0.0.1:{redis_port}/0"

    async def make() -> web.Application:
        get = None
        if mode == "redis-py":
            import redis.asyncio as aioredis  # noqa: PLC0415

            pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=32, timeout=2.0)
            client = aioredis.Redis(connection_pool=pool)
            get = client.get
        elif mode == "resp":
            from vastllm.proxy.cache.redis import RedisClient  # noqa: PLC0415

            get = RedisClient(url).get

        async def handler(request: web.Request) -> web.Response:
            await request.read()
            body = ANSWER if get is None else await get("floor")
            return web.Response(body=body, content_type="application/json")

        app = web.Application()
        app.router.add_post("/v1/chat/completions", handler)
        app.router.add_get("/v1/models", lambda _: web.Response(text="{}"))
        return app

    web.run_app(make(), host="127.0.0.1", port=port, access_log=None, print=None, reuse_port=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--serve", nargs=3, metavar=("MODE", "PORT", "REDIS_PORT"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--workers", default="1,2")
    args = ap.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), int(args.serve[2]))
        return 0
    workers = [int(w) for w in args.workers.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="vastllm-hit-floor-"))
    svc = pb.Services(workdir)
    redis_port = free_port()
    results: dict[tuple[str, int, int], list[pb.WrkResult]] = {}
    try:
        svc.start(
            "redis",
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        )  # fmt: skip
        wait_tcp(redis_port)
        subprocess.run(
            ["redis-cli", "-p", str(redis_port), "SET", "floor", ANSWER.decode()],
            check=True,
            capture_output=True,
        )
        cases = [(m, w) for w in workers for m in MODES]
        with pb.bench_lock():
            for rnd in range(args.rounds):
                shift = rnd % len(cases)
                for mode, n in cases[shift:] + cases[:shift]:
                    port = free_port()
                    procs = [
                        subprocess.Popen(
                            [sys.executable, __file__, "--serve", mode, str(port), str(redis_port)],
                            env=pb.python_env(),
                        )
                        for _ in range(n)
                    ]
                    try:
                        wait_http(f"http://127.0.0.1:{port}/v1/models")
                        time.sleep(0.5 * n)  # every process listening
                        for c in (1, 32):
                            print(f"round {rnd + 1} {mode} x{n} -c{c}", file=sys.stderr)
                            r = pb.wrk(port, "openai", args.duration, same=True, clients=c)
                            results.setdefault((mode, n, c), []).append(r)
                    finally:
                        for p in procs:
                            p.terminate()
                            p.wait(10)
    finally:
        svc.stop()
    print("| server | processes | clients | req/s | p50 ms | p99 ms | p99 per round ms |")
    print("|---|---|---|---|---|---|---|")
    for (mode, n, c), runs in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][2])):
        rps = statistics.median(r.rps for r in runs)
        p50 = statistics.median(r.p50 for r in runs)
        p99 = statistics.median(r.p99 for r in runs)
        each = ", ".join(f"{r.p99:.2f}" for r in runs)
        print(f"| {mode} | {n} | {c} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {each} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
