"""Fit decisions on GPU facts parsed from recorded nvidia-smi outputs."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cascade import recorded
from vastllm.cascade.candidates import Candidate, default_candidates
from vastllm.cascade.facts import capacity_from_facts
from vastllm.cascade.fit import FitPolicy, check_fit, plan

GB = 10**9


def reasons(facts: dict[str, Any], policy: FitPolicy | None = None, **kw: Any) -> dict[str, Any]:
    decisions = plan(default_candidates(), capacity_from_facts(facts), policy, **kw)
    return {d.candidate.name: d.reason for d in decisions}


def test_h100_fits_everything() -> None:
    assert set(reasons(recorded.h100()).values()) == {None}


def test_recorded_a5000_in_use_fits_nothing_and_says_why() -> None:
    got = reasons(recorded.a5000())
    assert got == {
        "qwen3-coder": "too big: needs 24.0 GB VRAM (21.8 GB + 10% headroom), "
        "0.4 GB free on the GPU",
        "qwen2.5-coder:7b": "too big: needs 7.7 GB VRAM (7.0 GB + 10% headroom), "
        "0.4 GB free on the GPU",
        "qwen2.5-coder:1.5b": "too big: needs 2.5 GB VRAM (2.3 GB + 10% headroom), "
        "0.4 GB free on the GPU",
        "llama3.1:8b": "too big: needs 10.4 GB VRAM (9.5 GB + 10% headroom), "
        "0.4 GB free on the GPU",
    }


def test_vram_held_by_the_engine_counts_as_free_up_to_the_card_size() -> None:
    capacity = capacity_from_facts(recorded.a5000())
    first = default_candidates()[0]
    assert check_fit(first, capacity, reclaimable_vram_bytes=24 * GB).fits
    # never more than the card: 24564 MiB = 25.8 GB
    big = Candidate("big", vram_bytes=24 * GB)
    decision = check_fit(big, capacity, reclaimable_vram_bytes=80 * GB)
    assert decision.reason == (
        "too big: needs 26.4 GB VRAM (24.0 GB + 10% headroom), 25.8 GB free on the GPU"
    )


def test_8gb_card_skips_only_the_first() -> None:
    got = reasons(recorded.rtx2080super())
    assert got["qwen3-coder"] == (
        "too big: needs 24.0 GB VRAM (21.8 GB + 10% headroom), 8.0 GB free on the GPU"
    )
    assert got["qwen2.5-coder:7b"] is None
    assert got["llama3.1:8b"] is not None  # 10.4 GB
    assert got["qwen2.5-coder:1.5b"] is None


def test_headroom_decides_on_an_idle_4090() -> None:
    facts = recorded.one_4090()  # 24214 MiB free = 25.4 GB
    assert reasons(facts)["qwen3-coder"] is None
    tight = reasons(facts, FitPolicy(vram_headroom=0.20))["qwen3-coder"]
    assert tight == "too big: needs 26.2 GB VRAM (21.8 GB + 20% headroom), 25.4 GB free on the GPU"
    assert reasons(facts, FitPolicy(vram_headroom=0.0))["qwen3-coder"] is None


def test_two_gpus_sum_for_ollama_largest_for_transformers() -> None:
    capacity = capacity_from_facts(recorded.two_4090())
    for engine, expected in (
        ("ollama", None),
        (
            "transformers",
            "too big: needs 33.0 GB VRAM (30.0 GB + 10% headroom), 25.8 GB free on the largest GPU",
        ),
    ):
        candidate = Candidate(
            "coder-30g",
            engine=engine,
            vram_bytes=30 * GB,
            source="s3://m/c.tar",  # type: ignore[arg-type]
        )
        assert check_fit(candidate, capacity).reason == expected
    too_big = Candidate("huge", vram_bytes=50 * GB)
    assert check_fit(too_big, capacity).reason == (
        "too big: needs 55.0 GB VRAM (50.0 GB + 10% headroom), 51.5 GB free on 2 GPUs together"
    )
    everyone_sums = FitPolicy(vram_policy={"ollama": "largest"})
    assert "on the largest GPU" in str(
        check_fit(Candidate("x", vram_bytes=30 * GB), capacity, everyone_sums).reason
    )


def test_disk_is_checked_unless_the_model_is_present() -> None:
    facts = recorded.h100(disk_free_bytes=10 * GB)
    got = reasons(facts)
    assert got["qwen3-coder"] == (
        "not enough disk: download needs 19.4 GB (18.5 GB + 5% headroom), 10.0 GB free"
    )
    assert got["qwen2.5-coder:7b"] is None
    present = reasons(facts, present=["qwen3-coder"])
    assert present["qwen3-coder"] is None
    strict = reasons(recorded.h100(disk_free_bytes=5 * GB), FitPolicy(disk_headroom=0.1))
    assert strict["qwen2.5-coder:7b"] == (
        "not enough disk: download needs 5.2 GB (4.7 GB + 10% headroom), 5.0 GB free"
    )


def test_cpu_mode_allows_only_cpu_ok_within_ram() -> None:
    got = reasons(recorded.no_gpu(ram_available_bytes=16 * GB))
    gpu_only = "needs a GPU: the host is in CPU mode and the candidate is not marked cpu_ok"
    assert got == {
        "qwen3-coder": gpu_only,
        "qwen2.5-coder:7b": gpu_only,
        "qwen2.5-coder:1.5b": None,
        "llama3.1:8b": gpu_only,
    }
    small_box = reasons(recorded.no_gpu(ram_available_bytes=2 * GB))
    assert small_box["qwen2.5-coder:1.5b"] == (
        "too big for CPU mode: needs 2.5 GB RAM (2.3 GB + 10% headroom), 2.0 GB RAM available"
    )
    budget = reasons(recorded.no_gpu(), FitPolicy(ram_budget_bytes=1 * GB))
    assert budget["qwen2.5-coder:1.5b"] == (
        "too big for CPU mode: needs 2.5 GB RAM (2.3 GB + 10% headroom), 1.0 GB RAM budget"
    )


def test_unknown_figures_are_not_checked_but_noted() -> None:
    facts = recorded.h100()
    facts["vastllm_gpu"]["gpus"][0]["memory_free_mib"] = None  # e.g. GB10: no memory figures
    facts["vastllm_host"]["disk_free_bytes"] = None
    decision = check_fit(default_candidates()[0], capacity_from_facts(facts))
    assert decision.fits
    assert decision.notes == (
        "free VRAM not reported by the GPU: not checked",
        "free disk not reported: not checked",
    )


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="negative"):
        FitPolicy(vram_headroom=-0.1)
    with pytest.raises(ValueError, match="sum or largest"):
        FitPolicy(vram_policy={"ollama": "half"})
