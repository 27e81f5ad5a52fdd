"""``python -m vastllm.cascade``: choose, pull and smoke-test the model this host serves.

stdout: the result (JSON with --json, else one line). stderr: pull progress and, on failure, the
per-candidate report. Exit status: 0 selected, 1 no candidate passed, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from vastllm.busy import busy
from vastllm.cascade.active import DEFAULT_ACTIVE_FILE
from vastllm.cascade.candidates import DEFAULT, load_candidates
from vastllm.cascade.engine import EngineAdapter
from vastllm.cascade.errors import CascadeError, UsageError
from vastllm.cascade.facts import load_facts
from vastllm.cascade.fetched import MODEL_API_URL, VLLM_URL, TransformersEngine, VllmEngine
from vastllm.cascade.fit import FitPolicy
from vastllm.cascade.ollama import DEFAULT_URL as OLLAMA_URL
from vastllm.cascade.ollama import OllamaEngine
from vastllm.cascade.progress import ThrottledPrinter
from vastllm.cascade.select import CascadeOptions, run_cascade
from vastllm.cascade.smoke import SmokeConfig
from vastllm.cascade.units import parse_size
from vastllm.defaults import MODELS_DIR

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

EPILOG = """\
order:   a pinned model (--pin) is only pulled and smoke-tested; otherwise the still-present
         active model is tried first (unless --no-sticky), then the candidates in order
output:  with --json {"changed", "active": {name, engine, context_length, base_url, selected_at,
         skipped}, "pulled", "skipped", "previous"}; changed is true when the active model
         changed or a pull happened
exit:    0 selected, 1 no candidate passed (one line per candidate on stderr), 2 usage error
env:     VASTLLM_CASCADE_OLLAMA_URL, VASTLLM_CASCADE_MODEL_API_URL, VASTLLM_CASCADE_VLLM_URL,
         VASTLLM_CASCADE_MODEL_API_KEY (sent to the model API and vLLM)
"""


def _fraction(text: str) -> float:
    value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="python -m vastllm.cascade",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
        description="Pick the largest model that fits this host and answers: skip what cannot "
        "fit, pull, smoke-test (chat, tool call, long prompt), record the winner.",
    )
    p.add_argument("--facts", required=True, help="JSON file with the gpu_facts module's facts")
    p.add_argument("--candidates", default=DEFAULT, help="YAML/JSON candidate list or 'default'")
    p.add_argument("--ollama-url", default=env("VASTLLM_CASCADE_OLLAMA_URL", OLLAMA_URL))
    p.add_argument(
        "--model-api-url",
        default=env("VASTLLM_CASCADE_MODEL_API_URL", MODEL_API_URL),
        help="OpenAI-compatible URL of vastllm's model API (transformers candidates)",
    )
    p.add_argument(
        "--vllm-url",
        default=env("VASTLLM_CASCADE_VLLM_URL", VLLM_URL),
        help="URL of the vLLM server (vllm candidates)",
    )
    p.add_argument(
        "--vllm-api",
        choices=("anthropic", "openai"),
        default="anthropic",
        help="the API the proxy speaks to vLLM (vllm_api): the active model's engine",
    )
    p.add_argument("--models-dir", default=MODELS_DIR, help="where S3 models go")
    p.add_argument("--active-file", default=DEFAULT_ACTIVE_FILE)
    p.add_argument("--pin", help="use this model (vastllm_model): no cascade, still smoke-tested")
    p.add_argument(
        "--allow-cpu-offload",
        action="store_true",
        help="accept a model Ollama keeps partly in system RAM (size_vram < size)",
    )
    p.add_argument("--no-sticky", action="store_true", help="ignore the current active model")
    p.add_argument("--vram-headroom", type=_fraction, default=0.10, help="e.g. 0.1 or 10%%")
    p.add_argument("--disk-headroom", type=_fraction, default=0.05)
    p.add_argument("--ram-budget", type=_size, help="CPU mode RAM budget, e.g. '12 GB'")
    p.add_argument("--answer-timeout", type=float, default=120.0, help="seconds")
    p.add_argument("--context-timeout", type=float, default=600.0, help="seconds")
    p.add_argument("--no-tool-check", action="store_true", help="skip the tool-call probe")
    p.add_argument("--no-context-check", action="store_true", help="skip the long-prompt probe")
    p.add_argument("--progress-seconds", type=float, default=5.0)
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_OK if exc.code == 0 else EXIT_USAGE
    try:
        capacity = load_facts(args.facts)
        candidates = load_candidates(args.candidates)
        policy = FitPolicy(
            vram_headroom=args.vram_headroom,
            disk_headroom=args.disk_headroom,
            ram_budget_bytes=args.ram_budget,
        )
    except (UsageError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    api_key = os.environ.get("VASTLLM_CASCADE_MODEL_API_KEY") or None
    engines: dict[str, EngineAdapter] = {
        "ollama": OllamaEngine(args.ollama_url, allow_cpu_offload=args.allow_cpu_offload),
        "transformers": TransformersEngine(args.model_api_url, args.models_dir, api_key=api_key),
        "vllm": VllmEngine(args.vllm_url, args.models_dir, api_key=api_key, wire=args.vllm_api),
    }
    options = CascadeOptions(
        active_file=Path(args.active_file),
        pin=args.pin,
        policy=policy,
        smoke=SmokeConfig(
            answer_timeout=args.answer_timeout,
            tool_timeout=args.answer_timeout,
            context_timeout=args.context_timeout,
            check_tools=not args.no_tool_check,
            check_context=not args.no_context_check,
        ),
        sticky=not args.no_sticky,
        progress=ThrottledPrinter(args.progress_seconds),
    )
    try:
        with busy("cascade"):  # the idle watcher never stops the host under the cascade
            result = run_cascade(candidates, capacity, engines, options)
    except CascadeError as exc:
        print(str(exc), file=sys.stderr)
        if args.json:
            reasons = [{"name": n, "reason": r} for n, r in exc.reasons]
            print(json.dumps({"failed": True, "changed": False, "candidates": reasons}))
        return EXIT_FAILED
    except OSError as exc:
        print(f"error: cannot write the active-model file: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(result.as_json(), sort_keys=True))
    else:
        state = "changed" if result.changed else "unchanged"
        active = result.active
        server = active.get("served_by", active["engine"])
        print(f"{active['name']} ({server}, {active['context_length']} tokens) {state}")
    return EXIT_OK
