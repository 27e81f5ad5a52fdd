"""verify() finds missing or corrupt files; repair() re-fetches only those."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.fetch.conftest import SMALL_TRANSFER, Bucket
from tests.fetch.models import archive, read_tree, sha256sums, sharded_model, snapshot
from vastllm.fetch import (
    MARKER_NAME,
    ChecksumMismatch,
    DestinationError,
    fetch,
    repair,
    verify,
)

SHARD1 = "model-00001-of-00003.safetensors"
SHARD2 = "model-00002-of-00003.safetensors"


def _corrupt_in_place(path: Path) -> None:
    """Flip one byte, keeping the size (only sha256 can tell)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["tar.gz", "tar.zst", "prefix"])
def test_verify_then_repair_rewrites_only_the_damaged_files(
    bucket: Bucket, models_dir: Path, kind: str
) -> None:
    files = sharded_model()
    if kind == "prefix":
        url = bucket.put_files("p/", {**files, "SHA256SUMS": sha256sums(files)})
        files["SHA256SUMS"] = sha256sums(files)
    else:
        url = bucket.put(f"m.{kind}", archive(files, kind))
    dest = models_dir / "m"
    fetch(url, dest, transfer=SMALL_TRANSFER, s3=bucket.options)
    (dest / SHARD1).unlink()
    _corrupt_in_place(dest / SHARD2)
    (dest / "config.json").write_bytes(b"{}")  # a different size
    untouched = {
        name: value
        for name, value in snapshot(dest).items()
        if name not in {SHARD1, SHARD2, "config.json"}
    }
    sibling = snapshot(models_dir / "sibling")

    report = verify(dest)

    assert not report.ok
    assert report.missing == [SHARD1]
    assert sorted(report.corrupt) == sorted([SHARD2, "config.json"])
    assert any("sha256" in p and SHARD2 in p for p in report.problems)
    assert verify(dest, quick=True).corrupt == ["config.json"]  # sizes only: misses SHARD2

    counting = bucket.counting()
    result = repair(url, dest, transfer=SMALL_TRANSFER, client=counting.client)

    assert result.changed is True
    assert result.action == "repaired"
    assert result.repaired == sorted([SHARD1, SHARD2, "config.json"])
    assert read_tree(dest) == files
    assert verify(dest).ok
    after = snapshot(dest)
    assert {name: after[name] for name in untouched} == untouched  # same inode and mtime
    assert snapshot(models_dir / "sibling") == sibling
    assert [p.name for p in models_dir.iterdir() if ".partial-" in p.name] == []
    if kind == "prefix":  # only the three damaged objects were downloaded
        assert counting.calls["GetObject"] == sum(
            -(-len(files[n]) // SMALL_TRANSFER.chunk_size) for n in result.repaired
        )


def test_repair_of_a_healthy_install_downloads_nothing(bucket: Bucket, models_dir: Path) -> None:
    url = bucket.put("m.tar.gz", archive(sharded_model(), "tar.gz"))
    dest = models_dir / "m"
    fetch(url, dest, s3=bucket.options)
    counting = bucket.counting()

    result = repair(None, dest, client=counting.client)

    assert result.changed is False
    assert result.action == "verified"
    assert sum(counting.calls.values()) == 0


def test_repair_restores_a_deleted_symlink(bucket: Bucket, models_dir: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("model.safetensors")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"hello"))
        link = tarfile.TarInfo("current.safetensors")
        link.type = tarfile.SYMTYPE
        link.linkname = "model.safetensors"
        tf.addfile(link)
    url = bucket.put("l.tar", buf.getvalue())
    dest = models_dir / "l"
    fetch(url, dest, s3=bucket.options)
    (dest / "current.safetensors").unlink()

    assert verify(dest).missing == ["current.safetensors"]
    repair(url, dest, s3=bucket.options)

    assert (dest / "current.safetensors").read_bytes() == b"hello"


def test_repair_when_the_remote_changed_fetches_everything(
    bucket: Bucket, models_dir: Path
) -> None:
    url = bucket.put("m.tar", archive(sharded_model(shards=1), "tar"))
    dest = models_dir / "m"
    fetch(url, dest, s3=bucket.options)
    (dest / "config.json").unlink()
    newer = sharded_model(shards=2)
    bucket.put("m.tar", archive(newer, "tar"))

    result = repair(url, dest, s3=bucket.options)

    assert result.action == "fetched"
    assert read_tree(dest) == newer


def test_repair_refuses_a_tampered_archive(bucket: Bucket, models_dir: Path) -> None:
    """The marker's per-file sha256 is the reference: a changed member is not installed."""
    files = sharded_model(shards=1)
    url = bucket.put("m.tar", archive(files, "tar"))
    dest = models_dir / "m"
    fetch(url, dest, s3=bucket.options)
    marker_path = dest / MARKER_NAME
    marker = json.loads(marker_path.read_text())
    for record in marker["files"]:
        if record["path"] == "config.json":
            record["sha256"] = "f" * 64
    marker_path.write_text(json.dumps(marker))
    before = snapshot(dest)

    with pytest.raises(ChecksumMismatch, match=r"config\.json"):
        repair(url, dest, s3=bucket.options)
    assert snapshot(dest) == before


def test_verify_and_repair_need_a_marker(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    with pytest.raises(DestinationError, match=MARKER_NAME):
        verify(tmp_path / "m")
    with pytest.raises(DestinationError, match="nothing to repair"):
        repair("s3://b/m.tar", tmp_path / "m")
