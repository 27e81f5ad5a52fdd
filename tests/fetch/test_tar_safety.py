"""Malicious archive members are refused with a clear error; nothing lands outside the target."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fetch.conftest import Bucket
from tests.fetch.models import snapshot
from vastllm.fetch import MARKER_NAME, UnsafeArchive, fetch

Member = tuple[tarfile.TarInfo, bytes | None]


def _file(name: str, data: bytes = b"payload", mode: int = 0o644) -> Member:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    return info, data


def _special(name: str, kind: bytes, linkname: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o644
    return info, None


def _tar(members: list[Member]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


BENIGN = _file("model.safetensors", b"weights" * 100)

CASES: dict[str, tuple[Callable[[Path], list[Member]], str]] = {
    "absolute path": (lambda out: [BENIGN, _file(str(out / "abs-evil.txt"))], "absolute path"),
    "dot-dot": (lambda out: [BENIGN, _file("../evil.txt")], "'..'"),
    "nested dot-dot": (lambda out: [_file("sub/../../evil.txt")], "'..'"),
    "symlink absolute": (
        lambda out: [BENIGN, _special("link", tarfile.SYMTYPE, str(out / "target"))],
        "outside the extraction directory",
    ),
    "symlink out": (
        lambda out: [_special("sub/link", tarfile.SYMTYPE, "../../outside")],
        "outside the extraction directory",
    ),
    # caught by tarfile.data_filter's realpath check ("here" exists when "up" comes)
    "symlink chain out": (
        lambda out: [
            _special("here", tarfile.SYMTYPE, "."),
            _special("up", tarfile.SYMTYPE, "here/.."),
        ],
        "outside",
    ),
    # "here" does not exist yet when "up" is checked: caught by the final realpath pass
    "symlink chain out, link first": (
        lambda out: [
            _special("up", tarfile.SYMTYPE, "here/.."),
            _special("here", tarfile.SYMTYPE, "."),
        ],
        "resolves outside",
    ),
    "write through symlink": (
        lambda out: [_special("dir", tarfile.SYMTYPE, "."), _file("dir/x.txt")],
        "is a symlink",
    ),
    "hardlink absolute": (
        lambda out: [_special("h", tarfile.LNKTYPE, str(out / "secret"))],
        "absolute path",
    ),
    "hardlink out": (lambda out: [_special("h", tarfile.LNKTYPE, "../secret")], "'..'"),
    "hardlink to nothing": (
        lambda out: [_special("h", tarfile.LNKTYPE, "not-extracted-yet")],
        "not a regular file extracted earlier",
    ),
    "char device": (lambda out: [_special("null", tarfile.CHRTYPE)], "device file"),
    "block device": (lambda out: [_special("sda", tarfile.BLKTYPE)], "device file"),
    "fifo": (lambda out: [_special("pipe", tarfile.FIFOTYPE)], "FIFO"),
    "setuid": (lambda out: [_file("run.sh", b"#!/bin/sh\n", 0o4755)], "setuid"),
    "setgid": (lambda out: [_file("run.sh", b"#!/bin/sh\n", 0o2755)], "setgid"),
    "marker forged": (lambda out: [_file(MARKER_NAME, b"{}")], "reserved"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malicious_member_is_refused(
    bucket: Bucket, tmp_path: Path, models_dir: Path, case: str
) -> None:
    outside = tmp_path / "outside-area"
    outside.mkdir()
    (outside / "secret").write_text("do not link me")
    build, expected = CASES[case]
    url = bucket.put("evil.tar", _tar(build(outside)))
    before = snapshot(tmp_path)

    with pytest.raises(UnsafeArchive) as error:
        fetch(url, models_dir / "m", s3=bucket.options)

    assert expected in str(error.value)
    assert "refusing" in str(error.value)
    after = snapshot(tmp_path)
    after.pop("models/.m.fetch-lock")
    assert after == before  # nothing written anywhere: no target, no partial dir, no evil file
    assert not (tmp_path / "evil.txt").exists()
    assert not (models_dir / "evil.txt").exists()


def test_symlinks_and_hardlinks_inside_are_kept(bucket: Bucket, models_dir: Path) -> None:
    members = [
        _file("blobs/abc", b"shard bytes"),
        _special("snap/model.safetensors", tarfile.SYMTYPE, "../blobs/abc"),
        _special("copy.safetensors", tarfile.LNKTYPE, "blobs/abc"),
        _file("tool.sh", b"#!/bin/sh\n", 0o775),
    ]
    url = bucket.put("ok.tar", _tar(members))
    dest = models_dir / "m"

    fetch(url, dest, s3=bucket.options)

    assert os.readlink(dest / "snap" / "model.safetensors") == "../blobs/abc"
    assert (dest / "snap" / "model.safetensors").read_bytes() == b"shard bytes"
    assert (dest / "copy.safetensors").stat().st_ino == (dest / "blobs" / "abc").stat().st_ino
    assert stat.S_IMODE((dest / "tool.sh").stat().st_mode) == 0o755
