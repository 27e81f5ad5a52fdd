"""A second run with the same object does nothing after one cheap HEAD (or LIST)."""

from __future__ import annotations

from pathlib import Path

from tests.fetch.conftest import SMALL_TRANSFER, Bucket
from tests.fetch.models import archive, read_tree, sha256, sha256sums, sharded_model, snapshot
from vastllm.fetch import fetch


def test_second_run_heads_and_does_not_download(bucket: Bucket, models_dir: Path) -> None:
    files = sharded_model()
    body = archive(files, "tar.gz")
    url = bucket.put("m.tar.gz", body, {"sha256": sha256(body)})
    dest = models_dir / "m"
    counting = bucket.counting()
    first = fetch(url, dest, transfer=SMALL_TRANSFER, client=counting.client)
    assert first.changed is True
    assert counting.calls["GetObject"] > 1
    installed = snapshot(dest)
    counting.reset()

    second = fetch(url, dest, transfer=SMALL_TRANSFER, client=counting.client)

    assert second.changed is False
    assert second.action == "none"
    assert second.bytes == 0
    assert dict(counting.calls) == {"HeadObject": 1}
    assert snapshot(dest) == installed
    assert second.layout == first.layout


def test_same_object_with_matching_sha256_argument_is_a_no_op(
    bucket: Bucket, models_dir: Path
) -> None:
    body = archive(sharded_model(shards=1), "tar.zst")
    url = bucket.put("m.tar.zst", body)
    dest = models_dir / "m"
    fetch(url, dest, sha256=sha256(body), s3=bucket.options)
    counting = bucket.counting()

    again = fetch(url, dest, sha256=sha256(body).upper(), client=counting.client)

    assert again.changed is False
    assert again.sha256_verified is True
    assert counting.calls["GetObject"] == 0


def test_prefix_second_run_lists_only(bucket: Bucket, models_dir: Path) -> None:
    files = sharded_model(shards=2)
    url = bucket.put_files("p/", {**files, "SHA256SUMS": sha256sums(files)})
    dest = models_dir / "p"
    fetch(url, dest, transfer=SMALL_TRANSFER, s3=bucket.options)
    counting = bucket.counting()

    again = fetch(url, dest, transfer=SMALL_TRANSFER, client=counting.client)

    assert again.changed is False
    assert dict(counting.calls) == {"ListObjectsV2": 1}


def test_new_object_version_is_fetched_again(bucket: Bucket, models_dir: Path) -> None:
    dest = models_dir / "m"
    url = bucket.put("m.tar", archive(sharded_model(shards=1), "tar"))
    fetch(url, dest, s3=bucket.options)
    newer = sharded_model(shards=2)
    bucket.put("m.tar", archive(newer, "tar"))

    result = fetch(url, dest, transfer=SMALL_TRANSFER, s3=bucket.options)

    assert result.changed is True
    assert result.action == "fetched"
    assert read_tree(dest) == newer


def test_changed_prefix_file_is_fetched_again(bucket: Bucket, models_dir: Path) -> None:
    files = {"model.safetensors": b"a" * 1000, "config.json": b"{}"}
    url = bucket.put_files("p/", files)
    dest = models_dir / "p"
    fetch(url, dest, s3=bucket.options, allow_unverified=True)
    bucket.put("p/config.json", b'{"changed": true}', verified=False)

    result = fetch(url, dest, s3=bucket.options, allow_unverified=True)

    assert result.changed is True
    assert (dest / "config.json").read_bytes() == b'{"changed": true}'


def test_a_deleted_file_is_noticed_by_a_plain_run_and_refetched(
    bucket: Bucket, models_dir: Path
) -> None:
    files = sharded_model()
    url = bucket.put("m.tar.gz", archive(files, "tar.gz"))
    dest = models_dir / "m"
    fetch(url, dest, s3=bucket.options)
    (dest / "model-00002-of-00003.safetensors").unlink()

    result = fetch(url, dest, transfer=SMALL_TRANSFER, s3=bucket.options)

    assert result.changed is True
    assert result.action == "repaired"
    assert result.repaired == ["model-00002-of-00003.safetensors"]
    assert read_tree(dest) == files
