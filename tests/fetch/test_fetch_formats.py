"""Each source kind, fetched from a real (moto) S3 server and extracted while downloading."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.fetch.conftest import SMALL_TRANSFER, Bucket
from tests.fetch.models import archive, read_tree, sha256, sha256sums, sharded_model, snapshot
from vastllm.fetch import MARKER_NAME, fetch


@pytest.mark.parametrize("kind", ["tar.gz", "tar.zst", "tar", "tar.gz-multimember"])
def test_tarball_is_extracted_with_parallel_ranges(
    bucket: Bucket, models_dir: Path, kind: str
) -> None:
    files = sharded_model()
    body = archive(files, kind)
    key = "llama." + kind.removesuffix("-multimember")
    url = bucket.put(key, body)
    before = snapshot(models_dir / "sibling")
    counting = bucket.counting()
    dest = models_dir / "llama"

    result = fetch(url, dest, transfer=SMALL_TRANSFER, client=counting.client)

    assert result.changed is True
    assert result.action == "fetched"
    assert read_tree(dest) == files
    assert result.bytes == len(body)
    assert result.extracted_bytes == sum(len(v) for v in files.values())
    assert result.sha256 == sha256(body)
    assert result.sha256_verified is True  # against the x-amz-meta-sha256 Bucket.put sets
    assert result.layout["kind"] == "sharded-safetensors"
    # the body was fetched as many byte ranges, never as one GET
    chunks = -(-len(body) // SMALL_TRANSFER.chunk_size)
    assert chunks > 4
    assert counting.calls["GetObject"] == chunks
    assert sorted(counting.ranges) == sorted(
        f"bytes={i * SMALL_TRANSFER.chunk_size}-"
        f"{min((i + 1) * SMALL_TRANSFER.chunk_size, len(body)) - 1}"
        for i in range(chunks)
    )
    # no archive on disk, no partial dir, the sibling untouched
    assert sorted(p.name for p in models_dir.iterdir()) == [".llama.fetch-lock", "llama", "sibling"]
    assert snapshot(models_dir / "sibling") == before


def test_marker_records_source_and_every_file(bucket: Bucket, models_dir: Path) -> None:
    files = sharded_model(shards=2)
    body = archive(files, "tar.zst")
    url = bucket.put("m.tar.zst", body, {"sha256": sha256(body)})
    dest = models_dir / "m"

    result = fetch(url, dest, transfer=SMALL_TRANSFER, s3=bucket.options)

    marker = json.loads((dest / MARKER_NAME).read_text())
    assert result.sha256_verified is True
    assert marker["source"] == url
    assert marker["sha256"] == sha256(body)
    assert marker["size"] == len(body)
    assert marker["etag"] == bucket.admin.head_object(Bucket=bucket.name, Key="m.tar.zst")["ETag"]
    assert marker["fetched_at"]
    assert {f["path"]: (f["size"], f["sha256"]) for f in marker["files"]} == {
        name: (len(data), sha256(data)) for name, data in files.items()
    }


def test_files_and_dirs_get_sane_modes(bucket: Bucket, models_dir: Path) -> None:
    files = sharded_model(shards=1)
    url = bucket.put("m.tar", archive(files, "tar", prefix="wrapped/"))
    dest = models_dir / "m"

    result = fetch(url, dest, transfer=SMALL_TRANSFER, s3=bucket.options)

    assert stat.S_IMODE(dest.stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "wrapped").stat().st_mode) == 0o755
    for path in (dest / "wrapped").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    # a single wrapping directory is seen through
    assert result.layout["model_dir"] == "wrapped"
    assert result.layout["kind"] == "sharded-safetensors"


def test_prefix_is_fetched_and_checked_against_sha256sums(bucket: Bucket, models_dir: Path) -> None:
    files = sharded_model()
    files["nested/extra.bin"] = b"x" * 5000
    url = bucket.put_files("models/llama/", {**files, "SHA256SUMS": sha256sums(files)})
    bucket.put("models/llama-other/decoy.bin", b"not part of the prefix")
    counting = bucket.counting()
    dest = models_dir / "llama"

    result = fetch(url, dest, transfer=SMALL_TRANSFER, client=counting.client)

    assert result.changed is True
    assert read_tree(dest) == {**files, "SHA256SUMS": sha256sums(files)}
    assert result.sha256_verified is True
    assert result.layout["kind"] == "sharded-safetensors"
    assert counting.calls["ListObjectsV2"] == 1
    marker = json.loads((dest / MARKER_NAME).read_text())
    etags = {
        o["Key"].removeprefix("models/llama/"): o["ETag"]
        for o in bucket.admin.list_objects_v2(Bucket=bucket.name, Prefix="models/llama/")[
            "Contents"
        ]
    }
    assert {f["path"]: f["etag"] for f in marker["files"]} == etags


def test_prefix_without_sha256sums_is_fetched_unverified_when_allowed(
    bucket: Bucket, models_dir: Path
) -> None:
    files = {"model.safetensors": b"w" * 300_000, "config.json": b"{}"}
    url = bucket.put_files("single/", files)

    result = fetch(
        url,
        models_dir / "single",
        transfer=SMALL_TRANSFER,
        s3=bucket.options,
        allow_unverified=True,
    )

    assert read_tree(models_dir / "single") == files
    assert result.sha256_verified is False
    assert result.layout["kind"] == "single-safetensors"


def test_replacing_an_older_version_leaves_only_the_new_one(
    bucket: Bucket, models_dir: Path
) -> None:
    old = sharded_model(shards=2)
    new = sharded_model(shards=3)
    dest = models_dir / "m"
    fetch(bucket.put("m.tar.gz", archive(old, "tar.gz")), dest, s3=bucket.options)
    (dest / "stray-user-file.txt").write_text("from the old version")

    result = fetch(
        bucket.put("m.tar.gz", archive(new, "tar.gz")),
        dest,
        transfer=SMALL_TRANSFER,
        s3=bucket.options,
    )

    assert result.changed is True
    assert read_tree(dest) == new
    leftovers = [p.name for p in models_dir.iterdir() if p.name.startswith(".m.")]
    assert leftovers == [".m.fetch-lock"]
