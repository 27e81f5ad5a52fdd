"""A bounded hand-off to a worker thread, so hashing and writing overlap with decompression.

sha256 and file writes release the GIL; running them on their own thread lets a second core
work while the main thread decompresses and parses tar headers.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

_STOP = object()


class BackgroundSink:
    """Call `consume(chunk)` for every `put` chunk, in order, on a thread of its own.

    At most `depth` chunks wait in the queue. An error raised by `consume` is re-raised by the
    next `put` or by `close`; later chunks are dropped.
    """

    def __init__(
        self, consume: Callable[[bytes], None], depth: int = 4, name: str = "sink"
    ) -> None:
        self._consume = consume
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(depth, 1))
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is not None:
                continue  # drain, so the producer never blocks on a dead consumer
            try:
                self._consume(item)  # type: ignore[arg-type]
            except BaseException as e:
                self._error = e

    def put(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(chunk)

    def close(self) -> None:
        """Wait until every chunk is consumed; re-raise the consumer's error if any."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._thread.join()
        if self._error is not None:
            raise self._error
