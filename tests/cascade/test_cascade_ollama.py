"""The cascade against the Ollama test double on loopback (pulls, smoke tests, /api/ps)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.cascade import recorded
from tests.support import FIXTURES
from vastllm.cascade.candidates import Candidate, default_candidates
from vastllm.cascade.clients import OllamaChat, OpenAIChat
from vastllm.cascade.errors import CascadeError, EngineError
from vastllm.cascade.facts import capacity_from_facts
from vastllm.cascade.ollama import OllamaEngine, pull_error_reason
from vastllm.cascade.progress import PullProgress
from vastllm.cascade.select import CascadeOptions, CascadeResult, run_cascade
from vastllm.cascade.smoke import run_smoke

FIXED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
RECORDED = FIXTURES / "ollama-api"
STREAM_CUT = "pull model manifest: 200: stream error: stream ID 3; NO_ERROR; received from peer"
PROXY_HINT = (
    "the registry connection was cut mid-stream, typical behind a corporate proxy: check the "
    "proxy settings (HTTPS_PROXY / NO_PROXY of the ollama service, ollama_extra_env) and retry"
)


def cascade(
    double: Any,
    facts: dict[str, Any],
    tmp_path: Path,
    candidates: list[Candidate] | None = None,
    allow_cpu_offload: bool = False,
    **options: Any,
) -> CascadeResult:
    engine = OllamaEngine(double.url, allow_cpu_offload=allow_cpu_offload)
    return run_cascade(
        candidates if candidates is not None else default_candidates(),
        capacity_from_facts(facts),
        {"ollama": engine},
        CascadeOptions(active_file=tmp_path / "active_model.json", clock=lambda: FIXED, **options),
    )


def test_no_space_on_first_pull_selects_the_second(start_double: Any, tmp_path: Path) -> None:
    double = start_double(["qwen2.5-coder:7b"], pull_fail="no_space")
    result = cascade(double, recorded.h100(), tmp_path)
    assert result.active["name"] == "qwen2.5-coder:7b"
    assert result.changed
    assert result.pulled == ()
    ((name, reason),) = result.skipped
    assert name == "qwen3-coder"
    assert reason.startswith("pull failed: no space left on device (write ")
    assert double.pulls == 1
    written = json.loads((tmp_path / "active_model.json").read_text())
    assert written == {
        "name": "qwen2.5-coder:7b",
        "engine": "ollama",
        "served_by": "ollama",
        "context_length": 32768,
        "base_url": double.url,
        "source": "qwen2.5-coder:7b",
        "pinned": False,
        "selected_at": "2026-01-02T03:04:05+00:00",
        "skipped": [{"name": "qwen3-coder", "reason": reason}],
    }


def test_8gb_card_skips_the_first_without_pulling_then_rerun_keeps_it(
    start_double: Any, tmp_path: Path
) -> None:
    double = start_double()
    seen: list[PullProgress] = []
    result = cascade(double, recorded.rtx2080super(), tmp_path, progress=seen.append)
    assert result.active["name"] == "qwen2.5-coder:7b"
    assert result.pulled == ("qwen2.5-coder:7b",)
    assert result.changed
    assert result.skipped[0][0] == "qwen3-coder"
    assert result.skipped[0][1].startswith("too big: needs 24.0 GB VRAM")
    assert double.pulls == 1
    assert double.installed() == ["qwen2.5-coder:7b"]
    statuses = [p.status for p in seen]
    assert statuses[0] == "pulling manifest"
    assert statuses[-1] == "success"
    assert any(p.percent == 100.0 for p in seen)
    before = (tmp_path / "active_model.json").read_text()

    again = cascade(double, recorded.rtx2080super(), tmp_path)
    assert again.active["name"] == "qwen2.5-coder:7b"
    assert not again.changed
    assert again.pulled == ()
    assert again.skipped == ()  # tried first: it is the still-present active model
    assert double.pulls == 1
    assert (tmp_path / "active_model.json").read_text() == before


def test_rerun_sticks_to_the_active_model_even_if_a_bigger_one_would_fit(
    start_double: Any, tmp_path: Path
) -> None:
    double = start_double(["qwen2.5-coder:7b"], pull_fail="no_space")
    cascade(double, recorded.h100(), tmp_path)
    double.config(pull_fail="")
    again = cascade(double, recorded.h100(), tmp_path)
    assert (again.active["name"], again.changed, double.pulls) == ("qwen2.5-coder:7b", False, 1)
    fresh = cascade(double, recorded.h100(), tmp_path, sticky=False)
    assert (fresh.active["name"], fresh.changed, fresh.pulled) == (
        "qwen3-coder",
        True,
        ("qwen3-coder",),
    )


def test_tool_call_printed_as_text_fails_the_probe(start_double: Any, tmp_path: Path) -> None:
    double = start_double(["qwen2.5-coder:7b"], tool_calls_as_text=True)
    result = run_smoke(OllamaChat(double.url), "qwen2.5-coder:7b", 8192, num_ctx=8192)
    assert result.checks == ("answers",)
    assert result.reason is not None
    assert result.reason.startswith(
        "smoke test: tool-call probe failed: the model printed the tool call as text instead "
        'of a structured tool_calls entry: \'{"name":"get_weather"'
    )
    openai = run_smoke(OpenAIChat(double.url + "/v1"), "qwen2.5-coder:7b", 4096, num_ctx=None)
    assert "printed the tool call as text" in str(openai.reason)
    double.config(tool_calls_as_text=False)
    ok = run_smoke(OllamaChat(double.url), "qwen2.5-coder:7b", 8192, num_ctx=8192)
    assert (ok.reason, ok.checks) == (None, ("answers", "tool-call", "context"))


def test_truncation_is_detected_when_the_context_is_too_small(start_double: Any) -> None:
    double = start_double(["qwen2.5-coder:7b"], context_length=4096)
    native = OllamaChat(double.url)
    ok = run_smoke(native, "qwen2.5-coder:7b", 32768, num_ctx=32768)
    assert ok.reason is None
    cut = run_smoke(native, "qwen2.5-coder:7b", 32768, num_ctx=None)
    assert cut.reason == (
        "smoke test: prompt truncated: sent ~22937 tokens for a 32768-token context, the server "
        "counted 4096 (context from the server's own setting)"
    )
    small = run_smoke(native, "qwen2.5-coder:7b", 32768, num_ctx=8192)
    assert "the server counted 8192 (context from num_ctx 8192)" in str(small.reason)
    openai = run_smoke(OpenAIChat(double.url), "qwen2.5-coder:7b", 32768, num_ctx=None)
    assert "the server counted 4096" in str(openai.reason)


def test_model_with_a_shorter_native_context_is_skipped(start_double: Any, tmp_path: Path) -> None:
    double = start_double(["qwen2.5-coder:7b"], model_context_length=8192)
    short = [Candidate("qwen2.5-coder:7b", context_length=32768)]
    with pytest.raises(CascadeError) as caught:
        cascade(double, recorded.h100(), tmp_path, short)
    assert caught.value.reasons == [
        (
            "qwen2.5-coder:7b",
            "context too small: the model supports 8192 tokens, the candidate asks for 32768",
        )
    ]


def test_partial_offload_is_not_a_fit_unless_allowed(start_double: Any, tmp_path: Path) -> None:
    double = start_double(["qwen2.5-coder:7b", "qwen2.5-coder:1.5b"], vram_bytes=5 * 10**8)
    two = [c for c in default_candidates() if c.name.startswith("qwen2.5")]
    with pytest.raises(CascadeError) as caught:
        cascade(double, recorded.h100(), tmp_path, two)
    reasons = dict(caught.value.reasons)
    assert reasons["qwen2.5-coder:7b"].startswith(
        "partly offloaded to CPU: 0.5 GB of 4.4 GB in VRAM (11%)"
    )
    assert reasons["qwen2.5-coder:1.5b"].startswith("partly offloaded to CPU: 0.5 GB of ")
    assert reasons["qwen2.5-coder:7b"].endswith("(use --allow-cpu-offload to accept)")
    assert not (tmp_path / "active_model.json").exists()
    allowed = cascade(double, recorded.h100(), tmp_path, two, allow_cpu_offload=True)
    assert allowed.active["name"] == "qwen2.5-coder:7b"


def test_cpu_mode_picks_the_cpu_model_and_skips_the_residency_check(
    start_double: Any, tmp_path: Path
) -> None:
    double = start_double(vram_bytes=0)
    result = cascade(double, recorded.no_gpu(), tmp_path)
    assert result.active["name"] == "qwen2.5-coder:1.5b"
    assert [n for n, _ in result.skipped] == ["qwen3-coder", "qwen2.5-coder:7b"]
    assert double.installed() == ["qwen2.5-coder:1.5b"]


def test_pin_skips_the_cascade_but_is_smoke_tested(start_double: Any, tmp_path: Path) -> None:
    double = start_double()
    result = cascade(double, recorded.a5000(), tmp_path, pin="llama3.1:8b")
    # the recorded A5000 has 0.4 GB free: the cascade would skip it, the pin does not
    assert (result.active["name"], result.active["pinned"], result.pulled) == (
        "llama3.1:8b",
        True,
        ("llama3.1:8b",),
    )
    assert double.pulls == 1
    double.config(tool_calls_as_text=True)
    with pytest.raises(CascadeError) as caught:
        cascade(double, recorded.h100(), tmp_path, pin="mistral:7b")
    text = str(caught.value)
    assert text.startswith("the pinned model mistral:7b did not pass:\n- mistral:7b: smoke test:")
    assert "printed the tool call as text" in text
    assert json.loads((tmp_path / "active_model.json").read_text())["name"] == "llama3.1:8b"


def test_all_fail_report_names_every_candidate(start_double: Any, tmp_path: Path) -> None:
    double = start_double(pull_fail="network")
    with pytest.raises(CascadeError) as caught:
        cascade(double, recorded.rtx2080super(disk_free_bytes=3 * 10**9), tmp_path)
    assert str(caught.value).splitlines() == [
        "no candidate model passed the cascade:",
        "- qwen3-coder: too big: needs 24.0 GB VRAM (21.8 GB + 10% headroom), 8.0 GB free on "
        "the GPU",
        "- qwen2.5-coder:7b: not enough disk: download needs 4.9 GB (4.7 GB + 5% headroom), "
        "3.0 GB free",
        "- qwen2.5-coder:1.5b: pull failed: network error (max retries exceeded: EOF)",
        "- llama3.1:8b: too big: needs 10.4 GB VRAM (9.5 GB + 10% headroom), 8.0 GB free on the "
        "GPU",
    ]
    assert double.pulls == 1


def test_unreachable_engine_is_a_reason_not_a_crash(tmp_path: Path) -> None:
    from tests.support import free_port  # noqa: PLC0415

    engine = OllamaEngine(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(EngineError, match="cannot reach"):
        engine.installed()
    with pytest.raises(CascadeError) as caught:
        run_cascade(
            default_candidates()[:1],
            capacity_from_facts(recorded.h100()),
            {"ollama": engine},
            CascadeOptions(active_file=tmp_path / "a.json"),
        )
    assert "cannot reach http://127.0.0.1:" in caught.value.reasons[0][1]


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        # the recorded CLI line (ollama#4981) and what /api/pull streams for it
        ((RECORDED / "pull_cli_error_http2-stream-error_corporate-proxy_ollama-issue-4981.txt")
         .read_text().strip(),
         f"pull failed: network error (Error: {STREAM_CUT}): {PROXY_HINT}"),
        (STREAM_CUT, f"pull failed: network error ({STREAM_CUT}): {PROXY_HINT}"),
        ("max retries exceeded: EOF", "pull failed: network error (max retries exceeded: EOF)"),
        ("pull model manifest: file does not exist",
         "pull failed: the registry has no such model (pull model manifest: file does not exist)"),
        ("write /m/x-partial: no space left on device",
         "pull failed: no space left on device (write /m/x-partial: no space left on device)"),
    ],
)  # fmt: skip
def test_pull_error_reasons(message: str, reason: str) -> None:
    assert pull_error_reason(message) == reason


def test_stream_error_on_pull_is_a_network_reason_with_a_hint(
    start_double: Any, tmp_path: Path
) -> None:
    double = start_double(pull_fail="stream")
    with pytest.raises(CascadeError) as caught:
        cascade(double, recorded.h100(), tmp_path, [Candidate("qwen2.5-coder:7b")])
    assert caught.value.reasons == [
        ("qwen2.5-coder:7b", f"pull failed: network error ({STREAM_CUT}): {PROXY_HINT}")
    ]


def test_chat_404_for_a_model_not_pulled_says_so(start_double: Any) -> None:
    double = start_double()  # nothing pulled: /api/chat answers 404 "model '...' not found"
    not_pulled = (
        "smoke test: chat failed: the model qwen2.5-coder:7b is not pulled on this host "
        "(HTTP 404: model {}qwen2.5-coder:7b{} not found{}): pull it, or let recovery pull it "
        "(vastllm recover)"
    )
    native = run_smoke(OllamaChat(double.url), "qwen2.5-coder:7b", 8192, num_ctx=8192)
    assert (native.reason, native.checks) == (not_pulled.format("'", "'", ""), ())
    openai = run_smoke(OpenAIChat(double.url + "/v1"), "qwen2.5-coder:7b", 8192, num_ctx=None)
    assert openai.reason == not_pulled.format('"', '"', ", try pulling it first")
    for reason in (native.reason, openai.reason):
        assert "registry" not in str(reason)


def test_chat_404_in_the_recorded_older_wording(start_double: Any) -> None:
    body = json.loads(
        (RECORDED / "chat_error_404_model-not-found-try-pulling_v0.1.32_ollama-issue-3876.json")
        .read_text()
    )
    double = start_double(["llama3"], fail_status=404, fail_message=body["error"])
    result = run_smoke(OllamaChat(double.url), "llama3", 8192, num_ctx=8192)
    assert result.reason == (
        "smoke test: chat failed: the model llama3 is not pulled on this host (HTTP 404: model "
        "'llama3' not found, try pulling it first): pull it, or let recovery pull it "
        "(vastllm recover)"
    )
    double.config(fail_status=404, fail_message="no route")  # a 404 that names no model
    other = run_smoke(OllamaChat(double.url), "llama3", 8192, num_ctx=8192)
    assert str(other.reason).startswith("smoke test: chat failed: HTTP 404 from POST ")
    assert str(other.reason).endswith("/api/chat: no route")
