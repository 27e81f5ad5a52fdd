"""Candidate lists (default, YAML, JSON) and reading the gpu_facts facts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cascade import recorded
from vastllm.cascade.candidates import (
    Candidate,
    default_candidates,
    find_candidate,
    load_candidates,
    ollama_name,
)
from vastllm.cascade.errors import UsageError
from vastllm.cascade.facts import capacity_from_facts, load_facts
from vastllm.cascade.units import MIB, gb, parse_size


def test_default_order_and_sizes_from_the_issue() -> None:
    names = [(c.name, c.engine, gb(c.download_bytes)) for c in default_candidates()]
    assert names == [
        ("qwen3-coder", "ollama", "18.5 GB"),
        ("qwen2.5-coder:7b", "ollama", "4.7 GB"),
        ("qwen2.5-coder:1.5b", "ollama", "1.0 GB"),
        ("llama3.1:8b", "ollama", "4.7 GB"),
    ]
    first = default_candidates()[0]
    assert first.context_length >= 32768
    # 24 GB with the default 10% headroom: a 24 GB card.
    assert gb(first.vram_bytes * 1.1) == "24.0 GB"
    assert [c.name for c in default_candidates() if c.cpu_ok] == ["qwen2.5-coder:1.5b"]


def test_yaml_list_with_s3_candidate(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "candidates:\n"
        "  - name: big-coder\n"
        "    engine: transformers\n"
        "    source: s3://models/big-coder.tar.zst\n"
        "    download_bytes: 30 GB\n"
        "    vram_bytes: 40GiB\n"
        "    context_length: 65536\n"
        "    sha256: abc\n"
        "    quant: bf16\n"
        "  - name: qwen2.5-coder:1.5b\n"
        "    download_bytes: 986000000\n"
        "    cpu_ok: true\n"
    )
    big, small = load_candidates(path)
    assert big == Candidate(
        name="big-coder",
        engine="transformers",
        download_bytes=30 * 10**9,
        vram_bytes=40 * 1024**3,
        context_length=65536,
        source="s3://models/big-coder.tar.zst",
        sha256="abc",
        extra={"quant": "bf16"},
    )
    assert big.tag == "s3://models/big-coder.tar.zst"
    assert small.tag == "qwen2.5-coder:1.5b"
    assert small.cpu_ok
    assert small.download_bytes == 986000000


def test_json_list(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps([{"name": "llama3.1:8b", "vram_bytes": "9.5 GB"}]))
    (only,) = load_candidates(path)
    assert only.vram_bytes == 9_500_000_000
    assert only.context_length == 32768


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"name": "x", "engine": "sglang"}], "engine must be one of ollama, transformers, vllm"),
        ([{"name": "x", "engine": "vllm"}], "a vllm candidate needs source: s3://"),
        ([{"name": "x", "engine": "transformers"}], "needs source: s3://"),
        ([{"name": "x"}, {"name": "x"}], "listed twice"),
        ([{"name": "x", "vram_bytes": "lots"}], "not a size"),
        ([{"engine": "ollama"}], "needs a name"),
        ({"models": []}, "expected a list"),
    ],
)
def test_bad_lists_say_what_is_wrong(tmp_path: Path, entries: object, message: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(entries))
    with pytest.raises(UsageError, match=message):
        load_candidates(path)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read candidates file"):
        load_candidates(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yml"
    bad.write_text("candidates: [unclosed\n")
    with pytest.raises(UsageError, match="invalid YAML"):
        load_candidates(bad)


def test_names_match_with_implied_latest() -> None:
    assert ollama_name("qwen3-coder") == "qwen3-coder:latest"
    assert ollama_name("registry.ollama.ai/library/llama3.1:8b") == "llama3.1:8b"
    assert ollama_name("hf.co/org/model") == "hf.co/org/model:latest"
    found = find_candidate(default_candidates(), "qwen3-coder:latest")
    assert found is not None
    assert found.name == "qwen3-coder"
    assert find_candidate(default_candidates(), "mistral") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4.7 GB", 4_700_000_000), ("800MiB", 800 * MIB), (1024, 1024), ("12", 12), (2.5, 2)],
)
def test_parse_size(text: object, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["-1", -5, "4.7 parsecs", True, None])
def test_parse_size_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_facts_file_wrapped_as_ansible_prints_it(tmp_path: Path) -> None:
    path = tmp_path / "facts.json"
    path.write_text(json.dumps({"ansible_facts": recorded.two_4090()}))
    capacity = load_facts(path)
    assert capacity.gpu_mode
    assert [g.free_bytes for g in capacity.gpus] == [24563 * MIB, 24563 * MIB]
    assert capacity.disk_free_bytes == 500 * 10**9
    assert capacity.ram_available_bytes == 64 * 10**9


def test_host_figures_come_from_vastllm_host_only() -> None:
    facts = recorded.h100()
    facts["vastllm_gpu"]["disk_free_bytes"] = 1  # a stray copy in the GPU fact is not read
    capacity = capacity_from_facts(facts)
    assert capacity.disk_free_bytes == 500 * 10**9


@pytest.mark.parametrize("wrapped", [True, False], ids=["vastllm_gpu", "bare"])
def test_facts_file_of_an_older_role_has_the_host_inside_vastllm_gpu(
    tmp_path: Path, wrapped: bool
) -> None:
    split = recorded.a5000(disk_free_bytes=7 * 10**9)
    old = {**split["vastllm_gpu"], **split["vastllm_host"], "summary": "GPU mode: ..."}
    path = tmp_path / "facts.json"
    path.write_text(json.dumps({"vastllm_gpu": old} if wrapped else old))
    capacity = load_facts(path)
    assert capacity.gpu_mode
    assert (capacity.disk_free_bytes, capacity.ram_available_bytes) == (7 * 10**9, 64 * 10**9)
    assert capacity.summary == "GPU mode: ..."


def test_cpu_facts_have_no_gpus() -> None:
    capacity = capacity_from_facts(recorded.no_gpu())
    assert not capacity.gpu_mode
    assert capacity.gpus == ()


def test_facts_without_mode_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no 'mode'"):
        capacity_from_facts({"gpus": []})
    path = tmp_path / "f.json"
    path.write_text("{not json")
    with pytest.raises(UsageError, match="invalid JSON"):
        load_facts(path)
