"""Benchmark: model API overhead, ``/v1/chat/completions`` vs ``model.generate`` in-process.

Run on demand (not a test; it stops by itself, all traffic stays on 127.0.0.1):

    .venv/bin/python bench/model_api_bench.py [--tokens 128] [--reps 5] [--threads 1]
                                              [--dtype float32] [--no-append]
    .venv/bin/python bench/model_api_bench.py --clients 1,4,8 [--max-concurrent 8]
                                              [--baseline-src DIR] [--label TEXT] [...]

One run, one model (the real test model, SmolLM2-135M-Instruct, from ``tests.model``), one dtype,
one torch thread count, one chat prompt, exactly ``--tokens`` generated tokens on every side:

- direct: transformers ``model.generate`` (greedy) in this process, with
  ``min_new_tokens = max_new_tokens = N`` so EOS cannot end it early;
- API: ``python -m vastllm.model_api`` as a subprocess on a free loopback port, called through
  the official ``openai`` SDK, sequential requests, ``temperature=0``, ``max_tokens=N`` and
  ``ignore_eos=true``; non-stream and stream (``stream_options.include_usage``). Tokens/s is
  usage.completion_tokens over the client's wall time of the whole request; for the stream we
  also note the time to the first content chunk.

After one warm-up of each kind, the three kinds run interleaved (order rotated every repetition)
so that a noisy neighbour hits all of them alike; medians are reported. The server's own log
line per generation (decode-loop time) is parsed too, to split the overhead into "decode loop vs
generate" and "HTTP/SSE around it".

With ``--clients``, the other question instead: total throughput under load. One server with
``max_concurrent = --max-concurrent`` (``max_queue`` large enough that nobody gets a 429); for
each client count C, rounds of C streamed requests sent at once (``ignore_eos``, exactly N
tokens each), rounds of every C interleaved (order rotated) ``--reps`` times. Total tok/s of a
round = all completion tokens / the round's wall time; TTFT (request sent to first content
chunk) of every request gives p50 and p99. Goal: total tok/s at every C >= at C = 1.
``--baseline-src DIR`` adds a second server run from another source tree (``PYTHONPATH``; e.g.
``git archive HEAD src | tar -x -C /tmp/old`` gives ``/tmp/old/src``), both loaded at once and
every round run on each in turn, so that a noisy neighbour hits both alike. ``--threads 0``
leaves the server's thread count at its default (torch's choice).

The measuring part (loading the direct model, starting the server, all requests) holds an
exclusive ``fcntl.flock`` on /tmp/vastllm-bench.lock, so it never overlaps another benchmark
that takes the same lock. The Markdown section is printed and appended to bench/RESULTS.md in
one write (unless ``--no-append``).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import openai  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from bench_common import (  # noqa: E402 - bench/, this script's folder, is on sys.path
    append_result,
    bench_lock,
    cpu_model,
    greedy_exactly,
    loadavg,
    percentile,
)
from openai.types.chat import (  # noqa: E402
    ChatCompletionMessageParam,
    ChatCompletionStreamOptionsParam,
)
from tests.model import ensure_test_model  # noqa: E402
from tests.support import free_port, wait_http  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

GOAL = 0.95
MESSAGES: list[ChatCompletionMessageParam] = [
    {
        "role": "user",
        "content": "Write a long, detailed story about a lighthouse keeper who finds a map "
        "in a bottle. Describe the sea, the weather and every step of the journey.",
    }
]
# "generation length: prompt=40 completion=128 in 3.21s (39.9 tok/s)" (service.py)
ENGINE_LOG = re.compile(r"generation \w+: prompt=(\d+) completion=(\d+) in ([\d.]+)s")


@dataclass
class Series:
    """Per-repetition measurements of one kind of run."""

    tok_s: list[float] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)
    engine_tok_s: list[float] = field(default_factory=list)
    ttft_s: list[float] = field(default_factory=list)

    @staticmethod
    def med(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")


# -- direct -----------------------------------------------------------------------------------


class Direct:
    """The model in this process, called the way a user of transformers would."""

    def __init__(self, model_dir: Path, dtype: torch.dtype) -> None:
        tokenizer: Any = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model: Any = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=dtype, local_files_only=True
        )
        model.eval()
        self.tokenizer, self.model = tokenizer, model
        # exactly as the API tokenizes a chat (engine.encode_chat)
        text = self.tokenizer.apply_chat_template(
            MESSAGES, tokenize=False, add_generation_prompt=True
        )
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        self.input_ids = torch.tensor([ids], dtype=torch.long)
        self.prompt_tokens = len(ids)

    def run(self, n: int) -> tuple[float, str]:
        """Generate exactly n tokens greedily; (wall seconds, text)."""
        eos = self.model.generation_config.eos_token_id
        started = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=self.input_ids,
                attention_mask=torch.ones_like(self.input_ids),
                **greedy_exactly(n),
                pad_token_id=eos if isinstance(eos, int) else None,
            )
        wall = time.perf_counter() - started
        made = out.shape[1] - self.prompt_tokens
        if made != n:
            raise RuntimeError(f"direct generate made {made} tokens, wanted {n}")
        text = self.tokenizer.decode(out[0, self.prompt_tokens :], skip_special_tokens=True)
        return wall, str(text)


# -- API --------------------------------------------------------------------------------------


class ApiServer:
    """``python -m vastllm.model_api`` on a free loopback port; its log in a temp file."""

    def __init__(
        self,
        model_dir: Path,
        dtype: str,
        threads: int,
        extra_env: dict[str, str] | None = None,
        src: Path | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "VASTLLM_MODEL_API_MODEL_PATH": str(model_dir),
            "VASTLLM_MODEL_API_HOST": "127.0.0.1",
            "VASTLLM_MODEL_API_PORT": str(self.port),
            "VASTLLM_MODEL_API_DTYPE": dtype,
            "VASTLLM_MODEL_API_DEVICE": "cpu",
            "VASTLLM_MODEL_API_LOG_LEVEL": "info",
            **(extra_env or {}),
        }
        if threads > 0:  # 0: unset, the server's default (torch's choice)
            env["VASTLLM_MODEL_API_CPU_THREADS"] = str(threads)
        if src is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")]).rstrip(
                os.pathsep
            )
        self.log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix="model-api-bench-", suffix=".log", delete=False
        )
        self.log_path = Path(self.log_file.name)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vastllm.model_api"],
            cwd=REPO,
            env=env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        self._log_seen = 0

    def wait_ready(self) -> None:
        try:
            wait_http(f"{self.url}/health", timeout=300)
        except TimeoutError:
            raise RuntimeError(f"model API never became ready:\n{self.log()}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def new_engine_lines(self) -> list[tuple[int, int, float]]:
        """(prompt, completion, seconds) of generations logged since the last call."""
        deadline = time.monotonic() + 5
        while True:
            found = ENGINE_LOG.findall(self.log())
            if len(found) > self._log_seen or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        new = found[self._log_seen :]
        self._log_seen = len(found)
        return [(int(p), int(c), float(s)) for p, c, s in new]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log_file.close()


@dataclass
class ApiRun:
    wall_s: float
    completion_tokens: int
    prompt_tokens: int
    text: str
    ttft_s: float | None = None


def api_nonstream(client: openai.OpenAI, n: int) -> ApiRun:
    started = time.perf_counter()
    resp = client.chat.completions.create(
        model="bench",
        messages=MESSAGES,
        max_tokens=n,
        temperature=0,
        extra_body={"ignore_eos": True},
    )
    wall = time.perf_counter() - started
    usage = resp.usage
    if usage is None:
        raise RuntimeError("non-stream answer without usage")
    return ApiRun(
        wall, usage.completion_tokens, usage.prompt_tokens, resp.choices[0].message.content or ""
    )


def api_stream(client: openai.OpenAI, n: int) -> ApiRun:
    started = time.perf_counter()
    first: float | None = None
    parts: list[str] = []
    usage = None
    stream = client.chat.completions.create(
        model="bench",
        messages=MESSAGES,
        max_tokens=n,
        temperature=0,
        stream=True,
        stream_options=ChatCompletionStreamOptionsParam(include_usage=True),
        extra_body={"ignore_eos": True},
    )
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                if first is None:
                    first = time.perf_counter() - started
                parts.append(choice.delta.content)
    wall = time.perf_counter() - started
    if usage is None:
        raise RuntimeError("stream ended without a usage chunk")
    return ApiRun(wall, usage.completion_tokens, usage.prompt_tokens, "".join(parts), first)


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    direct: Series
    nonstream: Series
    stream: Series
    prompt_tokens: int
    same_text: dict[str, bool]
    load_before: str
    load_after: str
    seconds: float


def measure(args: argparse.Namespace, model_dir: Path) -> Outcome:
    n, reps = args.tokens, args.reps
    torch.set_num_threads(args.threads)
    started = time.monotonic()
    load_before = loadavg()
    direct = Direct(model_dir, getattr(torch, args.dtype))
    server = ApiServer(model_dir, args.dtype, args.threads)
    try:
        server.wait_ready()
        client = openai.OpenAI(
            base_url=f"{server.url}/v1", api_key="bench-no-key", max_retries=0, timeout=600
        )
        series = {"direct": Series(), "nonstream": Series(), "stream": Series()}
        texts: dict[str, str] = {}

        def do_direct(record: bool) -> None:
            wall, text = direct.run(n)
            texts["direct"] = text
            if record:
                series["direct"].tok_s.append(n / wall)
                series["direct"].wall_s.append(wall)

        def do_api(kind: str, call: Callable[[openai.OpenAI, int], ApiRun], record: bool) -> None:
            run = call(client, n)
            if run.completion_tokens != n:
                raise RuntimeError(f"{kind}: API made {run.completion_tokens} tokens, wanted {n}")
            if run.prompt_tokens != direct.prompt_tokens:
                raise RuntimeError(
                    f"{kind}: API prompt is {run.prompt_tokens} tokens, "
                    f"direct {direct.prompt_tokens}"
                )
            engine = server.new_engine_lines()
            texts[kind] = run.text
            if record:
                s = series[kind]
                s.tok_s.append(run.completion_tokens / run.wall_s)
                s.wall_s.append(run.wall_s)
                if engine:
                    _, made, secs = engine[-1]
                    s.engine_tok_s.append(made / secs)
                if run.ttft_s is not None:
                    s.ttft_s.append(run.ttft_s)

        steps: list[tuple[str, Callable[[bool], None]]] = [
            ("direct", do_direct),
            ("nonstream", lambda r: do_api("nonstream", api_nonstream, r)),
            ("stream", lambda r: do_api("stream", api_stream, r)),
        ]
        print("warm-up ...", flush=True)
        for _, step in steps:
            step(False)
        for i in range(reps):
            order = steps[i % 3 :] + steps[: i % 3]
            for name, step in order:
                step(True)
                last = series[name]
                print(f"  rep {i + 1}/{reps} {name:9s} {last.tok_s[-1]:6.1f} tok/s", flush=True)
    finally:
        server.stop()
    load_after = loadavg()
    same = {k: texts.get(k) == texts["direct"] for k in ("nonstream", "stream")}
    return Outcome(
        direct=series["direct"],
        nonstream=series["nonstream"],
        stream=series["stream"],
        prompt_tokens=direct.prompt_tokens,
        same_text=same,
        load_before=load_before,
        load_after=load_after,
        seconds=time.monotonic() - started,
    )


def section_head(title: str, command: str, load_before: str, load_after: str) -> list[str]:
    """A results section's first lines: title (with the time), command, machine."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    return [
        f"## model API: {title} ({now} UTC)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {os.cpu_count()} cores ({cpu_model()}), shared with other engineers' "
        f"processes; load average (1, 5, 15 min) before {load_before}, after "
        f"{load_after}. CPython {platform.python_version()}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}, openai {openai.__version__}.  ",
    ]


