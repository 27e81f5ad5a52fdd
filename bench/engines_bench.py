"""Benchmark: vLLM vs the model API vs direct ``model.generate``, under 1..N concurrent clients.

Run on demand (not a test; it stops by itself, all traffic stays on 127.0.0.1):

    .venv/bin/python bench/engines_bench.py [--model DIR] [--engines vllm,model_api,generate]
        [--clients 1,4,8,16] [--max-tokens 64] [--requests-per-client 2]
        [--device cpu|cuda] [--dtype float32|bfloat16|float16] [--cpu-threads N]
        [--vllm-python PATH] [--model-api-python PATH] [--model-api-max-concurrent 8]
        [--json OUT] [--append]

One model (default: the test model, SmolLM2-135M-Instruct, from ``tests.model``), one dtype,
one fixed list of short, different chat prompts, ``temperature=0`` and exactly ``--max-tokens``
generated tokens per request on every engine:

- vllm: ``python -m vllm.entrypoints.openai.api_server`` (the vLLM venv's python: --vllm-python,
  else $VLLM_PYTHON, else .venv/vllm-python, else this python if it imports vllm);
- model_api: this project's ``python -m vastllm.model_api`` (``VASTLLM_MODEL_API_*`` settings,
  ``MAX_CONCURRENT = --model-api-max-concurrent``, ``MAX_QUEUE`` above the most clients);
- generate: transformers ``model.generate`` in this process, greedy, the same prompts (chat
  template applied) as batches of C left-padded prompts, ``min_new_tokens = max_new_tokens``
  (the equivalent of ``ignore_eos``).

Each server runs alone on a free loopback port (started, /health waited for, warmed up, then
stopped before the next engine starts); the warm-up is one request, then one round of up to 4
at once. vLLM gets ``--max-num-seqs`` = the most clients, ``--no-enable-prefix-caching`` (the
levels repeat the prompts; ``--vllm-prefix-caching`` keeps it) and, on CPU, ``--enforce-eager``
and ``VLLM_CPU_KVCACHE_SPACE=1``. ``--cpu-threads N`` sets the model API's and generate's torch
threads and vLLM's ``VLLM_CPU_OMP_THREADS_BIND``; by default each engine chooses. For each
client count C, C clients (asyncio + aiohttp; http.client in threads without aiohttp) each
send ``--requests-per-client`` streamed ``/v1/chat/completions`` requests one after the other
(``ignore_eos: true``, ``max_tokens``, ``stream_options.include_usage``); client c's r-th
request uses prompt ``(r * C + c) mod len(PROMPTS)``, the same on every engine. Per request:
TTFT = request sent to the first chunk with non-empty content; tokens = the stream's usage
(counted content chunks if a server sends none, marked in the table). Per C: total tok/s = all
completion tokens / wall time from the first request sent to the last one ended; TTFT p50 / p99
nearest-rank over all requests. For generate: C clients' r-th requests are one batch, the R
batches run one after the other; TTFT of a batch (each of its requests) = generate called to
its first new token (a streamer's second ``put``), total tok/s = C * R * max_tokens / the
batches' summed wall time.

An engine that is not installed (no vLLM python, ``import vllm`` or ``import vastllm.model_api``
fails, no torch/transformers here) is reported as missing; one that fails to start or to answer
is reported as failed, with the tail of its log. The goals (informative, never asserted):
on CPU, vLLM at 8 clients >= 1.5x the model API's total tok/s at 8 clients, and the model API at
8 clients >= its own figure at 1 client; on CUDA, vLLM >= 10x the model API at 32 clients.

The measuring part holds an exclusive ``fcntl.flock`` on /tmp/vastllm-bench.lock (the lock the
other benchmarks take). The Markdown section is printed; ``--append`` also appends it to
bench/RESULTS.md, ``--json`` writes every figure. Exit status 1 if an engine failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import math
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench_common
from bench_common import REPO, cpu_model, greedy_exactly, loadavg, percentile

VLLM_PYTHON_FILE = REPO / ".venv" / "vllm-python"
SERVED = "bench"
ENGINES = ("vllm", "model_api", "generate")
LOOPBACK = "127.0.0.1"
PROMPTS = [
    "Write a short poem about the sea at night.",
    "Explain in a few sentences how a bicycle gear works.",
    "List five uses of a paper clip.",
    "Describe the taste of a ripe mango to someone who never had one.",
    "What are the main differences between a lake and a pond?",
    "Tell a short story about a robot who learns to paint.",
    "Give three tips for keeping houseplants alive.",
    "Why is the sky blue? Answer simply.",
    "Summarise the rules of chess in a paragraph.",
    "Write a friendly note inviting a neighbour to dinner.",
    "How does a refrigerator keep food cold?",
    "Describe a busy market in a small town on a Saturday morning.",
    "What should I pack for a weekend hiking trip?",
    "Explain what a prime number is, with examples.",
    "Write a limerick about a cat who loves cheese.",
    "Describe how bread rises when it is baked.",
]


# -- results ----------------------------------------------------------------------------------


@dataclass
class Level:
    """One engine at one client count."""

    engine: str
    clients: int
    requests: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    ttft_s: list[float] = field(default_factory=list)
    tokens_from: str = "usage"  # usage | counted | generate
    exact_tokens: bool = True  # every request made exactly max_tokens

    @property
    def tok_s(self) -> float:
        return self.completion_tokens / self.wall_s if self.wall_s > 0 else float("nan")


@dataclass
class EngineReport:
    name: str
    status: str = "not run"  # measured | missing | failed | not run
    detail: str = ""
    version: str = ""
    levels: list[Level] = field(default_factory=list)
    seconds: float = 0.0


class EngineMissing(Exception):
    """The engine is not installed here."""


class EngineFailed(Exception):
    """The engine is installed but did not start or answer."""


def prompt_for(clients: int, client: int, rep: int) -> str:
    return PROMPTS[(rep * clients + client) % len(PROMPTS)]


# -- machine ----------------------------------------------------------------------------------


def mem_gib() -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.0f} GiB"
    return "?"


def gpu_names() -> str:
    """GPUs by nvidia-smi (no CUDA context in this process: vLLM checks free memory)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return ""
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return "; ".join(x.strip() for x in out.splitlines() if x.strip())


