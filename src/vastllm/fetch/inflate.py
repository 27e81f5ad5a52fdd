"""Which raw-deflate decoder inflates `.tar.gz` downloads: ISA-L's igzip when installed, else zlib.

Why: on model weights (bf16 shrinks only to ~0.7 under gzip -6) inflate, not the network, bounds
a gzip fetch, and ISA-L inflates about twice as fast as zlib on the same core (the test model's
weights at gzip -6, MB/s of output on one core: zlib 160-180, isal 1.9.1 346-386; see
bench/RESULTS.md). The order below is that measurement; zlib-ng (slower than isal in the issue's
table) is not worth a dependency, and parallel gzip decoders need a seekable copy of the archive
(README, "Model tarballs").

Both decoders are driven the same way, as raw deflate: gzipstream.py parses the gzip headers and
checks each member's CRC32 and length itself, so a damaged archive fails with the same
CorruptArchive whatever inflated it. `VASTLLM_FETCH_GZIP_DECODER` (auto | isal | zlib) forces
one, for tests and benchmarks; auto (the default) takes the first that imports.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

from vastllm.fetch.errors import UsageError

ENV = "VASTLLM_FETCH_GZIP_DECODER"
AUTO = "auto"
_RAW_DEFLATE = -zlib.MAX_WBITS  # no zlib/gzip wrapper: headers and trailers are ours


class Inflater(Protocol):
    """A zlib-style streaming decompressor (zlib's and isal_zlib's objects both are one)."""

    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    @property
    def unconsumed_tail(self) -> bytes: ...

    def decompress(self, data: bytes, max_length: int = 0, /) -> bytes: ...


@dataclass(frozen=True)
class GzipDecoder:
    """One inflate implementation: fresh raw-deflate decompressors, its CRC32, its error type."""

    name: str
    inflater: Callable[[], Inflater]
    crc32: Callable[[bytes, int], int]
    error: type[Exception]


def _zlib() -> GzipDecoder:
    return GzipDecoder("zlib", lambda: zlib.decompressobj(_RAW_DEFLATE), zlib.crc32, zlib.error)


def _isal() -> GzipDecoder | None:
    try:
        from isal import isal_zlib  # noqa: PLC0415 - optional, may be absent
    except ImportError:
        return None
    # the stub types `error` as an instance; at runtime it is the IsalError class
    error = cast(type[Exception], isal_zlib.error)
    return GzipDecoder(
        "isal", lambda: isal_zlib.decompressobj(_RAW_DEFLATE), isal_zlib.crc32, error
    )


# fastest first (bench/fetch_bench.py measures each one installed)
_LOADERS: dict[str, Callable[[], GzipDecoder | None]] = {"isal": _isal, "zlib": _zlib}
NAMES = tuple(_LOADERS)


def installed() -> list[str]:
    """The decoders that import here, fastest first (zlib always)."""
    return [name for name, load in _LOADERS.items() if load() is not None]


def gzip_decoder(name: str | None = None) -> GzipDecoder:
    """The decoder named by `name`, else by $VASTLLM_FETCH_GZIP_DECODER, else the fastest one.

    Raises UsageError for an unknown name, or one that is not installed.
    """
    wanted = (name or os.environ.get(ENV) or AUTO).strip().lower()
    if wanted == AUTO:
        for loader in _LOADERS.values():
            found = loader()
            if found is not None:
                return found
    load = _LOADERS.get(wanted)
    if load is None:
        raise UsageError(f"{ENV}={wanted!r}: choose one of {AUTO}, {', '.join(NAMES)}")
    decoder = load()
    if decoder is None:
        raise UsageError(
            f"{ENV}={wanted}: the {wanted} package is not installed "
            f"(pip install {wanted}, or use {AUTO})"
        )
    return decoder