def fmt_list(values: list[float], digits: int = 1) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


def report(args: argparse.Namespace, out: Outcome, command: str) -> tuple[str, bool]:
    n = args.tokens
    d = Series.med(out.direct.tok_s)
    ns = Series.med(out.nonstream.tok_s)
    st = Series.med(out.stream.tok_s)
    r_ns, r_st = ns / d, st / d
    passed = r_ns >= GOAL and r_st >= GOAL

    def row(name: str, s: Series, ratio: float | None) -> str:
        engine = f"{Series.med(s.engine_tok_s):.1f}" if s.engine_tok_s else "-"
        r = f"{ratio:.1%}" if ratio is not None else "(baseline)"
        return (
            f"| {name} | {Series.med(s.tok_s):.1f} ({fmt_list(s.tok_s)}) "
            f"| {Series.med(s.wall_s):.2f} | {engine} | {r} |"
        )

    ttft = out.stream.ttft_s
    lines = [
        *section_head("overhead vs `model.generate`", command, out.load_before, out.load_after),
        f"Model: SmolLM2-135M-Instruct (`tests.model.ensure_test_model()`), dtype {args.dtype}, "
        f"CPU, torch threads = {args.threads} on both sides (`torch.set_num_threads` here, "
        f"`VASTLLM_MODEL_API_CPU_THREADS={args.threads}` for the server).  ",
        f"Work: one chat prompt ({out.prompt_tokens} tokens after the chat template), exactly "
        f"N = {n} generated tokens every time, greedy (direct: `min_new_tokens = "
        f"max_new_tokens = {n}`; API: `max_tokens={n}`, `temperature=0`, `ignore_eos=true`, "
        f"completion_tokens checked = {n}). One warm-up of each kind, then {args.reps} "
        "repetitions with the three kinds interleaved (order rotated); API requests "
        "sequential through the official `openai` SDK, server in a subprocess on a loopback "
        "port. tok/s = N / client wall time of the whole call (stream: request sent to "
        "`[DONE]`, TTFT included). Measured under the exclusive `/tmp/vastllm-bench.lock`.",
        "",
        "| path | tok/s median (runs) | wall s median | server decode-loop tok/s "
        "(its log) | API / direct |",
        "|---|---|---|---|---|",
        row("direct `model.generate`", out.direct, None),
        row("API non-stream", out.nonstream, r_ns),
        row("API stream", out.stream, r_st),
        "",
        f"Stream time to first token: median {Series.med(ttft) * 1000:.0f} ms "
        f"({fmt_list([t * 1000 for t in ttft], 0)} ms).  ",
        "Same greedy text as direct: "
        f"non-stream {'yes' if out.same_text['nonstream'] else 'no'}, "
        f"stream {'yes' if out.same_text['stream'] else 'no'}.  ",
        f"Verdict (goal: API >= {GOAL:.0%} of direct tok/s, both modes): "
        f"**{'PASS' if passed else 'FAIL'}** (non-stream {r_ns:.1%}, stream {r_st:.1%}).",
        "",
    ]
    return "\n".join(lines), passed


