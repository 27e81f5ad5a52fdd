"""``python -m vastllm.cascade`` as the role will call it, against the Ollama double, and the
transformers adapter (OpenAI-compatible chat, real ``python -m vastllm.fetch``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.cascade import recorded
from tests.support import REPO, free_port
from vastllm.cascade.candidates import Candidate
from vastllm.cascade.errors import EngineError
from vastllm.cascade.fetched import MARKER_NAME, TransformersEngine


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vastllm.cascade", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def write(path: Path, data: Any) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def test_cli_selects_then_reports_unchanged(start_double: Any, tmp_path: Path) -> None:
    double = start_double(pull_step_delay=0.01)
    facts = write(tmp_path / "facts.json", recorded.rtx2080super())  # as the role writes it
    active = tmp_path / "etc" / "active_model.json"
    args = ["--facts", facts, "--candidates", "default", "--ollama-url", double.url]
    args += ["--active-file", str(active), "--json", "--progress-seconds", "0"]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert (out["changed"], out["active"]["name"], out["pulled"]) == (
        True,
        "qwen2.5-coder:7b",
        ["qwen2.5-coder:7b"],
    )
    assert out["skipped"][0]["name"] == "qwen3-coder"
    assert json.loads(active.read_text())["base_url"] == double.url
    assert "qwen2.5-coder:7b: pulling manifest" in first.stderr
    assert "qwen2.5-coder:7b: success" in first.stderr

    second = run_cli(*args)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["changed"] is False
    assert double.pulls == 1


def test_cli_all_fail_exit_1_with_report(start_double: Any, tmp_path: Path) -> None:
    double = start_double(["qwen2.5-coder:1.5b"], tool_calls_as_text=True)
    facts = write(tmp_path / "facts.json", recorded.no_gpu())
    candidates = tmp_path / "c.yaml"
    candidates.write_text("- name: qwen2.5-coder:1.5b\n  cpu_ok: true\n- name: llama3.1:8b\n")
    done = run_cli(
        "--facts", facts, "--candidates", str(candidates), "--ollama-url", double.url,
        "--active-file", str(tmp_path / "a.json"),
    )  # fmt: skip
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[0] == "no candidate model passed the cascade:"
    assert lines[1].startswith("- qwen2.5-coder:1.5b: smoke test: tool-call probe failed: ")
    assert lines[2] == (
        "- llama3.1:8b: needs a GPU: the host is in CPU mode and the candidate is not marked cpu_ok"
    )
    assert done.stdout == ""
    assert not (tmp_path / "a.json").exists()


def test_cli_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run_cli().returncode == 2
    missing = run_cli("--facts", str(tmp_path / "none.json"))
    assert missing.returncode == 2
    assert "cannot read GPU facts file" in missing.stderr
    facts = write(tmp_path / "f.json", recorded.h100())
    bad = run_cli("--facts", facts, "--candidates", write(tmp_path / "c.json", [{"x": 1}]))
    assert bad.returncode == 2
    assert "needs a name" in bad.stderr
    assert run_cli("--help").returncode == 0


def test_transformers_adapter_smoke_over_openai(start_double: Any, tmp_path: Path) -> None:
    # the Ollama double stands in for an OpenAI-compatible server; /v1/models lists its
    # models with Ollama's full names, which the served-model check compares with
    double = start_double(["coder"], context_length=4096)
    engine = TransformersEngine(double.url + "/v1", tmp_path / "models")
    candidate = Candidate(
        "coder:latest",
        engine="transformers",
        source="s3://models/coder.tar.zst",
        context_length=4096,
    )
    assert not engine.is_present(candidate)
    (tmp_path / "models" / "coder_latest").mkdir(parents=True)
    (tmp_path / "models" / "coder_latest" / MARKER_NAME).write_text("{}")
    assert engine.is_present(candidate)
    assert engine.ensure(candidate, lambda p: None) is False

    from vastllm.cascade.facts import capacity_from_facts  # noqa: PLC0415
    from vastllm.cascade.select import CascadeOptions, run_cascade  # noqa: PLC0415

    result = run_cascade(
        [candidate],
        capacity_from_facts(recorded.h100()),
        {"transformers": engine},
        CascadeOptions(active_file=tmp_path / "a.json"),
    )
    # the active-model file names the wire protocol (what the proxy speaks) and the server
    assert (result.active["engine"], result.active["served_by"], result.active["base_url"]) == (
        "openai",
        "model_api",
        double.url + "/v1",
    )
    assert result.active["context_length"] == 4096


def test_transformers_fetch_failure_is_a_reason(tmp_path: Path) -> None:
    engine = TransformersEngine("http://127.0.0.1:1", tmp_path / "models")
    candidate = Candidate("coder", engine="transformers", source="s3://models/coder.tar.zst")
    lines: list[str] = []
    env = {
        "VASTLLM_FETCH_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "VASTLLM_FETCH_MAX_ATTEMPTS": "1",
        "VASTLLM_FETCH_CONNECT_TIMEOUT": "2",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    old = dict(os.environ)
    os.environ.update(env)
    try:
        try:
            engine.ensure(candidate, lambda p: lines.append(p.status))
        except EngineError as exc:
            reason = str(exc)
        else:
            raise AssertionError("fetch from a closed port succeeded")
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert reason.startswith("fetch failed: ")
    assert reason != "fetch failed: exit status 1"
    assert not engine.is_present(candidate)
