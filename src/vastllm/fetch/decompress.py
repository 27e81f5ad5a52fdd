"""Streaming decompression of the downloaded bytes: gzip through zlib, zstd through zstandard."""

from __future__ import annotations

import io
import zlib
from typing import BinaryIO, cast

import zstandard

from vastllm.fetch.errors import CorruptArchive
from vastllm.fetch.s3url import SourceKind

READ_SIZE = 1024 * 1024
_GZIP_WBITS = 16 + zlib.MAX_WBITS


class GzipReader(io.RawIOBase):
    """Decompress a (possibly multi-member, zero-padded) gzip stream as it is read.

    zlib checks each member's CRC32 and length, so a damaged stream raises CorruptArchive.
    """

    def __init__(self, raw: io.RawIOBase, name: str) -> None:
        super().__init__()
        self._raw = raw
        self._name = name
        self._in = b""
        self._d: zlib._Decompress | None = None
        self._members = 0

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        self._in = self._raw.read(READ_SIZE) or b""
        return bool(self._in)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        out = self.read(memoryview(buffer).nbytes)
        memoryview(buffer).cast("B")[: len(out)] = out
        return len(out)

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` decompressed bytes; b"" at the clean end of the stream."""
        if size is None or size < 0:
            return self.readall()
        want = size
        if not want:
            return b""
        while True:
            if self._d is None:
                self._in = self._in.lstrip(b"\x00")
                if not self._in:
                    if not self._fill():
                        if not self._members:
                            raise CorruptArchive(f"{self._name}: empty gzip stream")
                        return b""
                    continue
                self._d = zlib.decompressobj(_GZIP_WBITS)
                self._members += 1
            if not self._in and not self._fill():
                raise CorruptArchive(f"{self._name}: gzip stream ends in the middle (truncated)")
            try:
                out = self._d.decompress(self._in, want)
            except zlib.error as e:
                raise CorruptArchive(f"{self._name}: gzip data is corrupt ({e})") from None
            if self._d.eof:
                self._in = self._d.unused_data
                self._d = None
            else:
                self._in = self._d.unconsumed_tail
            if out:
                return out


class _ZstdErrors(io.RawIOBase):
    """Wrap a zstandard stream reader so its errors become CorruptArchive."""

    def __init__(self, reader: BinaryIO, name: str) -> None:
        super().__init__()
        self._reader = reader
        self._name = name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(memoryview(buffer).nbytes)
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        try:
            return self._reader.read(size)
        except zstandard.ZstdError as e:
            raise CorruptArchive(f"{self._name}: zstd data is corrupt ({e})") from None


def decompressed(raw: io.RawIOBase, kind: SourceKind, name: str) -> BinaryIO:
    """A readable stream of the tar bytes inside `raw`.

    Reads may come back short (tarfile's stream mode loops until it has what it asked for);
    each layer hands out the bytes objects it produced instead of copying them into buffers.
    """
    stream: io.RawIOBase
    if kind is SourceKind.TAR_GZ:
        stream = GzipReader(raw, name)
    elif kind is SourceKind.TAR_ZST:
        reader = zstandard.ZstdDecompressor().stream_reader(
            cast(BinaryIO, raw), read_size=READ_SIZE, read_across_frames=True, closefd=False
        )
        stream = _ZstdErrors(cast(BinaryIO, reader), name)
    elif kind is SourceKind.TAR:
        stream = raw
    else:
        raise ValueError(f"not an archive kind: {kind}")
    return cast(BinaryIO, stream)
