"""Every installed gzip decoder reads the same streams, and fails the same way on damaged ones.

The rest of the fetch suite already runs once per installed decoder (conftest's `gzip_decoder`);
the tests here compare the decoders with each other, so they loop over them themselves.
"""

from __future__ import annotations

import gzip
import io
import logging
import random
import re
import struct
import sys
import zlib
from pathlib import Path

import pytest

from tests.fetch.conftest import SMALL_TRANSFER, Bucket
from tests.fetch.models import archive, read_tree, sharded_model
from vastllm.fetch import CorruptArchive, UsageError, fetch, inflate
from vastllm.fetch.gzipstream import GzipReader
from vastllm.fetch.inflate import ENV, installed

DECODERS = installed()
_NIBBLES = bytes(i % 16 for i in range(256))  # 4 bits of entropy a byte: Huffman-coded blocks


@pytest.fixture(autouse=True)
def gzip_decoder(_isolated_aws_env: None) -> str:  # overrides conftest's: no per-decoder rerun
    return "each"


class ChunkyRaw(io.RawIOBase):
    """A raw stream handing out `data` in reads of random sizes (1 byte to 64 KiB)."""

    def __init__(self, data: bytes, seed: int) -> None:
        super().__init__()
        self._data = data
        self._pos = 0
        self._rng = random.Random(seed)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        want = self._rng.choice([1, 2, 5, 9, 10, 11, 100, 4096, 65536])
        if size is not None and size >= 0:
            want = min(want, size)
        out = self._data[self._pos : self._pos + want]
        self._pos += len(out)
        return out


def compressible(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size).translate(_NIBBLES)


def member_with_every_header_field(data: bytes) -> bytes:
    """A gzip member whose header has FEXTRA, FNAME, FCOMMENT and FHCRC (zlib-written body)."""
    header = b"\x1f\x8b\x08\x1e\x00\x00\x00\x00\x00\xff"
    header += struct.pack("<H", 6) + b"AB\x02\x00xy" + b"model.tar\x00" + b"a comment\x00"
    header += struct.pack("<H", zlib.crc32(header) & 0xFFFF)
    deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflate.compress(data) + deflate.flush()
    return header + body + struct.pack("<II", zlib.crc32(data), len(data))


def read_all(data: bytes, decoder: str, seed: int = 0) -> bytes:
    reader = GzipReader(ChunkyRaw(data, seed), "s3://b/m.tar.gz", inflate.gzip_decoder(decoder))
    sizes = random.Random(seed + 1000)
    parts = []
    while chunk := reader.read(sizes.choice([7, 1000, 64 * 1024, 1024 * 1024])):
        parts.append(chunk)
    return b"".join(parts)


def error_of(data: bytes, decoder: str) -> str:
    with pytest.raises(CorruptArchive) as caught:
        read_all(data, decoder)
    return str(caught.value)


@pytest.mark.parametrize("decoder", DECODERS)
def test_members_header_fields_and_padding_with_any_read_sizes(decoder: str) -> None:
    one = compressible(200_000) + random.Random(2).randbytes(50_000)
    two = compressible(30_000, seed=3)
    stream = (
        gzip.compress(one, compresslevel=6, mtime=0)
        + bytes(7)  # zero padding between members
        + member_with_every_header_field(two)
        + gzip.compress(b"", mtime=0)  # an empty member
        + gzip.compress(one[:1000], compresslevel=1, mtime=0)
        + bytes(1000)  # and after the last one (dd, tape blocks)
    )
    for seed in range(4):
        assert read_all(stream, decoder, seed) == one + two + one[:1000]


