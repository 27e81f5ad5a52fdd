"""A forward-only stream that looks seekable enough for `tarfile`'s ordinary read mode.

tarfile's stream mode (`r|`) copies every byte several times through its own buffer. Its
ordinary mode (`r:`) only needs `tell()` and seeks that never go backwards when members are
read in order, which a download can serve: forward seeks skip bytes. Member data is then read
straight from the decompressor, with no extra copy.
"""

from __future__ import annotations

import io
from typing import BinaryIO

from vastllm.fetch.errors import CorruptArchive

SKIP_SIZE = 1024 * 1024


class ForwardReader(io.RawIOBase):
    """`tell`, forward `seek` and filling `read` over a stream that can only be read on."""

    def __init__(self, stream: BinaryIO, name: str) -> None:
        super().__init__()
        self._stream = stream
        self._name = name
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset + (self._pos if whence == io.SEEK_CUR else 0)
        if whence not in (io.SEEK_SET, io.SEEK_CUR) or target < self._pos:
            raise CorruptArchive(f"{self._name}: the tar stream would need a backward seek")
        while self._pos < target:
            if not self.read_some(min(target - self._pos, SKIP_SIZE)):
                break  # past the end: the next read says so
        return self._pos

    def read_some(self, size: int) -> bytes:
        """Between 1 and `size` bytes (b"" only at the end), without copying."""
        chunk = self._stream.read(size)
        self._pos += len(chunk)
        return chunk

    def read(self, size: int | None = -1) -> bytes:
        """Exactly `size` bytes unless the stream ends first."""
        if size is None or size < 0:
            return self.readall()
        parts = []
        got = 0
        while got < size:
            chunk = self.read_some(size - got)
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(memoryview(buffer).nbytes)
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)