# -- throughput under load (--clients) --------------------------------------------------------


@dataclass
class LoadRow:
    """One server and client count: total tok/s per round, every request's TTFT and wall."""

    server: str
    clients: int
    tok_s: list[float] = field(default_factory=list)
    ttft_s: list[float] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)


@dataclass
class LoadOutcome:
    rows: list[LoadRow]
    prompt_tokens: int
    load_before: str
    load_after: str
    seconds: float


THIS, BASELINE = "this checkout", "baseline"


def one_round(client: openai.OpenAI, n: int, clients: int) -> tuple[float, list[ApiRun]]:
    """``clients`` streamed requests sent at once; (round wall seconds, their runs)."""
    barrier = threading.Barrier(clients + 1)
    runs: list[ApiRun | BaseException] = [RuntimeError("no result")] * clients

    def worker(i: int) -> None:
        barrier.wait()
        try:
            runs[i] = api_stream(client, n)
        except BaseException as e:  # reported below, on the main thread
            runs[i] = e

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    done: list[ApiRun] = []
    for run in runs:
        if isinstance(run, BaseException):
            raise RuntimeError(f"a request of a {clients}-client round failed: {run!r}")
        if run.completion_tokens != n:
            raise RuntimeError(f"API made {run.completion_tokens} tokens, wanted {n}")
        done.append(run)
    return wall, done


