"""Benchmark: the workstation gateway (issue 19): the latency it adds over a direct tunnel, and
requests/s with 2 GPU hosts against 1 at a saturating load.

Run on demand (not a test; stops by itself in about 100 s; all traffic on 127.0.0.1):

    .venv/bin/python bench/gateway_bench.py [--requests 200] [--slow-requests 25] \\
        [--pause-ms 200] [--clients 32] [--duration 15] [--stream-duration 8] \\
        [--conversation-duration 8] [--delay-ms 200] [--slots 4] [--no-append]

Starts, each on a free loopback port, three mock engines (bench/mock_engine.py, each playing a
GPU host's proxy at the end of its tunnel): ``zero`` (answers at once), ``host-a`` and ``host-b``
(every request holds one of --slots slots for --delay-ms, like a GPU's batch: a host serves
``slots / delay`` requests/s, 20 by default, whatever this machine's 2 cores do); and three
gateways: this project's proxy (``python -m vastllm.proxy``, its own settings file in a temp dir)
with the settings roles/tunnel/tasks/gateway.yml writes (one ``anthropic``-kind upstream per host,
``aliases: {}``, ``default_engine: anthropic``, ``context_length: 10485760``, an active model file
that does not exist, no Redis, ``cache_mode: off``; no API keys): ``gw-zero`` in front of
``zero``, ``gw-1`` in front of ``host-a``, ``gw-2`` in front of ``host-a`` and ``host-b``. After a
check that each gateway passes ``/v1/messages`` through (JSON and SSE) to the hosts it should,
holding the exclusive flock on /tmp/vastllm-bench.lock so no other benchmark measures at the
same time, it measures on ``POST /v1/messages`` (passed through, as Claude Code's requests are):

1. sequential latency: one aiohttp keep-alive client, requests alternating between the engine
   direct and the gateway in front of it, every body unique; added = gateway minus direct.
   Against ``zero``, --requests each after 30 warm-up (nothing hides the gateway's cost); against
   ``host-a``, --slow-requests each after 5 (what a client sees with a --delay-ms engine); and
   against ``zero`` again with the client idle --pause-ms before each request (the wake-up cost
   of an idle process, which the delayed engine's figure includes, without the engine's delay);
2. saturating load: --clients concurrent aiohttp clients (one session, keep-alive) for 1 s of
   warm-up and --duration s measured, through ``gw-1`` then ``gw-2``: requests/s (answers that
   ended within the measured window), latency percentiles, failures (a non-200, an answer without
   the text, an exception: must be 0), what each host served and its peaks (its /stats), and the
   gateway's CPU. Every request has its own first user message, so conversation affinity (the
   gateway keeps a conversation, system prompt + first user message, on one host) does not pin
   the load on one host. The same with ``stream: true`` (SSE relayed) for --stream-duration s,
   and, for information, ``gw-2`` with every request a later turn of one conversation (same
   system prompt and first user message) for --conversation-duration s.

Prints a Markdown section with PASS/FAIL for the goal (2 hosts >= 1.8x the requests/s of 1, no
failures) and appends it to bench/RESULTS.md in one write (--no-append to only print).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import proxy_bench as pb  # noqa: E402 - bench/ is a folder of scripts, not a package
from bench_common import append_result, bench_lock, cpu_model, loadavg, percentile  # noqa: E402
from tests.support import free_port, wait_http  # noqa: E402

ENGINE = BENCH / "mock_engine.py"
MODEL = "mock"
HEADERS = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
GOAL_SCALE = 1.8  # issue 19: requests/s with 2 hosts >= 1.8x with 1
WARMUP_S = 1.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- processes ------------------------------------------------------------------------------
def start_engine(svc: pb.Services, name: str, port: int, delay_ms: float, slots: int) -> None:
    argv = [sys.executable, str(ENGINE), str(port), "--delay-ms", str(delay_ms)]
    svc.start(name, [*argv, "--slots", str(slots)], pb.python_env())


def gateway_settings(port: int, hosts: dict[str, int], workdir: Path) -> dict[str, object]:
    """The settings roles/tunnel/tasks/gateway.yml writes (no API keys), one upstream a host."""
    return {
        "host": "127.0.0.1",
        "port": port,
        "upstreams": [
            {"name": name, "kind": "anthropic", "base_url": f"http://127.0.0.1:{p}"}
            for name, p in hosts.items()
        ],
        "aliases": {},
        "default_engine": "anthropic",
        "context_length": 10485760,
        "active_model_file": str(workdir / "gateway.json.none"),
        "redis_url": "",
        "cache_mode": "off",
        "api_keys": [],
        "log_level": "WARNING",
    }


def start_gateway(svc: pb.Services, name: str, port: int, hosts: dict[str, int]) -> None:
    pb.start_vastllm_proxy(svc, name, gateway_settings(port, hosts, svc.workdir))


def pid_of(svc: pb.Services, name: str) -> int:
    return next(proc.pid for n, proc, _ in svc.procs if n == name)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


# -- requests -------------------------------------------------------------------------------
def body(text: str, *, stream: bool = False, conversation: bool = False) -> bytes:
    """A Messages request whose first user message is ``text``; ``conversation``: a later turn
    of one conversation instead (the same system prompt and first user message every time,
    ``text`` its last user message)."""
    messages = [{"role": "user", "content": text}]
    if conversation:
        messages = [
            {"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": "Paris is the capital of France."},
            *messages,
        ]
    payload: dict[str, object] = {
        "model": MODEL,
        "max_tokens": 32,
        "temperature": 0,
        "messages": messages,
    }
    if conversation:
        payload["system"] = "You answer geography questions."
    if stream:
        payload["stream"] = True
    return json.dumps(payload).encode()


def answered(status: int, data: bytes, stream: bool) -> bool:
    if status != 200:
        return False
    if stream:
        return b"Paris" in data and b"event: message_stop" in data
    return b"Paris" in data


async def post(
    session: aiohttp.ClientSession, port: int, payload: bytes, stream: bool
) -> tuple[int, bytes, str]:
    """(status, body, x-vastllm-upstream) of one POST /v1/messages."""
    url = f"http://127.0.0.1:{port}/v1/messages"
    async with session.post(url, data=payload, headers=HEADERS) as resp:
        data = await resp.read()
        return resp.status, data, resp.headers.get("x-vastllm-upstream", "")


@dataclass
class Dist:
    n: int
    p50: float
    p90: float
    p99: float


def dist(ms: list[float]) -> Dist:
    return Dist(len(ms), statistics.median(ms), percentile(ms, 0.90), percentile(ms, 0.99))


@dataclass
class Seq:
    engine: str
    delay_ms: float
    pause_ms: float
    direct: Dist
    gateway: Dist


async def sequential(
    ports: dict[str, int], n: int, warmup: int, tag: str, *, pause_s: float = 0.0
) -> dict[str, Dist]:
    """n requests to each target, one at a time, alternating between targets, each after
    ``pause_s`` idle; ms each."""
    times: dict[str, list[float]] = {name: [] for name in ports}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for i in range(warmup + n):
            for name, port in ports.items():
                payload = body(f"What is the capital of France? ({tag} {name} {i})")
                if pause_s > 0:
                    await asyncio.sleep(pause_s)
                t0 = time.perf_counter()
                status, data, _ = await post(session, port, payload, False)
                dt = (time.perf_counter() - t0) * 1000
                if not answered(status, data, False):
                    raise RuntimeError(f"{name} :{port}: HTTP {status}: {data[:300]!r}")
                if i >= warmup:
                    times[name].append(dt)
    return {name: dist(ms) for name, ms in times.items()}


@dataclass
class Load:
    hosts: int
    mode: str  # json, sse (stream: true), or conversation (JSON, one conversation's turns)
    duration: float
    done: list[float] = field(default_factory=list)  # ms of answers that ended in the window
    sent: int = 0
    failures: int = 0
    first_error: str = ""
    served: dict[str, int] = field(default_factory=dict)  # host -> requests it served
    peak_in_flight: dict[str, int] = field(default_factory=dict)
    peak_waiting: dict[str, int] = field(default_factory=dict)
    gateway_cpu: float = 0.0  # share of one core over the whole case

    @property
    def rps(self) -> float:
        return len(self.done) / self.duration


async def saturate(port: int, clients: int, result: Load, tag: str) -> None:
    """``clients`` workers, each sending its next request when the last is answered, for
    WARMUP_S + ``result.duration``; an answer counts when it ends within the last
    ``result.duration``."""
    duration = result.duration
    stream, conversation = result.mode == "sse", result.mode == "conversation"
    start = time.monotonic()
    window = (start + WARMUP_S, start + WARMUP_S + duration)

    async def worker(session: aiohttp.ClientSession, w: int) -> None:
        n = 0
        while time.monotonic() < window[1]:
            n += 1
            text = f"What is the capital of France? ({tag} {w}-{n})"
            payload = body(text, stream=stream, conversation=conversation)
            result.sent += 1
            t0 = time.monotonic()
            try:
                status, data, _ = await post(session, port, payload, stream)
            except (aiohttp.ClientError, TimeoutError) as e:
                status, data = 0, f"{type(e).__name__}: {e}".encode()
            t1 = time.monotonic()
            if not answered(status, data, stream):
                result.failures += 1
                result.first_error = result.first_error or f"HTTP {status}: {data[:200]!r}"
            elif window[0] <= t1 < window[1]:
                result.done.append((t1 - t0) * 1000)

    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session, w) for w in range(clients)))


def engine_stats(port: int, *, reset: bool = False) -> dict[str, float]:
    """The mock engine's /stats (``reset``: its peaks start again from now)."""
    data = pb.get_json(port, "/stats?reset=peaks" if reset else "/stats")
    assert isinstance(data, dict)  # noqa: S101 - the mock engine's own /stats shape
    return {str(k): float(v) for k, v in data.items()}


