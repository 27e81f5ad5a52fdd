"""A sha256 mismatch installs nothing, leaves no partial directory and keeps the old target."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fetch.conftest import SMALL_TRANSFER, Bucket
from tests.fetch.models import archive, sha256, sha256sums, sharded_model, snapshot
from vastllm.fetch import ChecksumMismatch, CorruptArchive, fetch

WRONG = "0" * 64


@pytest.fixture
def installed(bucket: Bucket, models_dir: Path) -> Path:
    """`models/m` already holds an older version installed by fetch."""
    dest = models_dir / "m"
    fetch(
        bucket.put("old.tar.gz", archive(sharded_model(shards=1), "tar.gz")),
        dest,
        s3=bucket.options,
    )
    return dest


def _only_expected_entries(models_dir: Path) -> list[str]:
    return sorted(p.name for p in models_dir.iterdir())


def test_sha256_argument_mismatch(bucket: Bucket, models_dir: Path, installed: Path) -> None:
    body = archive(sharded_model(), "tar.gz")
    url = bucket.put("new.tar.gz", body)
    before = snapshot(models_dir)

    with pytest.raises(ChecksumMismatch) as error:
        fetch(url, installed, sha256=WRONG, transfer=SMALL_TRANSFER, s3=bucket.options)

    message = str(error.value)
    assert url in message
    assert WRONG in message
    assert sha256(body) in message
    assert "--sha256" in message
    assert snapshot(models_dir) == before  # old target and sibling untouched, no partial left


def test_metadata_sha256_mismatch(bucket: Bucket, models_dir: Path, installed: Path) -> None:
    url = bucket.put("new.tar.zst", archive(sharded_model(), "tar.zst"), {"sha256": WRONG})
    before = snapshot(models_dir)

    with pytest.raises(ChecksumMismatch, match="x-amz-meta-sha256"):
        fetch(url, installed, transfer=SMALL_TRANSFER, s3=bucket.options)

    assert snapshot(models_dir) == before


def test_mismatch_on_a_fresh_target_creates_nothing(bucket: Bucket, models_dir: Path) -> None:
    url = bucket.put("new.tar", archive(sharded_model(), "tar"), {"sha256": WRONG})

    with pytest.raises(ChecksumMismatch):
        fetch(url, models_dir / "fresh", transfer=SMALL_TRANSFER, s3=bucket.options)

    assert not (models_dir / "fresh").exists()
    assert _only_expected_entries(models_dir) == [".fresh.fetch-lock", "sibling"]


def test_prefix_file_not_matching_sha256sums(bucket: Bucket, models_dir: Path) -> None:
    files = sharded_model(shards=2)
    sums = sha256sums(files)
    files["model-00002-of-00002.safetensors"] = (
        b"tampered" + files["model-00002-of-00002.safetensors"][8:]
    )
    url = bucket.put_files("p/", {**files, "SHA256SUMS": sums})

    with pytest.raises(ChecksumMismatch, match=r"model-00002-of-00002\.safetensors"):
        fetch(url, models_dir / "p", transfer=SMALL_TRANSFER, s3=bucket.options)

    assert _only_expected_entries(models_dir) == [".p.fetch-lock", "sibling"]


def test_corrupt_gzip_is_reported_and_cleaned_up(bucket: Bucket, models_dir: Path) -> None:
    body = bytearray(archive(sharded_model(), "tar.gz"))
    body[len(body) // 2] ^= 0xFF
    url = bucket.put("bad.tar.gz", bytes(body))

    with pytest.raises(CorruptArchive, match="gzip"):
        fetch(url, models_dir / "bad", transfer=SMALL_TRANSFER, s3=bucket.options)

    assert _only_expected_entries(models_dir) == [".bad.fetch-lock", "sibling"]
