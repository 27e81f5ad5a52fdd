"""Model layout detection, and incomplete models refused before they are installed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fetch.conftest import Bucket
from tests.fetch.models import archive, sharded_model
from vastllm.fetch import LayoutError, detect_layout, fetch


def _write(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_sharded_safetensors_with_tokenizer_and_chat_template(tmp_path: Path) -> None:
    layout = detect_layout(_write(tmp_path, sharded_model()))
    assert layout.kind == "sharded-safetensors"
    assert layout.weights == [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    assert layout.missing_shards == []
    assert layout.tokenizer_files == ["tokenizer.json", "tokenizer_config.json"]
    assert layout.has_config is True
    assert layout.has_chat_template is True
    assert layout.model_dir == ""


def test_sharded_safetensors_with_a_missing_shard(tmp_path: Path) -> None:
    files = sharded_model()
    del files["model-00003-of-00003.safetensors"]
    layout = detect_layout(_write(tmp_path, files))
    assert layout.missing_shards == ["model-00003-of-00003.safetensors"]


def test_single_safetensors_without_chat_template(tmp_path: Path) -> None:
    files = {
        "model.safetensors": b"w",
        "config.json": b"{}",
        "tokenizer.model": b"sp",
        "tokenizer_config.json": b'{"bos_token": "<s>"}',
    }
    layout = detect_layout(_write(tmp_path, files))
    assert layout.kind == "single-safetensors"
    assert layout.tokenizer_files == ["tokenizer.model", "tokenizer_config.json"]
    assert layout.has_chat_template is False


def test_chat_template_file(tmp_path: Path) -> None:
    files = {"model.safetensors": b"w", "chat_template.jinja": b"{{ messages }}"}
    assert detect_layout(_write(tmp_path, files)).has_chat_template is True


def test_pytorch_bin_single_and_sharded(tmp_path: Path) -> None:
    single = detect_layout(
        _write(tmp_path / "a", {"pytorch_model.bin": b"p", "config.json": b"{}"})
    )
    assert (single.kind, single.weights) == ("pytorch-bin", ["pytorch_model.bin"])
    index = {
        "weight_map": {
            "x": "pytorch_model-00001-of-00002.bin",
            "y": "pytorch_model-00002-of-00002.bin",
        }
    }
    sharded = detect_layout(
        _write(
            tmp_path / "b",
            {
                "pytorch_model.bin.index.json": json.dumps(index).encode(),
                "pytorch_model-00001-of-00002.bin": b"p",
            },
        )
    )
    assert sharded.kind == "pytorch-bin"
    assert sharded.missing_shards == ["pytorch_model-00002-of-00002.bin"]


def test_gguf_single_and_split(tmp_path: Path) -> None:
    single = detect_layout(_write(tmp_path / "a", {"qwen-q4_k_m.gguf": b"GGUF"}))
    assert (single.kind, single.weights, single.missing_shards) == (
        "gguf",
        ["qwen-q4_k_m.gguf"],
        [],
    )
    split = detect_layout(
        _write(tmp_path / "b", {"big-00001-of-00003.gguf": b"G", "big-00003-of-00003.gguf": b"G"})
    )
    assert split.kind == "gguf"
    assert split.missing_shards == ["big-00002-of-00003.gguf"]


def test_unknown_layout_is_reported_not_fatal(tmp_path: Path) -> None:
    layout = detect_layout(_write(tmp_path, {"README.md": b"hi"}))
    assert layout.kind == "unknown"
    assert layout.notes


def test_broken_index_is_a_layout_error(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="not a valid shard index"):
        detect_layout(_write(tmp_path, {"model.safetensors.index.json": b"{not json"}))


def test_fetch_refuses_a_model_whose_index_names_a_missing_shard(
    bucket: Bucket, models_dir: Path
) -> None:
    files = sharded_model()
    del files["model-00002-of-00003.safetensors"]
    url = bucket.put("broken.tar.gz", archive(files, "tar.gz"))

    with pytest.raises(LayoutError, match=r"model-00002-of-00003\.safetensors"):
        fetch(url, models_dir / "broken", s3=bucket.options)

    assert sorted(p.name for p in models_dir.iterdir()) == [".broken.fetch-lock", "sibling"]


@pytest.mark.parametrize(
    ("files", "kind"),
    [
        ({"model.safetensors": b"w", "config.json": b"{}"}, "single-safetensors"),
        ({"pytorch_model.bin": b"p", "config.json": b"{}"}, "pytorch-bin"),
        ({"m-Q4_K_M.gguf": b"GGUF"}, "gguf"),
    ],
)
def test_fetch_reports_the_layout(
    bucket: Bucket, models_dir: Path, files: dict[str, bytes], kind: str
) -> None:
    url = bucket.put("m.tar.zst", archive(files, "tar.zst", prefix="Model-Name/"))
    result = fetch(url, models_dir / "m", s3=bucket.options)
    assert result.layout["kind"] == kind
    assert result.layout["model_dir"] == "Model-Name"