def measure_load(args: argparse.Namespace, model_dir: Path) -> LoadOutcome:
    n, counts = args.tokens, args.clients
    started = time.monotonic()
    load_before = loadavg()
    extra = {
        "VASTLLM_MODEL_API_MAX_CONCURRENT": str(args.max_concurrent),
        "VASTLLM_MODEL_API_MAX_QUEUE": str(max(counts) + 1),
    }
    sources: dict[str, Path | None] = {THIS: None}
    if args.baseline_src:
        sources[BASELINE] = args.baseline_src
    servers: dict[str, ApiServer] = {}
    rows = {(name, c): LoadRow(name, c) for name in sources for c in counts}
    prompt_tokens = 0
    try:
        for name, src in sources.items():
            servers[name] = ApiServer(model_dir, args.dtype, args.threads, extra, src)
        clients = {}
        for name, server in servers.items():
            server.wait_ready()
            clients[name] = openai.OpenAI(
                base_url=f"{server.url}/v1", api_key="bench-no-key", max_retries=0, timeout=3600
            )
        print("warm-up ...", flush=True)
        for client in clients.values():
            prompt_tokens = api_stream(client, n).prompt_tokens
        names = list(clients)
        for i in range(args.reps):
            order = counts[i % len(counts) :] + counts[: i % len(counts)]
            for c in order:
                # alternate which server goes first, so a noisy neighbour hits both alike
                for name in names if (i + counts.index(c)) % 2 == 0 else names[::-1]:
                    wall, runs = one_round(clients[name], n, c)
                    row = rows[name, c]
                    row.tok_s.append(sum(r.completion_tokens for r in runs) / wall)
                    row.ttft_s.extend(r.ttft_s for r in runs if r.ttft_s is not None)
                    row.wall_s.extend(r.wall_s for r in runs)
                    print(
                        f"  rep {i + 1}/{args.reps} {name:13s} {c:3d} clients "
                        f"{row.tok_s[-1]:6.1f} tok/s total",
                        flush=True,
                    )
    finally:
        for server in servers.values():
            server.stop()
    return LoadOutcome(
        rows=[rows[name, c] for name in sources for c in counts],
        prompt_tokens=prompt_tokens,
        load_before=load_before,
        load_after=loadavg(),
        seconds=time.monotonic() - started,
    )


