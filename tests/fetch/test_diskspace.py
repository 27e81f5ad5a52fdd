"""Free-disk pre-check before any download, and a clean stop when the disk fills anyway."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fetch.conftest import SMALL_TRANSFER, Bucket
from tests.fetch.models import archive, read_tree, sharded_model, snapshot
from vastllm.fetch import DiskFull, NotEnoughSpace, fetch
from vastllm.fetch.diskspace import EXPANSION_FACTOR
from vastllm.fetch.s3url import SourceKind

GiB = 1024**3


def test_precheck_uses_extracted_size_metadata_and_downloads_nothing(
    bucket: Bucket, models_dir: Path
) -> None:
    url = bucket.put(
        "big.tar.gz", archive(sharded_model(), "tar.gz"), {"extracted-size": str(50 * GiB)}
    )
    counting = bucket.counting()
    before = snapshot(models_dir)

    with pytest.raises(NotEnoughSpace) as error:
        fetch(url, models_dir / "big", client=counting.client, free_space=lambda _: 10 * GiB)

    message = str(error.value)
    assert "need ~50.06 GiB free on /" in message  # 50 GiB + a 64 MiB reserve
    assert "have 10.00 GiB" in message
    assert "x-amz-meta-extracted-size" in message
    assert "free space or pass a bigger disk" in message
    assert counting.calls["GetObject"] == 0
    after = snapshot(models_dir)
    after.pop(".big.fetch-lock")
    assert after == before
    assert not (models_dir / "big").exists()


def test_precheck_accepts_uncompressed_size_metadata(bucket: Bucket, models_dir: Path) -> None:
    body = archive(sharded_model(), "tar.zst")
    url = bucket.put("m.tar.zst", body, {"uncompressed-size": str(7 * GiB)})

    with pytest.raises(NotEnoughSpace, match=r"need ~7\.06 GiB"):
        fetch(url, models_dir / "m", s3=bucket.options, free_space=lambda _: 7 * GiB)


def test_precheck_estimates_from_compressed_size_without_metadata(
    bucket: Bucket, models_dir: Path
) -> None:
    body = archive(sharded_model(), "tar.gz")
    url = bucket.put("m.tar.gz", body)
    factor = EXPANSION_FACTOR[SourceKind.TAR_GZ]
    seen: list[Path] = []

    def just_too_little(path: Path) -> int:
        seen.append(path)
        return int(len(body) * factor)  # enough for the estimate, not for the 5% reserve

    with pytest.raises(NotEnoughSpace, match=rf"estimate: object size x {factor}"):
        fetch(url, models_dir / "m", s3=bucket.options, free_space=just_too_little)
    assert seen == [models_dir]  # the filesystem of the target's parent was asked

    result = fetch(url, models_dir / "m", s3=bucket.options, free_space=lambda _: len(body) * 2)
    assert result.changed is True


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 3 MiB tmpfs (we run as root; a CI without mount rights must say so loudly)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(
            "the real ENOSPC test needs `mount -t tmpfs` (root / CAP_SYS_ADMIN); "
            f"mount said: {done.stderr.strip()}"
        )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_filling_up_during_extraction_is_a_clean_error(
    bucket: Bucket, small_disk: Path
) -> None:
    old_files = sharded_model(shards=1, shard_size=100 * 1024)
    dest = small_disk / "models" / "m"
    fetch(bucket.put("old.tar", archive(old_files, "tar")), dest, s3=bucket.options)
    neighbour = small_disk / "models" / "keep.txt"
    neighbour.write_text("was here before")
    before = snapshot(small_disk)
    # the metadata lies (1 MB), so the pre-check passes; 6 MB of shards do not fit in 3 MiB
    big = archive(sharded_model(shards=3, shard_size=2 * 1024 * 1024), "tar.gz")
    url = bucket.put("big.tar.gz", big, {"extracted-size": "1000000"})

    with pytest.raises(DiskFull) as error:
        fetch(url, dest, transfer=SMALL_TRANSFER, s3=bucket.options)

    message = str(error.value)
    assert "disk full" in message
    assert str(small_disk) in message
    assert "untouched" in message
    assert snapshot(small_disk) == before  # old version intact, partial dir gone
    assert read_tree(dest) == old_files