def _damaged(kind: str) -> tuple[bytes, str]:
    """A damaged stream and the message every decoder must give for it."""
    stored = gzip.compress(random.Random(4).randbytes(100_000), compresslevel=1, mtime=0)
    good = gzip.compress(compressible(100_000), compresslevel=6, mtime=0)
    body = bytearray(stored)
    if kind == "data byte":  # inside a stored block: only the CRC can tell
        body[len(body) // 2] ^= 0x01
        return bytes(body), r"gzip data is corrupt \(member 1: CRC32 [0-9a-f]{8} of the data"
    if kind == "crc":
        body[-8] ^= 0x01
        return bytes(body), r"gzip data is corrupt \(member 1: CRC32 .* in the trailer\)"
    if kind == "size":
        body[-1] ^= 0x01
        return bytes(body), r"member 1: 100000 bytes of data, the trailer says \d+\)"
    if kind == "second header":
        return stored + b"\x1f\x8c" + good[
            2:
        ], r"gzip data is corrupt \(member 2: not a gzip header"
    if kind == "method":
        return stored + good[:2] + b"\x07" + good[3:], r"member 2: compression method 7"
    if kind == "truncated data":
        return good[: len(good) // 2], r"ends in the middle of member 1 \(truncated\)"
    if kind == "truncated trailer":
        return good[:-3], r"ends in the middle of member 1 \(truncated\)"
    if kind == "truncated header":
        return stored + good[:6], r"ends in the middle of the header of member 2 \(truncated\)"
    if kind == "trailing garbage":
        return stored + b"garbage", r"member 2: not a gzip header"
    raise ValueError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "data byte",
        "crc",
        "size",
        "second header",
        "method",
        "truncated data",
        "truncated trailer",
        "truncated header",
        "trailing garbage",
    ],
)
def test_damage_reads_the_same_with_every_decoder(kind: str) -> None:
    data, expected = _damaged(kind)
    messages = {decoder: error_of(data, decoder) for decoder in DECODERS}
    assert len(set(messages.values())) == 1, messages
    assert all(msg.startswith("s3://b/m.tar.gz: ") for msg in messages.values()), messages
    assert re.search(expected, messages[DECODERS[0]]), messages


def test_invalid_deflate_block_is_corrupt_archive_with_every_decoder() -> None:
    body = bytearray(gzip.compress(compressible(50_000), compresslevel=6, mtime=0))
    body[10] |= 0b110  # first block's type: 3, reserved
    for decoder in DECODERS:
        message = error_of(bytes(body), decoder)
        assert message.startswith("s3://b/m.tar.gz: gzip data is corrupt (member 1: "), message


def test_damaged_member_fails_the_fetch_the_same_way_with_every_decoder(
    bucket: Bucket, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = bytearray(archive(sharded_model(), "tar.gz"))  # random shards: stored blocks
    body[len(body) // 2] ^= 0x01  # a shard's byte: the tar still parses, the CRC does not match
    url = bucket.put("bad.tar.gz", bytes(body))
    messages = {}
    for decoder in DECODERS:
        monkeypatch.setenv(ENV, decoder)
        with pytest.raises(CorruptArchive, match="CRC32") as caught:
            fetch(url, models_dir / "bad", transfer=SMALL_TRANSFER, s3=bucket.options)
        messages[decoder] = str(caught.value)
        assert sorted(p.name for p in models_dir.iterdir()) == [".bad.fetch-lock", "sibling"]
    assert len(set(messages.values())) == 1, messages


def test_zlib_is_the_fallback_when_isal_cannot_be_imported(
    bucket: Bucket,
    models_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setitem(sys.modules, "isal", None)  # `import isal` now raises ImportError
    monkeypatch.setitem(sys.modules, "isal.isal_zlib", None)
    assert installed() == ["zlib"]
    assert inflate.gzip_decoder().name == "zlib"
    with pytest.raises(UsageError, match="isal package is not installed"):
        inflate.gzip_decoder("isal")
    files = sharded_model(shards=2)
    url = bucket.put("m.tar.gz", archive(files, "tar.gz"))

    with caplog.at_level(logging.INFO, logger="vastllm.fetch"):
        fetch(url, models_dir / "m", transfer=SMALL_TRANSFER, s3=bucket.options)

    assert read_tree(models_dir / "m") == files
    assert "with zlib" in caplog.text


def test_auto_takes_isal_when_it_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("isal.isal_zlib")
    assert installed() == ["isal", "zlib"]
    assert inflate.gzip_decoder().name == "isal"
    monkeypatch.setenv(ENV, "zlib")
    assert inflate.gzip_decoder().name == "zlib"
    monkeypatch.setenv(ENV, " ISAL ")
    assert inflate.gzip_decoder().name == "isal"


def test_an_unknown_decoder_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "pigz")
    with pytest.raises(UsageError, match="choose one of auto, isal, zlib"):
        inflate.gzip_decoder()
