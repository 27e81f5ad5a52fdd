"""The test-model builder: cached by content, complete model directory, reproducible tarball."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from tests.model import build_test_model as builder
from tests.model import ensure_test_model


def test_model_directory_is_cached_and_complete() -> None:
    first = ensure_test_model()
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert ensure_test_model() == first  # second call: no rebuild
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    assert first.name == f"smollm2-135m-instruct-{builder.build_key()}"
    for name in builder.REQUIRED_FILES:
        assert (first / name).is_file(), name
    config = json.loads((first / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert not list(first.parent.glob(".tmp-*")), "no leftovers of a build"


def test_cache_root_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VASTLLM_CACHE", str(tmp_path))
    assert builder.model_dir().parent == tmp_path / "models"
    assert builder.tarball_path() == tmp_path / "models" / "smollm2-135m-instruct.tar.gz"


def test_tarball_is_reproducible_and_flat(tmp_path: Path) -> None:
    src = tmp_path / "model"
    src.mkdir()
    (src / "b.json").write_text("{}")
    (src / "a.safetensors").write_bytes(b"\0" * 1000)
    (src / ".hidden").write_text("not shipped")
    one = builder.write_tarball(src, tmp_path / "one.tar.gz")
    (src / "b.json").touch()  # a newer mtime must not change the archive
    two = builder.write_tarball(src, tmp_path / "two.tar.gz")
    assert one == two
    assert hashlib.sha256((tmp_path / "one.tar.gz").read_bytes()).hexdigest() == one
    sums = (tmp_path / "one.tar.gz.sha256").read_text()
    assert sums == f"{one}  one.tar.gz\n"
    with tarfile.open(tmp_path / "one.tar.gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["a.safetensors", "b.json"]
    assert all(m.mtime == 0 and m.uid == 0 and m.isfile() for m in members)
