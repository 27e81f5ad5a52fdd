"""The model cascade with vllm candidates, against the package's real vLLM server: the candidate
vLLM serves passes the smoke tests and becomes the active model (wire protocol ``openai``,
``served_by: vllm``, vLLM's context length); a candidate vLLM does not serve, or one asking for
more context than vLLM gives, is skipped with the reason and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cascade import recorded
from tests.vllm.conftest import MAX_MODEL_LEN, SERVED_NAME, VllmServer
from vastllm.cascade.candidates import Candidate
from vastllm.cascade.errors import CascadeError
from vastllm.cascade.facts import capacity_from_facts
from vastllm.cascade.fetched import MARKER_NAME, VllmEngine
from vastllm.cascade.select import CascadeOptions, run_cascade
from vastllm.cascade.smoke import SmokeConfig

# the test model has no tool-call template vLLM would parse (the fixture starts vLLM without a
# tool parser); the long-prompt probe at 2048 tokens keeps the prefill short on 2 cores
SMOKE = SmokeConfig(answer_timeout=120, context_timeout=300, check_tools=False)


def candidate(name: str, context_length: int = 2048) -> Candidate:
    return Candidate(
        name,
        engine="vllm",
        source=f"s3://models/{name}.tar.zst",
        context_length=context_length,
        cpu_ok=True,
    )


def fetched(models: Path, name: str) -> None:
    """What ``python -m vastllm.fetch`` leaves behind: the directory and its marker."""
    (models / name).mkdir(parents=True, exist_ok=True)
    (models / name / MARKER_NAME).write_text(json.dumps({"url": f"s3://models/{name}.tar.zst"}))


def test_the_served_model_wins_and_another_is_skipped_with_the_fix(
    vllm: VllmServer, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    fetched(models, "qwen-coder-7b")
    fetched(models, SERVED_NAME)
    engine = VllmEngine(vllm.url, models)
    options = CascadeOptions(active_file=tmp_path / "active_model.json", smoke=SMOKE)
    capacity = capacity_from_facts(recorded.no_gpu())

    result = run_cascade(
        [candidate("qwen-coder-7b"), candidate(SERVED_NAME)], capacity, {"vllm": engine}, options
    )

    assert result.active["name"] == SERVED_NAME
    # engine: the API the proxy speaks to vLLM (the vllm role's vllm_api, anthropic by default)
    assert (result.active["engine"], result.active["served_by"]) == ("anthropic", "vllm")
    assert result.active["base_url"] == vllm.url
    assert result.changed
    assert not result.pulled
    [(name, reason)] = result.skipped
    assert name == "qwen-coder-7b"
    assert f"serves {SERVED_NAME}, not qwen-coder-7b" in reason
    assert "-e vastllm_engine=vllm -e model_fetch_url=s3://models/qwen-coder-7b.tar.zst" in reason
    written = json.loads(options.active_file.read_text())
    assert (written["name"], written["served_by"]) == (SERVED_NAME, "vllm")

    # sticky: the active model is tried first and nothing changes
    again = run_cascade(
        [candidate("qwen-coder-7b"), candidate(SERVED_NAME)], capacity, {"vllm": engine}, options
    )
    assert not again.changed
    assert again.skipped == ()
    assert json.loads(options.active_file.read_text()) == written


def test_a_context_longer_than_vllm_serves_is_skipped(vllm: VllmServer, tmp_path: Path) -> None:
    models = tmp_path / "models"
    fetched(models, SERVED_NAME)
    too_long = candidate(SERVED_NAME, context_length=2 * MAX_MODEL_LEN)
    with pytest.raises(CascadeError) as failure:
        run_cascade(
            [too_long],
            capacity_from_facts(recorded.no_gpu()),
            {"vllm": VllmEngine(vllm.url, models)},
            CascadeOptions(active_file=tmp_path / "active_model.json", smoke=SMOKE),
        )
    [(_, reason)] = failure.value.reasons
    assert reason == (
        f"context too small: the model supports {MAX_MODEL_LEN} tokens, "
        f"the candidate asks for {2 * MAX_MODEL_LEN}"
    )
    assert not (tmp_path / "active_model.json").exists()
