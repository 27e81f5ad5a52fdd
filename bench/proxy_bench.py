"""Benchmark: the caching proxy (vastllm.proxy) against a zero-latency mock and LiteLLM's proxy.

Run on demand (not a test; stops by itself; all traffic on 127.0.0.1):

    .venv/bin/python bench/proxy_bench.py [--duration 8] [--requests 400] [--no-litellm]

Starts, each on a free loopback port: the mock upstream (bench/mock_upstream.py), a real
`redis-server`, this proxy twice (cache off for the pass-through figures; cache_mode "all" on
that Redis for the hit figures), and LiteLLM's proxy (`litellm[proxy]`, installed into its own
venv under /var/cache/vastllm/bench/litellm-venv when missing; one worker, defaults, no
database, model `hosted_vllm/mock` pointing at the same mock). Then, holding an exclusive
flock on /tmp/vastllm-bench.lock so no other benchmark measures at the same time, it measures
on the OpenAI route (/v1/chat/completions) and the Anthropic route (/v1/messages):

- sequential latency: a Python keep-alive client sending --requests requests one after the
  other (unique bodies); "added" = target p50/p99 minus the mock's own (direct) figure;
- 32 concurrent clients: `wrk -t1 -c32 -d{duration}s --latency -s bench/wrk_post.lua`
  (requests/s and its latency percentiles);
- cache hits: the same body repeated (SAME=1) on the caching proxy, sequential and with wrk.

Prints a Markdown section with ratios and PASS/FAIL per goal, and appends it to
bench/RESULTS.md in one write (--no-append to only print).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import http.client
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import free_port, wait_http  # noqa: E402

BENCH = REPO / "bench"
RESULTS = BENCH / "RESULTS.md"
WRK_SCRIPT = BENCH / "wrk_post.lua"
MOCK = BENCH / "mock_upstream.py"
LOCK = Path("/tmp/vastllm-bench.lock")  # noqa: S108 - the lock both benchmarks agree on
LITELLM_VENV = Path("/var/cache/vastllm/bench/litellm-venv")
LITELLM_SPEC = "litellm[proxy]"
MODEL = "mock"
ROUTES = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}
HEADERS = {
    "content-type": "application/json",
    "x-api-key": "sk-bench",
    "authorization": "Bearer sk-bench",
    "anthropic-version": "2023-06-01",
}

# goals of issue 5
GOAL_LATENCY_RATIO = 1 / 3  # added p50 <= 1/3 of LiteLLM's
GOAL_RPS_RATIO = 3.0  # requests/s >= 3x LiteLLM's
GOAL_PASSTHROUGH_RATIO = 1.05  # issue 17: pass-through vs translation
GOAL_HIT_P99_MS = 2.0  # cache-hit p99 <= 2 ms


# -- processes ------------------------------------------------------------------------------
class Services:
    """Every process the bench starts; all stopped (by their own process group) on exit."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.workdir,
            start_new_session=True,
        )
        self.procs.append((name, proc, log))

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self, name: str) -> None:
        for n, proc, _ in self.procs:
            if n == name and proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")

    def stop(self) -> None:
        for _, proc, _ in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for _, proc, log in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()


def wait_started(svc: Services, name: str, port: int, path: str, timeout: float) -> None:
    """Wait for a 200 on path, failing early (with its log) if the process exits."""
    deadline = time.monotonic() + timeout
    while True:
        svc.check_alive(name)
        try:
            wait_http(f"http://127.0.0.1:{port}{path}", timeout=2)
            return
        except TimeoutError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{name} did not answer {path} within {timeout}s:\n{svc.log_tail(name)}"
                ) from None


def python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src")
    for key in list(env):
        if key.startswith("VASTLLM_PROXY_"):
            del env[key]
    return env


def start_proxy(
    svc: Services,
    name: str,
    port: int,
    mock_port: int,
    redis_url: str,
    *,
    workers: int = 1,
    kind: str = "openai",
) -> None:
    """A vastllm proxy in front of the mock as an upstream of ``kind``; with ``anthropic`` the
    active model is served over Anthropic's API, so ``/v1/messages`` passes through."""
    active = svc.workdir / f"{name}-active-model.json"
    if kind == "anthropic":
        record = {"name": MODEL, "engine": "anthropic", "context_length": 8192}
        active.write_text(json.dumps(record))
    config = {
        "host": "127.0.0.1",
        "port": port,
        "workers": workers,
        "upstreams": [{"name": "mock", "kind": kind, "base_url": f"http://127.0.0.1:{mock_port}"}],
        "aliases": {},
        "default_model": MODEL,
        "active_model_file": str(active),
        "redis_url": redis_url,
        "cache_mode": "all" if redis_url else "off",
        "log_level": "WARNING",
    }
    start_vastllm_proxy(svc, name, config)