def probe_python(
    python: str, code: str, shown: str, env: dict[str, str] | None = None, why: str = ""
) -> str:
    """Run ``python -c code``; its stdout, or raise EngineMissing saying
    ``python -c 'shown' failed`` and why."""
    cmd = shlex.join([python, "-c", shown])
    extra = f"; {why}" if why else ""
    try:
        r = subprocess.run(
            [python, "-c", code],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as e:
        raise EngineMissing(f"not installed ({cmd} could not run: {e}{extra})") from None
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise EngineMissing(f"not installed ({cmd} failed: {last}{extra})")
    return r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""


def model_summary(model_dir: Path) -> str:
    try:
        cfg = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        return str(model_dir)
    weights = sum(
        f.stat().st_size for f in model_dir.iterdir() if f.suffix in (".safetensors", ".bin")
    )
    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
    shape = ", ".join(f"{k}={cfg[k]}" for k in keys if k in cfg)
    kv = cfg.get("num_key_value_heads")
    return (
        f"`{model_dir}` ({cfg.get('model_type', '?')}: {shape}"
        + (f", kv_heads={kv}" if kv else "")
        + f", vocab={cfg.get('vocab_size', '?')}; weights {weights / 2**30:.2f} GiB on disk)"
    )


# -- the client -------------------------------------------------------------------------------


@dataclass
class Reply:
    ttft_s: float
    wall_s: float
    completion_tokens: int
    from_usage: bool


class SseParser:
    """OpenAI chat-completion chunks, one ``data:`` line at a time."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.first: float | None = None
        self.chunks = 0
        self.usage: dict[str, Any] | None = None
        self.done = False

    def feed(self, raw: bytes) -> None:
        line = raw.strip()
        if not line.startswith(b"data:"):
            return
        data = line[5:].strip()
        if data == b"[DONE]":
            self.done = True
            return
        obj = json.loads(data)
        if "error" in obj:
            raise RuntimeError(f"error event in the stream: {obj['error']}")
        if obj.get("usage"):
            self.usage = obj["usage"]
        for choice in obj.get("choices") or []:
            if (choice.get("delta") or {}).get("content"):
                self.chunks += 1
                if self.first is None:
                    self.first = time.perf_counter() - self.started

    def reply(self) -> Reply:
        wall = time.perf_counter() - self.started
        if self.usage is not None and "completion_tokens" in self.usage:
            tokens, from_usage = int(self.usage["completion_tokens"]), True
        else:
            tokens, from_usage = self.chunks, False
        # a stream with no content at all (possible with random weights): its end stands in
        return Reply(self.first if self.first is not None else wall, wall, tokens, from_usage)


def request_body(prompt: str, max_tokens: int) -> dict[str, Any]:
    return {
        "model": SERVED,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


class Client:
    """Streamed chat completions against one server: aiohttp, else http.client in threads."""

    def __init__(self, port: int, timeout: float, kind: str = "auto") -> None:
        self.port, self.timeout = port, timeout
        self.url = f"http://{LOOPBACK}:{port}/v1/chat/completions"
        self.aiohttp: Any = None
        if kind != "stdlib":
            try:
                import aiohttp  # noqa: PLC0415 - optional: the stdlib fallback below

                self.aiohttp = aiohttp
            except ImportError:
                if kind == "aiohttp":
                    raise SystemExit("--client aiohttp but aiohttp is not installed") from None

    @property
    def kind(self) -> str:
        return (
            f"aiohttp {self.aiohttp.__version__}"
            if self.aiohttp
            else "http.client, one thread per client"
        )

    async def _one_aiohttp(self, session: Any, prompt: str, max_tokens: int) -> Reply:
        parser = SseParser(time.perf_counter())
        async with session.post(self.url, json=request_body(prompt, max_tokens)) as resp:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {(await resp.text())[:300]}")
            async for raw in resp.content:
                parser.feed(raw)
                if parser.done:
                    break
        return parser.reply()

    def _one_stdlib(self, prompt: str, max_tokens: int) -> Reply:
        body = json.dumps(request_body(prompt, max_tokens)).encode()
        parser = SseParser(time.perf_counter())
        conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=self.timeout)
        try:
            conn.request(
                "POST",
                "/v1/chat/completions",
                body=body,
                headers={"Content-Type": "application/json"},
            )
            resp = conn.getresponse()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:300]!r}")
            for raw in resp:
                parser.feed(raw)
                if parser.done:
                    break
        finally:
            conn.close()
        return parser.reply()

    async def level(self, clients: int, reps: int, max_tokens: int) -> tuple[float, list[Reply]]:
        """C clients, each ``reps`` requests in a row; (wall seconds, every reply)."""
        replies: list[Reply] = []
        if self.aiohttp:
            aiohttp = self.aiohttp
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=self.timeout)
            connector = aiohttp.TCPConnector(limit=0, force_close=False)
            async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

                async def one_client(c: int) -> None:
                    for r in range(reps):
                        prompt = prompt_for(clients, c, r)
                        replies.append(await self._one_aiohttp(session, prompt, max_tokens))

                started = time.perf_counter()
                await asyncio.gather(*(one_client(c) for c in range(clients)))
                return time.perf_counter() - started, replies
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=clients) as pool:

            def one_client_sync(c: int) -> None:
                for r in range(reps):
                    replies.append(self._one_stdlib(prompt_for(clients, c, r), max_tokens))

            started = time.perf_counter()
            await asyncio.gather(
                *(loop.run_in_executor(pool, one_client_sync, c) for c in range(clients))
            )
            return time.perf_counter() - started, replies


# -- servers ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


class Server:
    """A server in its own process group (vLLM spawns an engine core and workers), log in a
    temp file; stop() ends the whole group."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int) -> None:
        self.name, self.argv, self.env, self.port = name, argv, env, port
        self.log_path = Path(tempfile.mkstemp(prefix=f"engines-bench-{name}-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, timeout: float) -> float:
        """Seconds until /health answered 200; EngineFailed if it exits or never does."""
        if self.proc is None:
            raise EngineFailed("not started")
        started = time.monotonic()
        url = f"http://{LOOPBACK}:{self.port}/health"
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise EngineFailed(
                    f"exited with {self.proc.returncode} before /health answered; "
                    f"{self.log_path}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return time.monotonic() - started
            except urllib.error.HTTPError as e:  # the model API: 503 while loading or broken
                with contextlib.suppress(ValueError, OSError):
                    body = json.loads(e.read())
                    if isinstance(body, dict) and body.get("status") == "error":
                        raise EngineFailed(
                            f"/health says error: {body.get('reason')}; {self.log_path}:\n"
                            f"{self.log_tail()}"
                        ) from None
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise EngineFailed(
            f"/health did not answer 200 within {timeout:.0f} s; {self.log_path}:\n"
            f"{self.log_tail()}"
        )

    def stop(self) -> None:
        if self.proc is None:
            return
        pgid = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self.proc = None


def base_env() -> dict[str, str]:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("VIRTUAL_ENV", None)
    return env


def vllm_python(args: argparse.Namespace) -> tuple[str, str]:
    """The python to run vLLM with, and a note on where it came from if that is odd."""
    if args.vllm_python:
        return str(args.vllm_python), ""
    if os.environ.get("VLLM_PYTHON"):
        return os.environ["VLLM_PYTHON"], ""
    note = ""
    if VLLM_PYTHON_FILE.is_file():
        path = VLLM_PYTHON_FILE.read_text().strip()
        if path and Path(path).exists():
            return path, ""
        note = f"{VLLM_PYTHON_FILE.relative_to(REPO)} names {path or '(nothing)'}, missing"
    # a GPU host may have vllm next to torch; probed next
    return sys.executable, note


def vllm_server(args: argparse.Namespace) -> tuple[Server, str]:
    python, note = vllm_python(args)
    version = probe_python(
        python,
        "import vllm, torch; print(f'vllm {vllm.__version__}, torch {torch.__version__}')",
        "import vllm",
        why=note,
    )
    port = free_port()
    env = base_env()
    if args.device == "cpu":
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(args.vllm_cpu_kv_gib))
        if args.cpu_threads > 0:
            cores = f"0-{args.cpu_threads - 1}" if args.cpu_threads > 1 else "0"
            env.setdefault("VLLM_CPU_OMP_THREADS_BIND", cores)
    argv = [
        python,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(args.model),
        "--served-model-name",
        SERVED,
        "--max-model-len",
        str(args.max_model_len),
        "--dtype",
        args.dtype,
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--max-num-seqs",
        str(max(args.clients)),
    ]
    if args.vllm_enforce_eager:
        argv.append("--enforce-eager")
    if not args.vllm_prefix_caching:  # the levels repeat the prompts: no reuse across them
        argv.append("--no-enable-prefix-caching")
    argv += args.vllm_arg
    return Server("vllm", argv, env, port), f"{version}, python {python}"


def model_api_server(args: argparse.Namespace) -> tuple[Server, str]:
    python = str(args.model_api_python)
    env = base_env()
    src = str(REPO / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    version = probe_python(
        python,
        "import vastllm.model_api.cli, torch, transformers; "
        "print(f'torch {torch.__version__}, transformers {transformers.__version__}')",
        "import vastllm.model_api.cli",
        env,
        why=f"PYTHONPATH={src}; its dependencies: pip install -e {REPO}",
    )
    port = free_port()
    env.update(
        {
            "VASTLLM_MODEL_API_MODEL_PATH": str(args.model),
            "VASTLLM_MODEL_API_MODEL_ID": SERVED,
            "VASTLLM_MODEL_API_HOST": LOOPBACK,
            "VASTLLM_MODEL_API_PORT": str(port),
            "VASTLLM_MODEL_API_DTYPE": args.dtype,
            "VASTLLM_MODEL_API_DEVICE": args.device,
            "VASTLLM_MODEL_API_MAX_CONCURRENT": str(args.model_api_max_concurrent),
            "VASTLLM_MODEL_API_MAX_QUEUE": str(max(args.clients) + 1),
            "VASTLLM_MODEL_API_LOG_LEVEL": "info",
        }
    )
    env.pop("VASTLLM_MODEL_API_CONFIG", None)
    if args.cpu_threads > 0:
        env["VASTLLM_MODEL_API_CPU_THREADS"] = str(args.cpu_threads)
    argv = [python, "-m", "vastllm.model_api"]
    return Server("model_api", argv, env, port), f"{version}, python {python}"


def run_server_engine(args: argparse.Namespace, report: EngineReport) -> None:
    make = vllm_server if report.name == "vllm" else model_api_server
    server, report.version = make(args)
    client = Client(server.port, args.request_timeout, args.client)
    print(
        f"[{report.name}] {report.version}; starting on port {server.port} (log {server.log_path})",
        flush=True,
    )
    server.start()
    try:
        ready = server.wait_ready(args.ready_timeout)
        print(f"[{report.name}] ready after {ready:.0f} s; warm-up ...", flush=True)
        try:
            asyncio.run(client.level(1, 1, args.max_tokens))
            asyncio.run(client.level(min(4, max(args.clients)), 1, min(16, args.max_tokens)))
            for c in args.clients:
                wall, replies = asyncio.run(
                    client.level(c, args.requests_per_client, args.max_tokens)
                )
                level = Level(
                    report.name,
                    c,
                    requests=len(replies),
                    completion_tokens=sum(r.completion_tokens for r in replies),
                    wall_s=wall,
                    ttft_s=[r.ttft_s for r in replies],
                    tokens_from="usage" if all(r.from_usage for r in replies) else "counted",
                    exact_tokens=all(r.completion_tokens == args.max_tokens for r in replies),
                )
                report.levels.append(level)
                print_level(level)
        except Exception as e:  # any client error (aiohttp's, http.client's, ours) ends it
            raise EngineFailed(
                f"a request failed: {e!r}; {server.log_path}:\n{server.log_tail()}"
            ) from None
    finally:
        server.stop()
    print(f"[{report.name}] stopped; log {server.log_path}", flush=True)


def print_level(level: Level) -> None:
    print(
        f"  {level.engine:9s} {level.clients:3d} clients: {level.tok_s:8.1f} tok/s total, "
        f"TTFT p50 {percentile(level.ttft_s, 0.5) * 1000:7.0f} ms, "
        f"p99 {percentile(level.ttft_s, 0.99) * 1000:7.0f} ms "
        f"({level.requests} requests, {level.completion_tokens} tokens, {level.wall_s:.1f} s)",
        flush=True,
    )


# -- generate ---------------------------------------------------------------------------------


def run_generate(args: argparse.Namespace, report: EngineReport) -> None:
    try:
        import torch  # noqa: PLC0415 - only this engine needs torch in this process
        import transformers  # noqa: PLC0415
        from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415
        from transformers.generation.streamers import BaseStreamer  # noqa: PLC0415
    except ImportError as e:
        raise EngineMissing(f"not installed (import torch/transformers failed: {e})") from None
    report.version = (
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"python {sys.executable}"
    )
    if args.device == "cuda" and not torch.cuda.is_available():
        raise EngineFailed("--device cuda but torch.cuda.is_available() is False")
    if args.cpu_threads > 0:
        torch.set_num_threads(args.cpu_threads)
    print(f"[generate] {report.version}; loading {args.model} ...", flush=True)
    transformers.utils.logging.disable_progress_bar()
    tok: Any = AutoTokenizer.from_pretrained(args.model, local_files_only=True)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model: Any = AutoModelForCausalLM.from_pretrained(
        args.model,
        dtype=getattr(torch, args.dtype),
        local_files_only=True,
        **({"device_map": args.device} if args.device == "cuda" else {}),
    )
    model.to(args.device).eval()
    device = torch.device(args.device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    class FirstToken(BaseStreamer):
        """generate calls put() with the prompt first, then once per new token."""

        def __init__(self) -> None:
            self.calls = 0
            self.first: float | None = None

        def put(self, value: Any) -> None:
            self.calls += 1
            if self.calls == 2 and self.first is None:
                self.first = time.perf_counter()

        def end(self) -> None:
            pass

    def batch(prompts: list[str], n: int) -> tuple[float, float, int]:
        """(wall s, TTFT s, new tokens) of one left-padded batch."""
        texts = [
            tok.apply_chat_template(
                [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
            )
            for p in prompts
        ]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        streamer = FirstToken()
        sync()
        started = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                **enc,
                **greedy_exactly(n),
                pad_token_id=tok.pad_token_id,
                streamer=streamer,
            )
        sync()
        wall = time.perf_counter() - started
        made = int(out.shape[1] - enc["input_ids"].shape[1])
        ttft = (streamer.first - started) if streamer.first is not None else wall
        return wall, ttft, made * len(prompts)

    try:
        print("[generate] warm-up ...", flush=True)
        batch(PROMPTS[:1], args.max_tokens)
        batch(PROMPTS[: min(4, max(args.clients))], min(16, args.max_tokens))
        for c in args.clients:
            level = Level("generate", c, tokens_from="generate")
            for r in range(args.requests_per_client):
                wall, ttft, made = batch([prompt_for(c, i, r) for i in range(c)], args.max_tokens)
                level.requests += c
                level.completion_tokens += made
                level.wall_s += wall
                level.ttft_s += [ttft] * c
                level.exact_tokens &= made == c * args.max_tokens
            report.levels.append(level)
            print_level(level)
    finally:
        model = None  # frees the weights (and the GPU memory, with empty_cache)
        if device.type == "cuda":
            torch.cuda.empty_cache()


# -- the run ----------------------------------------------------------------------------------


def run_engine(args: argparse.Namespace, name: str) -> EngineReport:
    report = EngineReport(name)
    started = time.monotonic()
    try:
        if name == "generate":
            run_generate(args, report)
        else:
            run_server_engine(args, report)
        report.status = "measured"
    except EngineMissing as e:
        report.status, report.detail = "missing", str(e)
    except EngineFailed as e:
        report.status, report.detail = "failed", str(e)
    report.seconds = time.monotonic() - started
    if report.status != "measured":
        print(f"[{name}] {report.status}: {report.detail}", flush=True)
    return report


@dataclass
class Goal:
    text: str
    verdict: str  # PASS | FAIL | n/a
    detail: str


def goals(args: argparse.Namespace, reports: list[EngineReport]) -> list[Goal]:
    tok = {(lv.engine, lv.clients): lv.tok_s for r in reports for lv in r.levels}

    def check(text: str, a: tuple[str, int], b: tuple[str, int], factor: float) -> Goal:
        if a not in tok or b not in tok:
            missing = ", ".join(
                f"{e} at {c} client{'s' if c != 1 else ''}" for e, c in (a, b) if (e, c) not in tok
            )
            return Goal(text, "n/a", f"not measured: {missing}")
        x, y = tok[a], tok[b]
        ok = x >= factor * y
        ratio = x / y if y > 0 else float("inf")
        return Goal(text, "PASS" if ok else "FAIL", f"{x:.1f} vs {y:.1f} tok/s: {ratio:.2f}x")

    if args.device == "cuda":
        return [
            check(
                "vLLM at 32 clients >= 10x the model API at 32 clients",
                ("vllm", 32),
                ("model_api", 32),
                10.0,
            ),
        ]
    return [
        check(
            "vLLM at 8 clients >= 1.5x the model API at 8 clients",
            ("vllm", 8),
            ("model_api", 8),
            1.5,
        ),
        check(
            "model API at 8 clients >= model API at 1 client",
            ("model_api", 8),
            ("model_api", 1),
            1.0,
        ),
    ]


def ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.0f}"


def render(
    args: argparse.Namespace,
    reports: list[EngineReport],
    command: str,
    machine: dict[str, str],
    found: list[Goal],
) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    gpu = f"; GPU: {machine['gpu']}" if machine["gpu"] else ""
    lines = [
        f"## engines: vLLM vs model API vs `model.generate` under concurrent clients "
        f"({args.device}, {now} UTC)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine['cores']} cores ({machine['cpu']}), {machine['mem']} RAM{gpu}; "
        f"load average (1, 5, 15 min) before {machine['load_before']}, after "
        f"{machine['load_after']}. CPython {platform.python_version()}; client "
        f"{machine['client']}.  ",
        f"Model: {model_summary(args.model)}, dtype {args.dtype}, device {args.device}"
        + (f", torch threads {args.cpu_threads}" if args.cpu_threads > 0 else "")
        + ".  ",
        "Engines:",
    ]
    for r in reports:
        if r.status == "measured":
            what = r.version
            if r.name == "model_api":
                what += f"; `MAX_CONCURRENT={args.model_api_max_concurrent}`"
            if r.name == "vllm":
                flags = ["--enforce-eager"] if args.vllm_enforce_eager else []
                if not args.vllm_prefix_caching:
                    flags.append("--no-enable-prefix-caching")
                flags += args.vllm_arg
                what += "".join(f"; `{f}`" for f in flags)
            lines.append(f"- {r.name}: {what} ({r.seconds:.0f} s in all)")
        else:
            detail = r.detail.splitlines()[0] if r.detail else ""
            lines.append(f"- {r.name}: **{r.status}**: {detail}")
    rpc = args.requests_per_client
    plural = "s" if rpc != 1 else ""
    lines += [
        "",
        f"Work: {len(PROMPTS)} short different chat prompts, `max_tokens={args.max_tokens}`, "
        f"`temperature=0`, `ignore_eos=true` (generate: greedy, `min_new_tokens = "
        f"max_new_tokens`); per client count C, C clients each send {rpc} streamed "
        f"request{plural} in a row (generate: {rpc} batch{'es' if plural else ''} of C "
        "left-padded prompts). Total tok/s = all "
        "completion tokens / the level's wall time; TTFT = request sent to the first content "
        "chunk (generate: the batch's first new token), p50 / p99 nearest-rank. Engines run "
        "one after the other, each alone on the machine.",
        "",
        "| engine | clients | total tok/s | p50 TTFT ms | p99 TTFT ms |",
        "|---|---|---|---|---|",
    ]
    notes: set[str] = set()
    for r in reports:
        for lv in r.levels:
            mark = ""
            if lv.tokens_from == "counted":
                mark += " (c)"
                notes.add("(c): the server sent no usage; tokens counted as content chunks.")
            if not lv.exact_tokens:
                mark += " (!)"
                notes.add(f"(!): some requests did not make exactly {args.max_tokens} tokens.")
            lines.append(
                f"| {lv.engine} | {lv.clients} | {lv.tok_s:.1f}{mark} "
                f"| {ms(percentile(lv.ttft_s, 0.5))} | {ms(percentile(lv.ttft_s, 0.99))} |"
            )
    if not any(r.levels for r in reports):
        lines.append("| (no engine measured) | - | - | - | - |")
    lines.append("")
    for note in sorted(notes):
        lines.append(f"{note}  ")
    lines.append("Goals (informative only, never asserted):")
    lines += [f"- {g.text}: **{g.verdict}** ({g.detail})" for g in found]
    lines.append("")
    return "\n".join(lines)


def int_list(text: str) -> list[int]:
    try:
        counts = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("client counts are integers >= 1, e.g. 1,4,8,16")
    return counts


def engine_list(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    bad = [n for n in names if n not in ENGINES]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"engines are some of {','.join(ENGINES)}")
    return names


def shown_command() -> str:
    exe = Path(sys.executable)
    with contextlib.suppress(ValueError):
        exe = exe.relative_to(REPO)
    script = Path(__file__)
    with contextlib.suppress(ValueError):
        script = script.resolve().relative_to(REPO)
    return shlex.join([str(exe), str(script), *sys.argv[1:]])


def default_model() -> Path:
    sys.path.insert(0, str(REPO))
    try:
        from tests.model import ensure_test_model  # noqa: PLC0415 - only without --model
    except ImportError as e:
        raise SystemExit(f"no --model given and the test model is not available: {e}") from None
    return ensure_test_model()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    p.add_argument("--model", type=Path, help="model directory (default: the test model)")
    p.add_argument(
        "--engines",
        type=engine_list,
        default=list(ENGINES),
        help="comma-separated, run in this order (default: vllm,model_api,generate)",
    )
    p.add_argument(
        "--clients",
        type=int_list,
        default=[1, 4, 8, 16],
        help="comma-separated client counts (default 1,4,8,16)",
    )
    p.add_argument("--max-tokens", type=int, default=64, help="tokens per request (default 64)")
    p.add_argument(
        "--requests-per-client",
        type=int,
        default=2,
        help="requests each client sends in a row per level (default 2)",
    )
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument(
        "--dtype",
        choices=["float32", "bfloat16", "float16"],
        help="every engine's dtype (default: float32 on cpu, bfloat16 on cuda)",
    )
    p.add_argument(
        "--cpu-threads",
        type=int,
        default=0,
        help="torch threads of the model API and generate, vLLM's "
        "VLLM_CPU_OMP_THREADS_BIND=0-(N-1) on cpu; 0 (default): each engine's own (vLLM's "
        "'auto' binds one OpenMP thread per core and keeps one core for its frontend)",
    )
    p.add_argument(
        "--vllm-python",
        type=Path,
        help="python of the vLLM venv (default: $VLLM_PYTHON, .venv/vllm-python, else this python)",
    )
    p.add_argument(
        "--model-api-python",
        type=Path,
        default=Path(sys.executable),
        help="python to run vastllm.model_api with (default: this one)",
    )
    p.add_argument(
        "--model-api-max-concurrent",
        type=int,
        default=8,
        help="VASTLLM_MODEL_API_MAX_CONCURRENT (default 8)",
    )
    p.add_argument(
        "--max-model-len", type=int, default=2048, help="vLLM's --max-model-len (default 2048)"
    )
    p.add_argument(
        "--vllm-cpu-kv-gib",
        type=int,
        default=1,
        help="VLLM_CPU_KVCACHE_SPACE on cpu unless set (default 1)",
    )
    p.add_argument(
        "--vllm-enforce-eager",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="vLLM --enforce-eager (default: on for cpu, off for cuda)",
    )
    p.add_argument(
        "--vllm-prefix-caching",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="leave vLLM's prefix caching on (default off: every level repeats the prompts)",
    )
    p.add_argument(
        "--vllm-arg",
        action="append",
        default=[],
        help="extra vLLM server argument, repeatable (--vllm-arg=--gpu-memory-utilization=0.85)",
    )
    p.add_argument(
        "--ready-timeout",
        type=float,
        default=900.0,
        help="seconds a server may take to answer /health (default 900)",
    )
    p.add_argument(
        "--request-timeout",
        type=float,
        default=600.0,
        help="seconds a request may wait for its next bytes (default 600)",
    )
    p.add_argument(
        "--client",
        choices=["auto", "aiohttp", "stdlib"],
        default="auto",
        help="HTTP client: aiohttp (auto: when installed) or http.client in threads",
    )
    p.add_argument("--json", type=Path, help="write every figure to this JSON file")
    p.add_argument("--append", action="store_true", help="append the section to bench/RESULTS.md")
    args = p.parse_args(argv)
    if args.max_tokens < 1 or args.requests_per_client < 1:
        p.error("--max-tokens and --requests-per-client must be >= 1")
    if args.dtype is None:
        args.dtype = "bfloat16" if args.device == "cuda" else "float32"
    if args.vllm_enforce_eager is None:
        args.vllm_enforce_eager = args.device == "cpu"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shown_command()
    args.model = (args.model or default_model()).resolve()
    if not (args.model / "config.json").is_file():
        print(f"error: {args.model} has no config.json", file=sys.stderr)
        return 2
    # SIGTERM ends the run like Ctrl-C: the finally blocks stop the servers
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    machine = {
        "cores": str(len(os.sched_getaffinity(0))),
        "cpu": cpu_model(),
        "mem": mem_gib(),
        "gpu": gpu_names() if args.device == "cuda" else "",
        "client": Client(0, 1, args.client).kind,
    }
    started = time.monotonic()
    with bench_common.bench_lock():
        machine["load_before"] = loadavg()
        reports = [run_engine(args, name) for name in args.engines]
        machine["load_after"] = loadavg()
    found = goals(args, reports)
    section = render(args, reports, command, machine, found)
    print()
    print(section)
    if args.json:
        data = {
            "command": command,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "machine": machine,
            "engines": [
                {
                    **{k: v for k, v in asdict(r).items() if k != "levels"},
                    "levels": [
                        {
                            **asdict(lv),
                            "tok_s": lv.tok_s,
                            "ttft_p50_s": percentile(lv.ttft_s, 0.5),
                            "ttft_p99_s": percentile(lv.ttft_s, 0.99),
                        }
                        for lv in r.levels
                    ],
                }
                for r in reports
            ],
            "goals": [asdict(g) for g in found],
            "markdown": section,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.append:
        bench_common.append_result(section)
    missing = [r.name for r in reports if r.status == "missing"]
    failed = [r.name for r in reports if r.status == "failed"]
    print(
        f"took {time.monotonic() - started:.0f} s; measured: "
        f"{', '.join(r.name for r in reports if r.status == 'measured') or 'none'}"
        + (f"; missing: {', '.join(missing)}" if missing else "")
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
