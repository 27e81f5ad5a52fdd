"""Dry runs (Ansible check mode): report what would change, write nothing, download nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fetch.conftest import Bucket
from tests.fetch.models import archive, sha256sums, sharded_model, snapshot
from vastllm.fetch import NotEnoughSpace, fetch, repair

SHARD = "model-00001-of-00003.safetensors"


@pytest.mark.parametrize("kind", ["tar.gz", "prefix"])
def test_check_mode_reports_and_writes_nothing(bucket: Bucket, tmp_path: Path, kind: str) -> None:
    files = sharded_model()
    if kind == "prefix":
        url = bucket.put_files("p/", {**files, "SHA256SUMS": sha256sums(files)})
    else:
        url = bucket.put("m.tar.gz", archive(files, "tar.gz"))
    dest = tmp_path / "models" / "m"
    counting = bucket.counting()

    would = fetch(url, dest, check=True, client=counting.client)

    assert (would.changed, would.action) == (True, "would-fetch")
    assert not (tmp_path / "models").exists()  # not even the parent or the lock file
    assert counting.calls["GetObject"] == 0

    fetch(url, dest, client=counting.client)
    assert fetch(url, dest, check=True, client=counting.client).changed is False

    (dest / SHARD).unlink()
    before = snapshot(dest)
    counting.reset()
    would_repair = fetch(url, dest, check=True, client=counting.client)
    assert (would_repair.changed, would_repair.action) == (True, "would-repair")
    assert would_repair.repaired == [SHARD]
    assert snapshot(dest) == before
    assert counting.calls["GetObject"] == 0

    full = repair(url, dest, check=True, client=counting.client)
    assert (full.action, full.repaired) == ("would-repair", [SHARD])
    assert not (dest / SHARD).exists()


def test_check_mode_runs_the_disk_precheck(bucket: Bucket, tmp_path: Path) -> None:
    url = bucket.put("m.tar", archive(sharded_model(), "tar"))
    with pytest.raises(NotEnoughSpace):
        fetch(url, tmp_path / "m", check=True, s3=bucket.options, free_space=lambda _: 1000)
