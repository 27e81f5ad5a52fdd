"""Benchmark: the proxy's cache-hit path, A/B between source trees and settings, interleaved.

Run on demand (not a test; stops by itself; all traffic on 127.0.0.1):

    .venv/bin/python bench/proxy_hit_bench.py \\
        --variant before=/tmp/before/src --variant after=src --variant after-w2=src:workers=2 \\
        [--rounds 3] [--duration 5] [--clients 1,32] [--routes openai,anthropic] [--append]

A variant is ``NAME=SRC[:key=value,...]``: the proxy (``python -m vastllm.proxy``) imported from
the source tree SRC (e.g. ``git archive HEAD src | tar -x -C /tmp/before`` for the committed
code), with the given settings on top of the bench's (JSON values, else strings). Every variant
runs at the same time against one mock upstream (bench/mock_upstream.py) and one real
``redis-server``, with ``cache_mode: all``; the entry is stored before measuring. Then, holding
the exclusive flock on /tmp/vastllm-bench.lock, for each round, each variant (order rotated each
round, so slow phases of this shared machine hit every variant alike), each route and each
client count: ``wrk -t1 -c{clients} -d{duration}s --latency -s bench/wrk_post.lua`` with
``SAME=1`` (every request is the same cache hit). Prints the median over rounds of req/s, p50 and
p99 per case and each round's figures; ``--append`` adds the section to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import proxy_bench as pb  # noqa: E402 - bench/ is a folder of scripts, not a package
from tests.support import free_port, wait_http  # noqa: E402


@dataclass
class Variant:
    name: str
    src: Path
    settings: dict[str, object]
    port: int = 0
    runs: dict[tuple[str, int], list[pb.WrkResult]] = field(default_factory=dict)


def parse_variant(spec: str) -> Variant:
    name, sep, rest = spec.partition("=")
    if not sep or not name or not rest:
        raise argparse.ArgumentTypeError(f"expected NAME=SRC[:k=v,...], got {spec!r}")
    src, _, opts = rest.partition(":")
    settings: dict[str, object] = {}
    for item in filter(None, opts.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise argparse.ArgumentTypeError(f"setting {item!r} of {name} is not key=value")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            settings[key] = value
    path = (pb.REPO / src).resolve()
    if not (path / "vastllm" / "proxy" / "__main__.py").exists():
        raise argparse.ArgumentTypeError(f"{path} has no vastllm/proxy package")
    return Variant(name, path, settings)


def start_variant(svc: pb.Services, v: Variant, mock_port: int, redis_url: str) -> None:
    config = {
        "host": "127.0.0.1",
        "port": v.port,
        "upstreams": [
            {"name": "mock", "kind": "openai", "base_url": f"http://127.0.0.1:{mock_port}"}
        ],
        "aliases": {},
        "default_model": pb.MODEL,
        "active_model_file": str(svc.workdir / "no-active-model.json"),
        "redis_url": redis_url,
        "cache_mode": "all",
        "log_level": "WARNING",
        **{k: x for k, x in v.settings.items() if k != "pythonpath"},
    }
    path = svc.workdir / f"proxy-{v.name}.json"
    path.write_text(json.dumps(config, indent=2))
    env = pb.python_env()
    extra = str(v.settings.get("pythonpath", ""))  # e.g. a --target dir with uvloop, bench only
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(v.src), extra]))
    env["VASTLLM_PROXY_CONFIG"] = str(path)
    svc.start(f"proxy-{v.name}", [sys.executable, "-m", "vastllm.proxy"], env)


def render(
    variants: list[Variant],
    args: argparse.Namespace,
    *,
    command: str,
    note: str,
    started: datetime,
    load_after: str,
) -> str:
    out = [
        f"## proxy cache hits: A/B, interleaved ({started:%Y-%m-%d %H:%M} UTC)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {note}; load average at the end {load_after}.  ",
        "Every variant: `cache_mode: all` on one real `redis-server`, one mock upstream, same "
        "body repeated (`SAME=1`, every request a hit). "
        f"`wrk -t1 -c{{1,32}} -d{args.duration}s --latency -s bench/wrk_post.lua`, "
        f"{args.rounds} rounds, variant order rotated each round; figures are medians over "
        "rounds (each round in brackets).",
        "",
        "| variant | settings | route | clients | req/s | p50 ms | p99 ms | p99 per round ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in variants:
        settings = ", ".join(f"{k}={json.dumps(x)}" for k, x in v.settings.items()) or "-"
        for (route, clients), runs in v.runs.items():
            rps = statistics.median(r.rps for r in runs)
            p50 = statistics.median(r.p50 for r in runs)
            p99 = statistics.median(r.p99 for r in runs)
            bad = sum(r.wrong + r.errors for r in runs)
            each = ", ".join(f"{r.p99:.2f}" for r in runs)
            flag = f" ({bad} wrong/errors)" if bad else ""
            out.append(
                f"| {v.name}{flag} | {settings} | {route} | {clients} | {rps:,.0f} | {p50:.2f} "
                f"| {p99:.2f} | {each} |"
            )
    out.append("")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", action="append", type=parse_variant, required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="wrk seconds per case")
    ap.add_argument("--clients", default="1,32", help="comma-separated wrk -c values")
    ap.add_argument("--routes", default="openai,anthropic")
    ap.add_argument("--append", action="store_true", help="append to bench/RESULTS.md")
    args = ap.parse_args()
    variants: list[Variant] = args.variant
    clients = [int(c) for c in args.clients.split(",")]
    routes = [r for r in args.routes.split(",") if r]
    started = datetime.now(UTC)
    command = shlex.join([".venv/bin/python", "bench/proxy_hit_bench.py", *sys.argv[1:]])
    note = pb.machine_note()
    workdir = Path(tempfile.mkdtemp(prefix="vastllm-hit-bench-"))
    svc = pb.Services(workdir)
    mock_port, redis_port = free_port(), free_port()
    try:
        svc.start("mock", [sys.executable, str(pb.MOCK), str(mock_port)], pb.python_env())
        svc.start(
            "redis",
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        )  # fmt: skip
        wait_http(f"http://127.0.0.1:{mock_port}/v1/models")
        for v in variants:
            v.port = free_port()
            start_variant(svc, v, mock_port, f"redis://127.0.0.1:{redis_port}/0")
        for v in variants:
            pb.wait_started(svc, f"proxy-{v.name}", v.port, "/v1/models", 30)
            for route in routes:
                pb.cache_header(v.port, route)
                if (status := pb.cache_header(v.port, route)) != "hit":
                    raise RuntimeError(f"{v.name} answered {route} with x-vastllm-cache={status}")
        with pb.bench_lock():
            for rnd in range(args.rounds):
                shift = rnd % len(variants)
                for v in variants[shift:] + variants[:shift]:
                    for route in routes:
                        for c in clients:
                            print(f"round {rnd + 1} {v.name} {route} -c{c}", file=sys.stderr)
                            r = pb.wrk(v.port, route, args.duration, same=True, clients=c)
                            time.sleep(0.2)
                            v.runs.setdefault((route, c), []).append(r)
    finally:
        svc.stop()
    load_after = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    report = render(
        variants, args, command=command, note=note, started=started, load_after=load_after
    )
    print(report)
    if args.append:
        with pb.RESULTS.open("a", encoding="utf-8") as f:
            f.write("\n" + report)
        print(f"appended to {pb.RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
