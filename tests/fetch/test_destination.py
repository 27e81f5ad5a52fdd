"""What is already at or beside the target is never lost."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from tests.fetch.conftest import Bucket
from tests.fetch.models import archive, read_tree, sharded_model, snapshot
from vastllm.fetch import DestinationError, fetch


def test_a_foreign_non_empty_target_is_refused_unless_forced(
    bucket: Bucket, models_dir: Path
) -> None:
    dest = models_dir / "hand-made"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    files = sharded_model(shards=1)
    url = bucket.put("m.tar", archive(files, "tar"))

    with pytest.raises(DestinationError, match="--force"):
        fetch(url, dest, s3=bucket.options)
    assert (dest / "notes.txt").read_text() == "mine"

    fetch(url, dest, s3=bucket.options, force=True)
    assert read_tree(dest) == files


def test_an_empty_existing_target_is_fine(bucket: Bucket, models_dir: Path) -> None:
    (models_dir / "m").mkdir()
    files = sharded_model(shards=1)
    fetch(bucket.put("m.tar", archive(files, "tar")), models_dir / "m", s3=bucket.options)
    assert read_tree(models_dir / "m") == files


def test_stale_partial_dirs_of_a_killed_run_are_cleaned(bucket: Bucket, models_dir: Path) -> None:
    stale = models_dir / ".m.partial-dead1234"
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "half.safetensors").write_bytes(b"x" * 1000)
    other_stale = models_dir / ".sibling.partial-keepme"  # belongs to another target
    other_stale.mkdir()

    fetch(
        bucket.put("m.tar", archive(sharded_model(shards=1), "tar")),
        models_dir / "m",
        s3=bucket.options,
    )

    assert not stale.exists()
    assert other_stale.exists()


def test_a_concurrent_run_on_the_same_target_is_refused(bucket: Bucket, models_dir: Path) -> None:
    url = bucket.put("m.tar", archive(sharded_model(shards=1), "tar"))
    lock = os.open(models_dir / ".m.fetch-lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        before = snapshot(models_dir)
        with pytest.raises(DestinationError, match=r"another vastllm\.fetch"):
            fetch(url, models_dir / "m", s3=bucket.options)
        assert snapshot(models_dir) == before
    finally:
        os.close(lock)


def test_a_file_at_the_target_path_is_refused(bucket: Bucket, models_dir: Path) -> None:
    (models_dir / "m").write_text("a file")
    with pytest.raises(DestinationError, match="not a directory"):
        fetch(
            bucket.put("m.tar", archive(sharded_model(shards=1), "tar")),
            models_dir / "m",
            s3=bucket.options,
        )
    assert (models_dir / "m").read_text() == "a file"