async def load_case(
    svc: pb.Services,
    gateway: str,
    port: int,
    hosts: dict[str, int],
    args: argparse.Namespace,
    *,
    mode: str,
) -> Load:
    duration = {"json": args.duration, "sse": args.stream_duration}.get(
        mode, args.conversation_duration
    )
    result = Load(len(hosts), mode, duration)
    before = {name: engine_stats(p, reset=True) for name, p in hosts.items()}
    pid = pid_of(svc, gateway)
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    tag = f"{gateway} {mode}"
    print(f"load {tag}: {args.clients} clients, {duration:g} s ...", file=sys.stderr, flush=True)
    await saturate(port, args.clients, result, tag)
    result.gateway_cpu = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
    for name, p in hosts.items():
        after = engine_stats(p)
        result.served[name] = int(after["served"] - before[name]["served"])
        result.peak_in_flight[name] = int(after["peak_in_flight"])
        result.peak_waiting[name] = int(after["peak_waiting"])
    return result


async def check_gateway(port: int, expect: set[str]) -> None:
    """The gateway passes /v1/messages through (the engine's own id comes back), JSON and SSE,
    and answers from the hosts named in ``expect``."""
    seen: set[str] = set()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for i in range(4 * len(expect)):
            stream = i % 2 == 1
            payload = body(f"sanity {port} {i}", stream=stream)
            status, data, upstream = await post(session, port, payload, stream)
            if not answered(status, data, stream) or b"msg_mock" not in data:
                raise RuntimeError(f"gateway :{port} answered HTTP {status}: {data[:300]!r}")
            seen.add(upstream)
    if seen != expect:
        raise RuntimeError(f"gateway :{port} answered from {sorted(seen)}, not {sorted(expect)}")


