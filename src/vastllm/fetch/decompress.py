"""Streaming decompression of the downloaded bytes: gzip through the fastest installed inflate
(inflate.py), zstd through zstandard.

zstd has no multi-threaded decoder to use: libzstd decompresses one frame on one thread (its
`-T0` only splits compression work; the frame's blocks still depend on the ones before), and
python-zstandard's only parallel path, `multi_decompress_to_buffer`, takes a list of separate
in-memory frames, not a stream. One thread of it already inflates about twice as fast as ISA-L
and four times as fast as zlib on weights (bench/RESULTS.md), so `.tar.zst` is the format to
publish when fetch time matters.
"""

from __future__ import annotations

import io
import logging
from typing import BinaryIO, cast

import zstandard

from vastllm.fetch.errors import CorruptArchive
from vastllm.fetch.gzipstream import READ_SIZE, GzipReader
from vastllm.fetch.inflate import GzipDecoder, gzip_decoder
from vastllm.fetch.s3url import SourceKind

__all__ = ["READ_SIZE", "decompressed"]

log = logging.getLogger("vastllm.fetch")


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


def decompressed(
    raw: io.RawIOBase, kind: SourceKind, name: str, decoder: GzipDecoder | None = None
) -> BinaryIO:
    """A readable stream of the tar bytes inside `raw`.

    `decoder`: the gzip inflate to use (default: `gzip_decoder()`, the fastest installed or the
    one $VASTLLM_FETCH_GZIP_DECODER names). Reads may come back short (tarfile's stream mode
    loops until it has what it asked for); each layer hands out the bytes objects it produced
    instead of copying them into buffers.
    """
    stream: io.RawIOBase
    if kind is SourceKind.TAR_GZ:
        decoder = decoder or gzip_decoder()
        log.info("inflating %s with %s", name, decoder.name)
        stream = GzipReader(raw, name, decoder)
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
