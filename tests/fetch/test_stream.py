"""The ranged reader's memory bound and the decompressors' error handling."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.fetch.conftest import Bucket
from tests.fetch.models import archive, sharded_model
from vastllm.fetch import CorruptArchive, TransferOptions, fetch
from vastllm.fetch.objects import head_object
from vastllm.fetch.ranged import RangedReader
from vastllm.fetch.s3url import parse_s3_url


def test_reader_never_runs_more_than_prefetch_ranges_ahead(bucket: Bucket) -> None:
    body = os.urandom(10 * 64 * 1024)
    url = parse_s3_url(bucket.put("blob.tar", body))
    counting = bucket.counting()
    info = head_object(counting.client, url)
    options = TransferOptions(workers=4, chunk_size=64 * 1024, prefetch=2)
    reader = RangedReader(counting.client, info, options)
    try:
        deadline = time.monotonic() + 20
        while counting.calls["GetObject"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # would-be extra requests get a chance to show up
        assert counting.calls["GetObject"] == 2  # nothing read yet: only `prefetch` ranges

        first = reader.read(64 * 1024)
        deadline = time.monotonic() + 20
        while counting.calls["GetObject"] < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert counting.calls["GetObject"] == 3  # one consumed, one more requested

        rest = b"".join(iter(lambda: reader.read(50_000), b""))
        assert first + rest == body
        assert counting.calls["GetObject"] == 10
        assert reader.complete
    finally:
        reader.close()


def test_truncated_gzip(bucket: Bucket, tmp_path: Path) -> None:
    body = archive(sharded_model(), "tar.gz")
    url = bucket.put("t.tar.gz", body[: len(body) - 1000])
    with pytest.raises(CorruptArchive, match="truncated"):
        fetch(url, tmp_path / "m", s3=bucket.options)
    assert not (tmp_path / "m").exists()


def test_corrupt_zstd(bucket: Bucket, tmp_path: Path) -> None:
    body = bytearray(archive(sharded_model(), "tar.zst"))
    body[len(body) // 2 : len(body) // 2 + 64] = bytes(64)
    url = bucket.put("c.tar.zst", bytes(body))
    with pytest.raises(CorruptArchive, match="zstd"):
        fetch(url, tmp_path / "m", s3=bucket.options)


def test_not_a_tar(bucket: Bucket, tmp_path: Path) -> None:
    url = bucket.put("n.tar", os.urandom(100_000))
    with pytest.raises(CorruptArchive, match="not a readable tar archive"):
        fetch(url, tmp_path / "m", s3=bucket.options)
    assert [p.name for p in tmp_path.iterdir()] == [".m.fetch-lock"]


def test_empty_object(bucket: Bucket, tmp_path: Path) -> None:
    url = bucket.put("e.tar.gz", b"")
    with pytest.raises(CorruptArchive, match="empty gzip"):
        fetch(url, tmp_path / "m", s3=bucket.options)