# -- report ---------------------------------------------------------------------------------
def machine_note() -> str:
    return (
        f"{os.cpu_count()} cores ({cpu_model()}), CPython {platform.python_version()}, "
        f"aiohttp {aiohttp.__version__}; every process (engines, gateways, load client) on this "
        f"machine, all traffic on loopback; load average at start {loadavg()}"
    )


def render(
    *,
    started: datetime,
    command: str,
    note: str,
    args: argparse.Namespace,
    seqs: list[Seq],
    loads: list[Load],
    load_after: str,
) -> str:
    delay, slots = args.delay_ms, args.slots
    ceiling = slots / (delay / 1000)
    out = [
        f"## gateway: added latency over a direct tunnel, and req/s with 2 hosts against 1 "
        f"({started:%Y-%m-%d %H:%M} UTC, issue 19)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {note}; load average at the end {load_after}.  ",
        f"Hosts: bench/mock_engine.py, one process each, playing a GPU host's proxy at the end "
        f"of its tunnel: every request holds one of {slots} slots for {delay:g} ms (an asyncio "
        f"semaphore; the rest wait), so one host serves at most {ceiling:g} req/s however busy "
        "this machine is; `zero`: the same engine with no delay. No SSH tunnel in between: "
        "client -> engine is the direct tunnel's path, client -> gateway -> engine the "
        "gateway's.  ",
        "Gateway: `python -m vastllm.proxy` with the settings roles/tunnel/tasks/gateway.yml "
        "writes (one `anthropic` upstream per host, `aliases: {}`, `default_engine: anthropic`, "
        "`context_length: 10485760`, no active model file, `cache_mode: off`, no Redis, no API "
        "keys), 1 worker; `/v1/messages` is passed through (the engine's own message id comes "
        "back).  ",
        f"Sequential: one aiohttp keep-alive client, requests alternating between the engine "
        f"direct and the gateway in front of it, unique bodies; {args.requests} each after 30 "
        f"warm-up (`zero`), {args.slow_requests} each after 5 (`host-a`, and `zero` with the "
        "client idle before each request).  ",
        f"Load: {args.clients} aiohttp clients (one session, keep-alive), each sending its next "
        f"request when the last is answered; {WARMUP_S:g} s warm-up, then the seconds shown "
        "measured; req/s = answers that ended in the measured window / its length. Every "
        "request has its own first user message (a new conversation: affinity does not pin it "
        "to a host), except in the `one conversation` case: the same system prompt and first "
        "user message in every request, the last user message unique (later turns of one "
        "conversation, sent in parallel).",
        "",
        "### Sequential latency (`POST /v1/messages`)",
        "",
        "| path | engine delay | client idle before each | requests | p50 ms | p90 ms | p99 ms "
        "| added p50 ms | added p90 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for q in seqs:
        d, g = q.direct, q.gateway
        common = f"{q.delay_ms:g} ms | {q.pause_ms:g} ms"
        out += [
            f"| client -> {q.engine} (direct tunnel) | {common} | {d.n} | {d.p50:.2f} "
            f"| {d.p90:.2f} | {d.p99:.2f} | - | - |",
            f"| client -> gateway -> {q.engine} | {common} | {g.n} | {g.p50:.2f} | {g.p90:.2f} "
            f"| {g.p99:.2f} | {g.p50 - d.p50:+.2f} | {g.p90 - d.p90:+.2f} |",
        ]
    answers = {
        "json": "JSON",
        "sse": "SSE (`stream: true`)",
        "conversation": "JSON, one conversation",
    }
    out += [
        "",
        f"### Saturating load: {args.clients} clients through the gateway",
        "",
        "| hosts behind the gateway | answers | measured s | req/s | ceiling req/s | p50 ms "
        "| p90 ms | p99 ms | answers measured | failures | served by host-a / host-b "
        "| peak in flight a / b | peak waiting a / b | gateway CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    names = ["host-a", "host-b"]
    for r in loads:
        d = dist(r.done) if r.done else Dist(0, 0.0, 0.0, 0.0)
        served = " / ".join(str(r.served.get(n, "-")) for n in names)
        peak = " / ".join(str(r.peak_in_flight.get(n, "-")) for n in names)
        wait = " / ".join(str(r.peak_waiting.get(n, "-")) for n in names)
        label = "1 (host-a)" if r.hosts == 1 else "2 (host-a, host-b)"
        out.append(
            f"| {label} | {answers[r.mode]} | {r.duration:g} | {r.rps:.1f} "
            f"| {ceiling * r.hosts:g} | {d.p50:.0f} | {d.p90:.0f} | {d.p99:.0f} | {d.n:,} "
            f"| {r.failures} of {r.sent:,} | {served} | {peak} | {wait} | {r.gateway_cpu:.0%} |"
        )
    out += [
        "",
        "### Goal",
        "",
        "| goal | 1 host | 2 hosts | ratio | verdict |",
        "|---|---|---|---|---|",
    ]
    verdicts: list[str] = []
    by = {(r.hosts, r.mode): r for r in loads}
    for mode in ("json", "sse"):
        one, two = by.get((1, mode)), by.get((2, mode))
        if one is None or two is None:
            continue
        ratio = two.rps / one.rps if one.rps else 0.0
        ok = ratio >= GOAL_SCALE
        goal = f"req/s with 2 hosts >= {GOAL_SCALE}x 1 host ({mode.upper()})"
        out.append(
            f"| {goal} | {one.rps:.1f} | {two.rps:.1f} | {ratio:.3f} | **{pb.verdict(ok)}** |"
        )
        verdicts.append(f"{pb.verdict(ok)}  {goal}: {ratio:.3f}x")
    one, conv = by.get((1, "json")), by.get((2, "conversation"))
    if one is not None and conv is not None and one.rps:
        out.append(
            f"| (info) 2 hosts, one conversation, vs 1 host (JSON) | {one.rps:.1f} "
            f"| {conv.rps:.1f} | {conv.rps / one.rps:.3f} | - |"
        )
    bad = sum(r.failures for r in loads)
    sent = sum(r.sent for r in loads)
    goal = "no failures (every load case)"
    out.append(f"| {goal} | - | - | {bad} of {sent:,} | **{pb.verdict(bad == 0)}** |")
    verdicts.append(f"{pb.verdict(bad == 0)}  {goal}: {bad} of {sent:,}")
    out += [""]
    out += [
        f"Added latency: the gateway adds {q.gateway.p50 - q.direct.p50:.2f} ms at p50 "
        f"({q.gateway.p90 - q.direct.p90:.2f} ms at p90) in front of `{q.engine}` "
        f"({q.delay_ms:g} ms engine, client idle {q.pause_ms:g} ms before each request).  "
        for q in seqs
    ]
    errors = [f"{r.hosts} host(s), {r.mode}: {r.first_error}" for r in loads if r.first_error]
    if errors:
        out += ["", "First failure per case:  ", *[f"{e}  " for e in errors]]
    out += ["", "```", *verdicts, "```", ""]
    return "\n".join(out)


# -- main -----------------------------------------------------------------------------------
async def measure(
    svc: pb.Services, ports: dict[str, int], args: argparse.Namespace
) -> tuple[list[Seq], list[Load]]:
    await check_gateway(ports["gw-zero"], {"zero"})
    await check_gateway(ports["gw-1"], {"host-a"})
    await check_gateway(ports["gw-2"], {"host-a", "host-b"})
    zero = {"direct": ports["zero"], "gateway": ports["gw-zero"]}
    slow = {"direct": ports["host-a"], "gateway": ports["gw-1"]}
    seqs: list[Seq] = []
    loads: list[Load] = []
    one = {"host-a": ports["host-a"]}
    two = {"host-a": ports["host-a"], "host-b": ports["host-b"]}
    with bench_lock():
        print("sequential, zero delay ...", file=sys.stderr, flush=True)
        r = await sequential(zero, args.requests, 30, "zero")
        seqs.append(Seq("zero", 0, 0, r["direct"], r["gateway"]))
        print(f"sequential, {args.delay_ms:g} ms engine ...", file=sys.stderr, flush=True)
        r = await sequential(slow, args.slow_requests, 5, "slow")
        seqs.append(Seq("host-a", args.delay_ms, 0, r["direct"], r["gateway"]))
        if args.pause_ms > 0:
            print(f"sequential, zero delay, {args.pause_ms:g} ms idle ...", file=sys.stderr)
            r = await sequential(zero, args.slow_requests, 5, "idle", pause_s=args.pause_ms / 1000)
            seqs.append(Seq("zero", 0, args.pause_ms, r["direct"], r["gateway"]))
        cases = [("gw-1", one, "json"), ("gw-2", two, "json")]
        if args.stream_duration > 0:
            cases += [("gw-1", one, "sse"), ("gw-2", two, "sse")]
        if args.conversation_duration > 0:
            cases += [("gw-2", two, "conversation")]
        for gateway, hosts, mode in cases:
            loads.append(await load_case(svc, gateway, ports[gateway], hosts, args, mode=mode))
            await asyncio.sleep(0.5)
    return seqs, loads


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200, help="sequential requests, zero delay")
    ap.add_argument("--slow-requests", type=int, default=25, help="sequential, delayed engine")
    ap.add_argument("--clients", type=int, default=32, help="concurrent clients under load")
    ap.add_argument("--duration", type=float, default=15, help="measured seconds per JSON case")
    ap.add_argument("--stream-duration", type=float, default=8, help="per SSE case (0: none)")
    ap.add_argument(
        "--conversation-duration", type=float, default=8, help="one-conversation case (0: none)"
    )
    ap.add_argument(
        "--pause-ms", type=float, default=200, help="client idle before each request (0: none)"
    )
    ap.add_argument("--delay-ms", type=float, default=200, help="a host's time per request")
    ap.add_argument("--slots", type=int, default=4, help="requests a host serves at once")
    ap.add_argument("--no-append", action="store_true", help="print only")
    args = ap.parse_args()

    started = datetime.now(UTC)
    command = shlex.join([".venv/bin/python", "bench/gateway_bench.py", *sys.argv[1:]])
    note = machine_note()
    workdir = Path(tempfile.mkdtemp(prefix="vastllm-gateway-bench-"))
    svc = pb.Services(workdir)
    ports = {k: free_port() for k in ("zero", "host-a", "host-b", "gw-zero", "gw-1", "gw-2")}
    try:
        start_engine(svc, "zero", ports["zero"], 0, args.slots)
        for host in ("host-a", "host-b"):
            start_engine(svc, host, ports[host], args.delay_ms, args.slots)
        for name in ("zero", "host-a", "host-b"):
            wait_http(f"http://127.0.0.1:{ports[name]}/v1/models")
        start_gateway(svc, "gw-zero", ports["gw-zero"], {"zero": ports["zero"]})
        start_gateway(svc, "gw-1", ports["gw-1"], {"host-a": ports["host-a"]})
        start_gateway(
            svc, "gw-2", ports["gw-2"], {"host-a": ports["host-a"], "host-b": ports["host-b"]}
        )
        for name in ("gw-zero", "gw-1", "gw-2"):
            pb.wait_started(svc, name, ports[name], "/", 30)
        seqs, loads = asyncio.run(measure(svc, ports, args))
    finally:
        svc.stop()

    report = render(
        started=started,
        command=command,
        note=note,
        args=args,
        seqs=seqs,
        loads=loads,
        load_after=loadavg(),
    )
    print(report)
    if not args.no_append:
        append_result(report)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