def start_vastllm_proxy(svc: Services, name: str, settings: dict[str, object]) -> None:
    """``python -m vastllm.proxy`` with ``settings`` as its settings file (<workdir>/<name>.json);
    gateway_bench.py starts its gateways with it too."""
    path = svc.workdir / f"{name}.json"
    path.write_text(json.dumps(settings, indent=2))
    env = python_env()
    env["VASTLLM_PROXY_CONFIG"] = str(path)
    svc.start(name, [sys.executable, "-m", "vastllm.proxy"], env)


def ensure_litellm(spec: str) -> Path:
    """The `litellm` CLI in its own venv, installed there if missing (never into .venv)."""
    cli = LITELLM_VENV / "bin" / "litellm"
    if cli.exists():
        return cli
    print(f"installing {spec} into {LITELLM_VENV} ...", file=sys.stderr, flush=True)
    LITELLM_VENV.parent.mkdir(parents=True, exist_ok=True)
    base = shutil.which("python3.11") or "python3"
    subprocess.run([base, "-m", "venv", str(LITELLM_VENV)], check=True)
    pip = [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", spec]
    done = subprocess.run(pip, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not cli.exists():
        tail = "\n".join(done.stderr.splitlines()[-20:])
        raise RuntimeError(f"pip install {spec} failed ({done.returncode}):\n{tail}")
    return cli


def litellm_version() -> str:
    py = LITELLM_VENV / "bin" / "python"
    out = subprocess.run(
        [str(py), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "unknown"


def start_litellm(svc: Services, cli: Path, port: int, mock_port: int) -> None:
    config = (
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: hosted_vllm/{MODEL}\n"
        f"      api_base: http://127.0.0.1:{mock_port}/v1\n"
        "      api_key: sk-bench\n"
    )
    path = svc.workdir / "litellm.yaml"
    path.write_text(config)
    env = dict(os.environ)
    for key in ("DATABASE_URL", "LITELLM_MASTER_KEY", "REDIS_HOST", "REDIS_URL"):
        env.pop(key, None)
    env.update(
        {
            # no auth, like the vastllm proxy here (api_keys off); LiteLLM 1.106 refuses to
            # start without a master key unless told this is a local setup
            "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
            # no network at startup: the bundled model cost map, no telemetry, no schema work
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_TELEMETRY": "False",
            "DISABLE_SCHEMA_UPDATE": "True",
            "NO_PROXY": "127.0.0.1,localhost",
            "HF_HUB_OFFLINE": "1",
        }
    )
    argv = [
        str(cli), "--config", str(path), "--host", "127.0.0.1", "--port", str(port),
        "--num_workers", "1",
    ]  # fmt: skip
    svc.start("litellm", argv, env)


# -- measuring ------------------------------------------------------------------------------
def body(route: str, text: str) -> bytes:
    del route  # both routes accept this body (model, max_tokens, temperature, messages)
    return json.dumps(
        {
            "model": MODEL,
            "max_tokens": 32,
            "temperature": 0,
            "messages": [{"role": "user", "content": text}],
        }
    ).encode()


@dataclass
class Dist:
    p50: float
    p99: float
    n: int


def percentile(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    k = max(0, min(len(sorted_ms) - 1, round(q / 100 * len(sorted_ms) + 0.5) - 1))
    return sorted_ms[k]


def sequential(port: int, route: str, n: int, *, same: bool, warmup: int = 30) -> Dist:
    """n requests one after the other on one keep-alive connection; ms per request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    path = ROUTES[route]
    times: list[float] = []
    try:
        for i in range(warmup + n):
            text = "What is the capital of France?"
            if not same:
                text += f" (seq {time.time_ns()}-{i})"
            payload = body(route, text)
            t0 = time.perf_counter()
            conn.request("POST", path, payload, HEADERS)
            resp = conn.getresponse()
            data = resp.read()
            dt = (time.perf_counter() - t0) * 1000
            if resp.status != 200 or b"Paris" not in data:
                raise RuntimeError(f"{route} on :{port}: HTTP {resp.status}: {data[:300]!r}")
            if i >= warmup:
                times.append(dt)
    finally:
        conn.close()
    times.sort()
    return Dist(statistics.median(times), percentile(times, 99), len(times))


@dataclass
class WrkResult:
    rps: float
    p50: float
    p99: float
    requests: int
    wrong: int
    errors: int
    raw: str


RESULT_RE = re.compile(
    r"RESULT rps=([\d.]+) p50_ms=([\d.]+) p99_ms=([\d.]+) requests=(\d+) "
    r"non2xx_or_wrong=(\d+) errors=(\d+)"
)


def wrk(port: int, route: str, duration: int, *, same: bool, clients: int = 32) -> WrkResult:
    env = dict(os.environ, API=route, SAME="1" if same else "0", MODEL=MODEL)
    argv = [
        "wrk", "-t1", f"-c{clients}", f"-d{duration}s", "--latency", "-s", str(WRK_SCRIPT),
        f"http://127.0.0.1:{port}",
    ]  # fmt: skip
    out = subprocess.run(
        argv, env=env, capture_output=True, text=True, check=False, timeout=duration + 60
    )
    m = RESULT_RE.search(out.stdout)
    if m is None:
        raise RuntimeError(f"wrk printed no RESULT line:\n{out.stdout}\n{out.stderr}")
    return WrkResult(
        float(m[1]), float(m[2]), float(m[3]), int(m[4]), int(m[5]), int(m[6]), out.stdout
    )


def mock_counts(port: int) -> dict[str, int]:
    data = get_json(port, "/stats")
    assert isinstance(data, dict)  # noqa: S101 - the mock's own /stats shape
    return {str(k): int(v) for k, v in data.items()}


def mock_delta(port: int, before: dict[str, int]) -> str:
    """Which mock paths (other than /v1/models) served a case, e.g. `chat 24,310`."""
    short = {"/v1/chat/completions": "chat", "/v1/messages": "messages"}
    after = mock_counts(port)
    parts = [
        f"{short[p]} {after.get(p, 0) - before.get(p, 0):,}"
        for p in short
        if after.get(p, 0) != before.get(p, 0)
    ]
    return ", ".join(parts) or "none"


def get_json(port: int, path: str) -> object:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def cache_header(port: int, route: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", ROUTES[route], body(route, "What is the capital of France?"), HEADERS)
        resp = conn.getresponse()
        resp.read()
        return resp.getheader("x-vastllm-cache") or ""
    finally:
        conn.close()


@contextlib.contextmanager
def bench_lock() -> Iterator[None]:
    with LOCK.open("a") as f:
        t0 = time.monotonic()
        print(f"waiting for the exclusive lock {LOCK} ...", file=sys.stderr, flush=True)
        fcntl.flock(f, fcntl.LOCK_EX)
        print(f"lock held after {time.monotonic() - t0:.1f}s", file=sys.stderr, flush=True)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# -- report ---------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def machine_note() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    wrk_line = (wrk_v.stdout + wrk_v.stderr).splitlines()[0:1]
    redis_v = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.split()
    redis_ver = next((w.split("=")[1] for w in redis_v if w.startswith("v=")), "?")
    import aiohttp  # noqa: PLC0415 - only for its version string

    return (
        f"{os.cpu_count()} cores ({cpu}), CPython {platform.python_version()}, "
        f"aiohttp {aiohttp.__version__}, redis-server {redis_ver}, "
        f"{wrk_line[0].split(' [')[0] if wrk_line else 'wrk'}; every process on this machine, "
        f"all traffic on loopback; load average at start {load}"
    )


def fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=8, help="wrk seconds per case")
    ap.add_argument("--requests", type=int, default=400, help="sequential requests per case")
    ap.add_argument("--no-litellm", action="store_true", help="skip LiteLLM")
    ap.add_argument("--litellm-spec", default=LITELLM_SPEC, help="pip requirement for LiteLLM")
    ap.add_argument("--no-append", action="store_true", help="print only")
    ap.add_argument("--workers", type=int, default=1, help="worker processes of each vastllm proxy")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install -y wrk", file=sys.stderr)
        return 2
    if shutil.which("redis-server") is None:
        print("redis-server is missing: apt-get install -y redis-server", file=sys.stderr)
        return 2

    started = datetime.now(UTC)
    command = shlex.join([".venv/bin/python", "bench/proxy_bench.py", *sys.argv[1:]])
    note = machine_note()
    litellm_cli: Path | None = None
    litellm_error = ""
    if not args.no_litellm:
        try:
            litellm_cli = ensure_litellm(args.litellm_spec)
        except (RuntimeError, subprocess.CalledProcessError, OSError) as e:
            litellm_error = f"install failed: {e}"

    workdir = Path(tempfile.mkdtemp(prefix="vastllm-proxy-bench-"))
    svc = Services(workdir)
    names = ("mock", "redis", "proxy", "proxy_native", "proxy_cache", "litellm")
    ports = {k: free_port() for k in names}
    targets: dict[str, int] = {
        "direct": ports["mock"],
        "vastllm": ports["proxy"],
        "native": ports["proxy_native"],
    }
    seq: dict[tuple[str, str], Dist] = {}
    load: dict[tuple[str, str], WrkResult] = {}
    hit_seq: dict[str, Dist] = {}
    hit_load: dict[str, WrkResult] = {}
    upstream: dict[tuple[str, str], str] = {}
    try:
        svc.start("mock", [sys.executable, str(MOCK), str(ports["mock"])], python_env())
        svc.start(
            "redis",
            ["redis-server", "--port", str(ports["redis"]), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        )  # fmt: skip
        wait_http(f"http://127.0.0.1:{ports['mock']}/v1/models")
        start_proxy(svc, "proxy", ports["proxy"], ports["mock"], "", workers=args.workers)
        start_proxy(
            svc, "proxy_native", ports["proxy_native"], ports["mock"], "",
            workers=args.workers, kind="anthropic",
        )  # fmt: skip
        start_proxy(
            svc, "proxy_cache", ports["proxy_cache"], ports["mock"],
            f"redis://127.0.0.1:{ports['redis']}/0", workers=args.workers,
        )  # fmt: skip
        if litellm_cli is not None:
            start_litellm(svc, litellm_cli, ports["litellm"], ports["mock"])
        for name in ("proxy", "proxy_native", "proxy_cache"):
            wait_started(svc, name, ports[name], "/v1/models", 30)
        if litellm_cli is not None:
            try:
                wait_started(svc, "litellm", ports["litellm"], "/health/liveliness", 180)
                targets["litellm"] = ports["litellm"]
            except (RuntimeError, TimeoutError) as e:
                litellm_error = f"did not start: {e}"

        # sanity: every target answers both routes; the caching proxy really hits
        for name, port in list(targets.items()):
            for route in ROUTES:
                try:
                    sequential(port, route, 3, same=False, warmup=0)
                except (RuntimeError, OSError) as e:
                    if name != "litellm":
                        raise
                    litellm_error = f"answers wrongly on {route}: {e}"
                    del targets["litellm"]
                    break
        for route in ROUTES:
            cache_header(ports["proxy_cache"], route)
            if (status := cache_header(ports["proxy_cache"], route)) != "hit":
                raise RuntimeError(f"caching proxy answered {route} with x-vastllm-cache={status}")

        with bench_lock():
            for route in ROUTES:
                for name, port in targets.items():
                    print(f"sequential {name} {route} ...", file=sys.stderr, flush=True)
                    seq[(name, route)] = sequential(port, route, args.requests, same=False)
                print(f"sequential cache-hit {route} ...", file=sys.stderr, flush=True)
                hit_seq[route] = sequential(ports["proxy_cache"], route, args.requests, same=True)
            for route in ROUTES:
                for name, port in targets.items():
                    print(f"wrk {name} {route} ...", file=sys.stderr, flush=True)
                    before = mock_counts(ports["mock"])
                    load[(name, route)] = wrk(port, route, args.duration, same=False)
                    upstream[(name, route)] = mock_delta(ports["mock"], before)
                print(f"wrk cache-hit {route} ...", file=sys.stderr, flush=True)
                before = mock_counts(ports["mock"])
                hit_load[route] = wrk(ports["proxy_cache"], route, args.duration, same=True)
                upstream[("hit", route)] = mock_delta(ports["mock"], before)
    finally:
        svc.stop()

    report = render(
        started=started,
        command=command,
        note=note,
        litellm_error=litellm_error,
        litellm_ver=litellm_version() if litellm_cli is not None else "",
        duration=args.duration,
        n=args.requests,
        seq=seq,
        load=load,
        hit_seq=hit_seq,
        hit_load=hit_load,
        upstream=upstream,
        workers=args.workers,
    )
    print(report)
    if not args.no_append:
        with RESULTS.open("a", encoding="utf-8") as f:
            f.write("\n" + report)
        print(f"appended to {RESULTS}", file=sys.stderr)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def render(
    *,
    started: datetime,
    command: str,
    note: str,
    litellm_error: str,
    litellm_ver: str,
    duration: int,
    n: int,
    seq: dict[tuple[str, str], Dist],
    load: dict[tuple[str, str], WrkResult],
    hit_seq: dict[str, Dist],
    hit_load: dict[str, WrkResult],
    upstream: dict[tuple[str, str], str],
    workers: int = 1,
) -> str:
    procs = f", {workers} workers" if workers > 1 else ""
    has_litellm = any(name == "litellm" for name, _ in seq)
    names = ["direct", "vastllm", "native", *(["litellm"] if has_litellm else [])]
    label = {
        "direct": "mock direct",
        "vastllm": f"vastllm proxy (cache off{procs})",
        "native": f"vastllm proxy, Anthropic-kind upstream (cache off{procs})",
        "litellm": f"LiteLLM {litellm_ver} proxy (1 worker, `hosted_vllm/`)",
    }
    out: list[str] = [
        f"## proxy: vastllm vs LiteLLM vs direct ({started:%Y-%m-%d %H:%M} UTC)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {note}.  ",
        'Upstream: bench/mock_upstream.py (aiohttp, zero latency, answers "Paris is the '
        'capital of France."; it also answers `/v1/messages` itself, which is the direct '
        "baseline of the Anthropic route). Proxies forward to it as an OpenAI upstream, except "
        "the Anthropic-kind one: its `/v1/messages` is passed through to the mock's "
        "`/v1/messages`, its OpenAI route translated to Messages.  ",
        f"Sequential: one Python keep-alive client, {n} requests per case after 30 warm-up, "
        "unique bodies; added = target minus direct on the same route.  ",
        f"Concurrent: `wrk -t1 -c32 -d{duration}s --latency -s bench/wrk_post.lua` "
        "(unique bodies, `SAME=0`).  ",
        "Cache hits: vastllm proxy with `cache_mode: all` on a real `redis-server` (loopback), "
        "same body repeated (`SAME=1`), entry stored before measuring.",
        "",
    ]
    if litellm_error:
        out += [f"LiteLLM not measured: {litellm_error}".replace("\n", "  \n"), ""]
    for route, path in ROUTES.items():
        out += [
            f"### {route} route (`{path}`)",
            "",
            "| between client and mock | seq p50 ms | seq p99 ms | added p50 ms | added p99 ms "
            "| wrk req/s | wrk p50 ms | wrk p99 ms | wrk errors | mock calls during wrk |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        d = seq[("direct", route)]
        for name in names:
            s, w = seq[(name, route)], load[(name, route)]
            added = "-" if name == "direct" else f"{s.p50 - d.p50:+.2f}"
            added99 = "-" if name == "direct" else f"{s.p99 - d.p99:+.2f}"
            out.append(
                f"| {label[name]} | {s.p50:.2f} | {s.p99:.2f} | {added} | {added99} "
                f"| {w.rps:,.0f} | {w.p50:.2f} | {w.p99:.2f} | {w.wrong + w.errors} "
                f"| {upstream[(name, route)]} |"
            )
        h, hw = hit_seq[route], hit_load[route]
        out += [
            f"| vastllm proxy{procs}, cache hit (Redis) | {h.p50:.2f} | {h.p99:.2f} "
            f"| {h.p50 - d.p50:+.2f} | {h.p99 - d.p99:+.2f} | {hw.rps:,.0f} | {hw.p50:.2f} "
            f"| {hw.p99:.2f} | {hw.wrong + hw.errors} | {upstream[('hit', route)]} |",
            "",
        ]
    out += ["### Ratios and goals", ""]
    out += [
        "| goal | route | vastllm | LiteLLM | ratio | verdict |",
        "|---|---|---|---|---|---|",
    ]
    verdicts: list[str] = []
    for route in ROUTES:
        d = seq[("direct", route)]
        v_add = seq[("vastllm", route)].p50 - d.p50
        v_rps = load[("vastllm", route)].rps
        dw = load[("direct", route)]
        v_add_c = load[("vastllm", route)].p50 - dw.p50
        if has_litellm:
            l_add = seq[("litellm", route)].p50 - d.p50
            l_rps = load[("litellm", route)].rps
            l_add_c = load[("litellm", route)].p50 - dw.p50
            rows = [
                ("added p50 <= 1/3 LiteLLM's (sequential)", v_add, l_add, v_add / l_add,
                 v_add <= l_add * GOAL_LATENCY_RATIO, "ms"),
                ("added p50 <= 1/3 LiteLLM's (wrk -c32)", v_add_c, l_add_c, v_add_c / l_add_c,
                 v_add_c <= l_add_c * GOAL_LATENCY_RATIO, "ms"),
                ("req/s >= 3x LiteLLM's (wrk -c32)", v_rps, l_rps, v_rps / l_rps,
                 v_rps >= l_rps * GOAL_RPS_RATIO, "req/s"),
            ]  # fmt: skip
            for goal, v, lv, ratio, ok, unit in rows:
                digits = 0 if unit == "req/s" else 2
                out.append(
                    f"| {goal} | {route} | {v:,.{digits}f} {unit} | {lv:,.{digits}f} {unit} "
                    f"| {ratio:.3f} | **{verdict(ok)}** |"
                )
                verdicts.append(f"{verdict(ok)}  {goal} [{route}]")
        else:
            for goal in ("added p50 <= 1/3 LiteLLM's", "req/s >= 3x LiteLLM's"):
                out.append(f"| {goal} | {route} | - | not measured | - | **NOT MEASURED** |")
                verdicts.append(f"NOT MEASURED  {goal} [{route}]")
        h, hw = hit_seq[route], hit_load[route]
        ok = h.p99 <= GOAL_HIT_P99_MS
        out.append(
            f"| cache-hit p99 <= 2 ms (sequential) | {route} | {h.p99:.2f} ms | - | - "
            f"| **{verdict(ok)}** |"
        )
        verdicts.append(f"{verdict(ok)}  cache-hit p99 <= 2 ms, sequential [{route}]")
        ok_c = hw.p99 <= GOAL_HIT_P99_MS
        out.append(
            f"| cache-hit p99 <= 2 ms (wrk -c32) | {route} | {hw.p99:.2f} ms | - | - "
            f"| **{verdict(ok_c)}** |"
        )
        verdicts.append(f"{verdict(ok_c)}  cache-hit p99 <= 2 ms, wrk -c32 [{route}]")
        out.append(
            f"| (info) req/s vs direct mock | {route} | {v_rps:,.0f} req/s "
            f"| {dw.rps:,.0f} req/s (direct) | {v_rps / dw.rps:.3f} | - |"
        )
        if route == "anthropic":
            n_add = seq[("native", route)].p50 - d.p50
            ok_n = n_add <= v_add * GOAL_PASSTHROUGH_RATIO
            goal = "pass-through added p50 <= 1.05x translation's (sequential)"
            out.append(
                f"| {goal} | {route} | {n_add:.2f} ms | {v_add:.2f} ms (translation) "
                f"| {n_add / v_add:.3f} | **{verdict(ok_n)}** |"
            )
            verdicts.append(f"{verdict(ok_n)}  {goal} [{route}]")
    out += [
        "",
        "Notes: at 32 concurrent clients a request's latency is mostly queueing "
        "(Little's law: p50 ~ 32 / req/s), so the wrk p99 of cache hits measures throughput "
        "more than the hit path; the sequential p99 is the latency one request sees. "
        '"added" at -c32 is wrk p50 minus the direct mock\'s wrk p50.  ',
        '"mock calls during wrk" counts the requests the mock received per path while that '
        "case ran (wrk requests plus the few still in flight at its end).",
        "",
        "```",
        *verdicts,
        "```",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
