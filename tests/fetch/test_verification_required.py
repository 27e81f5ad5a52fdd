"""A model is installed only when its bytes can be checked against a sha256: one given
(``--sha256``), the object's ``x-amz-meta-sha256``, or a prefix's SHA256SUMS listing every file.
Without any the fetch is refused before a byte is downloaded, with an error that names the three
ways and ``--allow-unverified``, the explicit way to install it unchecked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fetch.conftest import SMALL_TRANSFER, Bucket
from tests.fetch.models import archive, read_tree, sha256, sha256sums, sharded_model
from tests.fetch.test_cli import _assert_one_error_line, run_cli
from vastllm.fetch import Unverified, UsageError, fetch, repair

WAYS = ("--sha256", "x-amz-meta-sha256", "SHA256SUMS", "--allow-unverified")


def _names_every_way(message: str) -> None:
    for way in WAYS:
        assert way in message, message


@pytest.mark.parametrize("check", [False, True], ids=["fetch", "dry-run"])
def test_a_tarball_without_any_sha256_is_refused_before_the_download(
    bucket: Bucket, models_dir: Path, check: bool
) -> None:
    url = bucket.put("m.tar.gz", archive(sharded_model(), "tar.gz"), verified=False)
    counting = bucket.counting()

    with pytest.raises(Unverified) as error:
        fetch(url, models_dir / "m", transfer=SMALL_TRANSFER, client=counting.client, check=check)

    assert isinstance(error.value, UsageError)  # the CLI exits 2
    assert url in str(error.value)
    _names_every_way(str(error.value))
    assert counting.calls["GetObject"] == 0
    assert sorted(p.name for p in models_dir.iterdir() if p.name != ".m.fetch-lock") == ["sibling"]


def test_allow_unverified_installs_it_and_says_it_is_unverified(
    bucket: Bucket, models_dir: Path
) -> None:
    files = sharded_model(shards=1)
    url = bucket.put("m.tar", archive(files, "tar"), verified=False)
    dest = models_dir / "m"

    result = fetch(url, dest, transfer=SMALL_TRANSFER, s3=bucket.options, allow_unverified=True)

    assert result.action == "fetched"
    assert result.sha256_verified is False
    assert read_tree(dest) == files
    # the next run still needs the flag: nothing vouches for the installed bytes
    with pytest.raises(Unverified):
        fetch(url, dest, s3=bucket.options)
    again = fetch(url, dest, s3=bucket.options, allow_unverified=True)
    assert again.changed is False


@pytest.mark.parametrize("how", ["--sha256", "x-amz-meta-sha256"])
def test_either_sha256_is_enough(bucket: Bucket, models_dir: Path, how: str) -> None:
    body = archive(sharded_model(shards=1), "tar.zst")
    url = bucket.put("m.tar.zst", body, verified=how == "x-amz-meta-sha256")
    given = sha256(body) if how == "--sha256" else None

    result = fetch(url, models_dir / "m", sha256=given, s3=bucket.options)

    assert result.sha256_verified is True


def test_a_prefix_without_sha256sums_is_refused(bucket: Bucket, models_dir: Path) -> None:
    url = bucket.put_files("p/", {"model.safetensors": b"w" * 1000, "config.json": b"{}"})

    with pytest.raises(Unverified) as error:
        fetch(url, models_dir / "p", s3=bucket.options)

    _names_every_way(str(error.value))
    assert not (models_dir / "p").exists()


def test_a_prefix_file_that_sha256sums_leaves_out_is_refused(
    bucket: Bucket, models_dir: Path
) -> None:
    listed = {"model.safetensors": b"w" * 1000, "config.json": b"{}"}
    url = bucket.put_files(
        "p/", {**listed, "tokenizer.json": b"{}", "SHA256SUMS": sha256sums(listed)}
    )

    with pytest.raises(Unverified, match=r"does not list tokenizer\.json") as error:
        fetch(url, models_dir / "p", s3=bucket.options)

    assert "--allow-unverified" in str(error.value)
    assert not (models_dir / "p").exists()
    fetch(url, models_dir / "p", s3=bucket.options, allow_unverified=True)
    assert (models_dir / "p" / "tokenizer.json").read_bytes() == b"{}"


def test_a_repair_that_must_fetch_needs_a_sha256_too(bucket: Bucket, models_dir: Path) -> None:
    files = sharded_model(shards=2)
    url = bucket.put("m.tar", archive(files, "tar"), verified=False)
    dest = models_dir / "m"
    fetch(url, dest, s3=bucket.options, allow_unverified=True)
    (dest / "config.json").unlink()

    with pytest.raises(Unverified):
        repair(None, dest, s3=bucket.options)
    assert not (dest / "config.json").exists()

    result = repair(None, dest, s3=bucket.options, allow_unverified=True)
    assert result.repaired == ["config.json"]


def test_the_cli_exits_2_naming_the_ways_and_takes_allow_unverified(
    bucket: Bucket, models_dir: Path
) -> None:
    url = bucket.put("m.tar.gz", archive(sharded_model(shards=1), "tar.gz"), verified=False)
    args = ["--url", url, "--dest", str(models_dir / "m"), "--json", "--quiet"]
    args += ["--endpoint-url", str(bucket.options.endpoint_url)]

    refused = run_cli(*args)

    assert refused.returncode == 2
    _names_every_way(_assert_one_error_line(refused))
    assert json.loads(refused.stdout)["error_type"] == "Unverified"
    assert not (models_dir / "m").exists()

    allowed = run_cli(*args, "--allow-unverified")
    assert allowed.returncode == 0, allowed.stderr
    result = json.loads(allowed.stdout)
    assert result["action"] == "fetched"
    assert result["sha256_verified"] is False