def report_load(args: argparse.Namespace, out: LoadOutcome, command: str) -> tuple[str, bool]:
    n = args.tokens
    one = {r.server: Series.med(r.tok_s) for r in out.rows if r.clients == 1}
    ours = [r for r in out.rows if r.server == THIS]
    passed = THIS in one and all(Series.med(r.tok_s) >= one[THIS] for r in ours)
    label = f": {args.label}" if args.label else ""
    threads = (
        f"`VASTLLM_MODEL_API_CPU_THREADS={args.threads}`"
        if args.threads > 0
        else "`VASTLLM_MODEL_API_CPU_THREADS` unset (torch's choice: "
        f"{torch.get_num_threads()} threads in this process)"
    )
    servers = (
        f"two servers, this checkout and a baseline from `{args.baseline_src}` "
        "(`PYTHONPATH`), both loaded, rounds alternating between them"
        if args.baseline_src
        else "one server, this checkout"
    )
    lines = [
        *section_head(
            f"total throughput vs concurrent clients{label}",
            command,
            out.load_before,
            out.load_after,
        ),
        f"Server: {servers}; SmolLM2-135M-Instruct, dtype {args.dtype}, CPU, {threads}, "
        f"`MAX_CONCURRENT={args.max_concurrent}`, `MAX_QUEUE={max(args.clients) + 1}`.  ",
        f"Work: per client count C, rounds of C streamed chat requests sent at once through the "
        f"`openai` SDK ({out.prompt_tokens}-token prompt, `max_tokens={n}`, `temperature=0`, "
        f"`ignore_eos=true`, {n} tokens checked); {args.reps} rounds per C and server, "
        "interleaved. Total tok/s = the round's completion tokens / its wall time; TTFT = "
        "request sent to first content chunk, p50 / p99 nearest-rank over all the C's requests.",
        "",
        "| server | clients | total tok/s median (rounds) | TTFT p50 ms | TTFT p99 ms "
        "| request wall p50 s | vs 1 client |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in out.rows:
        med = Series.med(r.tok_s)
        base = one.get(r.server)
        vs = f"{med / base:.0%}" if base else "-"
        lines.append(
            f"| {r.server} | {r.clients} | {med:.1f} ({fmt_list(r.tok_s)}) "
            f"| {percentile(r.ttft_s, 0.5) * 1000:.0f} | {percentile(r.ttft_s, 0.99) * 1000:.0f} "
            f"| {percentile(r.wall_s, 0.5):.2f} | {vs} |"
        )
    lines += [
        "",
        "Verdict (goal: this checkout's total tok/s at every client count >= its own at 1 "
        f"client): **{'PASS' if passed else 'FAIL'}**.",
        "",
    ]
    return "\n".join(lines), passed


def client_counts(text: str) -> list[int]:
    counts = [int(x) for x in text.split(",") if x.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("client counts are integers >= 1, e.g. 1,4,8")
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    p.add_argument("--tokens", type=int, default=128, help="generated tokens per call (N)")
    p.add_argument("--reps", type=int, default=5, help="measured repetitions per kind")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads, both sides; with --clients, 0 leaves the server's default",
    )
    p.add_argument(
        "--dtype", choices=["float32", "bfloat16", "float16"], default="float32", help="both sides"
    )
    p.add_argument("--no-append", action="store_true", help="print only, do not touch RESULTS.md")
    p.add_argument(
        "--clients",
        type=client_counts,
        help="comma-separated client counts (e.g. 1,4,8): measure total throughput under load "
        "instead of the overhead against model.generate",
    )
    p.add_argument(
        "--max-concurrent", type=int, default=8, help="the server's max_concurrent (--clients)"
    )
    p.add_argument(
        "--baseline-src",
        type=Path,
        help="also measure a server run from this src directory, interleaved (--clients)",
    )
    p.add_argument("--label", default="", help="added to the section title (--clients)")
    args = p.parse_args(argv)
    command = shlex.join([".venv/bin/python", "bench/model_api_bench.py", *sys.argv[1:]])

    if args.threads < (0 if args.clients else 1):
        p.error("--threads must be >= 1 (or 0 with --clients: the server's default)")
    model_dir = ensure_test_model()
    if args.clients:
        with bench_lock():
            load = measure_load(args, model_dir)
        section, passed = report_load(args, load, command)
        seconds = load.seconds
    else:
        with bench_lock():
            out = measure(args, model_dir)
        section, passed = report(args, out, command)
        seconds = out.seconds
    print()
    print(section)
    if not args.no_append:
        append_result(section)
    print(f"took {seconds:.0f}s; verdict {'PASS' if passed else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
