"""Parallel ranged GETs of one object, handed back in order as a read-only file.

N worker threads fetch byte ranges of `chunk_size` into a reorder buffer; `readinto` hands the
chunks out in order, hashing them (sha256 of the stored bytes) on the way. Memory stays bounded:
a worker only starts chunk i when i < consumed + prefetch, so at most `prefetch` chunks are
buffered or in flight, plus the one being read and up to 3 queued for (or in) the hashing
thread: peak ~ chunk_size x (prefetch + 4).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import (
    ConnectionClosedError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from vastllm.fetch.errors import ObjectChanged
from vastllm.fetch.objects import ObjectInfo
from vastllm.fetch.pipeline import BackgroundSink
from vastllm.fetch.s3client import S3Client

MiB = 1024 * 1024
BODY_ATTEMPTS = 3
_BODY_ERRORS = (
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
    ConnectionClosedError,
    Urllib3HTTPError,
    ConnectionError,
)


@dataclass(frozen=True)
class TransferOptions:
    """How to download: worker threads, range size, and how many ranges may wait in memory."""

    workers: int = 8
    chunk_size: int = 32 * MiB
    prefetch: int = 0  # 0: workers + 2

    @property
    def depth(self) -> int:
        return self.prefetch if self.prefetch > 0 else self.workers + 2

    @property
    def memory_bound(self) -> int:
        """Upper bound of the bytes buffered by one reader."""
        return self.chunk_size * (self.depth + 4)


class RangedReader(io.RawIOBase):
    """A file-like view of one object (pinned to its ETag) fed by parallel ranged GETs."""

    def __init__(
        self,
        client: S3Client,
        info: ObjectInfo,
        options: TransferOptions,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__()
        self._client = client
        self._url = info.url
        self._size = size = info.size
        self._etag = info.etag
        self._chunk = max(options.chunk_size, 1)
        self._depth = max(options.depth, 1)
        self._count = (size + self._chunk - 1) // self._chunk
        self._on_bytes = on_bytes
        self._cond = threading.Condition()
        self._ready: dict[int, bytes] = {}
        self._scheduled = 0
        self._consumed = 0
        self._error: BaseException | None = None
        self._stopped = False
        self._data = b""
        self._pos = 0
        self._hash = hashlib.sha256()
        self._hasher = BackgroundSink(self._hash.update, depth=2, name="s3-sha256")
        self.bytes_read = 0
        n_threads = min(max(options.workers, 1), max(self._count, 1))
        self._threads = [
            threading.Thread(target=self._work, name=f"s3-range-{i}", daemon=True)
            for i in range(n_threads if self._count else 0)
        ]
        for thread in self._threads:
            thread.start()

    # -- producer side -------------------------------------------------------------------
    def _claim(self) -> int | None:
        with self._cond:
            while True:
                if self._stopped or self._error is not None or self._scheduled >= self._count:
                    return None
                if self._scheduled < self._consumed + self._depth:
                    index = self._scheduled
                    self._scheduled += 1
                    return index
                self._cond.wait()

    def _work(self) -> None:
        while (index := self._claim()) is not None:
            try:
                data = self._fetch(index)
            except BaseException as e:  # handed to the reader, raised there
                with self._cond:
                    if self._error is None:
                        self._error = e
                    self._cond.notify_all()
                return
            with self._cond:
                self._ready[index] = data
                self._cond.notify_all()

    def _fetch(self, index: int) -> bytes:
        start = index * self._chunk
        end = min(start + self._chunk, self._size) - 1
        want = end - start + 1
        kwargs = {"Bucket": self._url.bucket, "Key": self._url.key, "Range": f"bytes={start}-{end}"}
        if self._etag:
            kwargs["IfMatch"] = self._etag
        for attempt in range(1, BODY_ATTEMPTS + 1):
            if self._stopped:
                raise ObjectChanged(f"download of {self._url} was cancelled")
            answer = self._client.get_object(**kwargs)  # type: ignore[arg-type]
            try:
                data = answer["Body"].read()
            except _BODY_ERRORS:
                if attempt == BODY_ATTEMPTS:
                    raise
                continue
            finally:
                answer["Body"].close()
            if len(data) == want:
                return data
            if attempt == BODY_ATTEMPTS:
                raise ObjectChanged(
                    f"{self._url}: range {start}-{end} returned {len(data)} bytes, "
                    f"expected {want} (object changed?)"
                )
        raise AssertionError("unreachable")  # pragma: no cover

    # -- consumer side -------------------------------------------------------------------
    def _next_chunk(self) -> bool:
        if self._consumed >= self._count:
            return False
        with self._cond:
            while self._consumed not in self._ready:
                if self._error is not None:
                    raise self._error
                if self._stopped:
                    raise ValueError("read from a closed RangedReader")
                self._cond.wait()
            data = self._ready.pop(self._consumed)
            self._consumed += 1
            self._cond.notify_all()
        self._hasher.put(data)
        self.bytes_read += len(data)
        self._data, self._pos = data, 0
        if self._on_bytes is not None:
            self._on_bytes(len(data))
        return True

    def _available(self) -> int:
        left = len(self._data) - self._pos
        if left == 0 and self._next_chunk():
            left = len(self._data)
        return left

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes (a whole range without copying when it fits)."""
        if size is None or size < 0:
            return self.readall()
        left = self._available()
        if not left or not size:
            return b""
        if self._pos == 0 and size >= left:
            out = self._data
        else:
            out = self._data[self._pos : self._pos + size]
        self._pos += len(out)
        return out

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        target = memoryview(buffer).cast("B")
        left = self._available()
        n = min(target.nbytes, left)
        target[:n] = memoryview(self._data)[self._pos : self._pos + n]
        self._pos += n
        return n

    def drain(self) -> None:
        """Read (and hash) whatever is left, so the digest covers the whole object."""
        self._pos = len(self._data)
        while self._next_chunk():
            self._pos = len(self._data)

    @property
    def complete(self) -> bool:
        return self._consumed >= self._count and self._pos >= len(self._data)

    def sha256(self) -> str:
        """Hex sha256 of the whole object; call once everything was read (or drained)."""
        self._hasher.close()
        return self._hash.hexdigest()

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            self._ready.clear()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=60)
        with contextlib.suppress(Exception):  # hashing bytes cannot fail; nothing to report
            self._hasher.close()
        super().close()
