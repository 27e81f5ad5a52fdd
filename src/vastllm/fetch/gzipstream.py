"""Decompress a gzip stream as it is read: headers, CRC32 and length checked here, for any decoder.

Why here and not in the decoder: the decoders differ at the edges (isal's gzip mode fails on a
header with optional fields split across two reads; zlib's accepts it), so both are driven as
raw deflate and this module does what RFC 1952 asks around it, like CPython's gzip module:
parse each member's header, inflate, then compare the trailer's CRC32 and size with what came
out. Streams of several members (concatenated .gz files, bgzip) and zero padding
between or after them are read through; anything else is CorruptArchive, with the same message
whatever inflated the data.
"""

from __future__ import annotations

import io
import struct
import zlib

from vastllm.fetch.errors import CorruptArchive
from vastllm.fetch.inflate import GzipDecoder, Inflater

READ_SIZE = 1024 * 1024
MAX_HEADER = 1024 * 1024  # a header with a longer name/comment/extra field is not a model's
_MAGIC = b"\x1f\x8b"
_DEFLATE = 8
_FHCRC, _FEXTRA, _FNAME, _FCOMMENT = 0x02, 0x04, 0x08, 0x10
_FRESERVED = 0xE0
_TRAILER = struct.Struct("<II")  # CRC32, size mod 2**32


class BadHeader(ValueError):
    """The bytes where a gzip member should start are not a gzip header."""


def header_length(data: bytes) -> int | None:
    """Length of the gzip member header at the start of `data`; None when more bytes are needed.

    Raises BadHeader (with the reason) when `data` does not start with a gzip header.
    """
    if data[:2] != _MAGIC[: len(data[:2])]:
        raise BadHeader("not a gzip header")
    if len(data) < 10:
        return None
    method, flags = data[2], data[3]
    if method != _DEFLATE:
        raise BadHeader(f"compression method {method}, not deflate")
    if flags & _FRESERVED:
        raise BadHeader(f"reserved header flags set ({flags:#04x})")
    pos = 10
    if flags & _FEXTRA:
        if len(data) < pos + 2:
            return None
        pos += 2 + int.from_bytes(data[pos : pos + 2], "little")
        if len(data) < pos:
            return None
    for flag in (_FNAME, _FCOMMENT):
        if flags & flag:
            end = data.find(b"\x00", pos)
            if end < 0:
                return None
            pos = end + 1
    if flags & _FHCRC:
        if len(data) < pos + 2:
            return None
        if int.from_bytes(data[pos : pos + 2], "little") != zlib.crc32(data[:pos]) & 0xFFFF:
            raise BadHeader("header CRC16 does not match")
        pos += 2
    return pos


class GzipReader(io.RawIOBase):
    """Decompress a (possibly multi-member, zero-padded) gzip stream from `raw` as it is read.

    Reads may come back short; each returns the bytes object the decoder produced (no copy).
    A member's last bytes are handed out only once its CRC32 and length have been checked.
    """

    def __init__(self, raw: io.RawIOBase, name: str, decoder: GzipDecoder) -> None:
        super().__init__()
        self._raw = raw
        self._name = name
        self._decoder = decoder
        self._in = b""  # compressed bytes read from `raw`, not yet given to the inflater
        self._inflater: Inflater | None = None  # set while inside a member's deflate data
        self._crc = 0
        self._size = 0
        self._members = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        out = self.read(memoryview(buffer).nbytes)
        memoryview(buffer).cast("B")[: len(out)] = out
        return len(out)

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` decompressed bytes; b"" at the clean end of the stream."""
        if size is None or size < 0:
            return self.readall()
        if not size:
            return b""
        while True:
            inflater = self._inflater or self._start_member()
            if inflater is None:
                return b""
            out = self._inflate(inflater, size)
            if out:
                return out

    # -- input -----------------------------------------------------------------------------
    def _fill(self) -> bool:
        """Replace the (consumed) input with the next read; False at the end of `raw`."""
        self._in = self._raw.read(READ_SIZE) or b""
        return bool(self._in)

    def _more(self, where: str) -> None:
        """Append the next read to the input, or raise: the stream ends inside `where`."""
        chunk = self._raw.read(READ_SIZE)
        if not chunk:
            raise self._truncated(where)
        self._in += chunk

    def _truncated(self, where: str) -> CorruptArchive:
        return CorruptArchive(
            f"{self._name}: gzip stream ends in the middle of {where} (truncated)"
        )

    @property
    def _member(self) -> str:
        # the data and the trailer read the same: a decoder may hold the last bytes of the
        # data back until it has seen some of the trailer
        return f"member {self._members}"

    def _corrupt(self, why: str) -> CorruptArchive:
        return CorruptArchive(f"{self._name}: gzip data is corrupt ({why})")

    # -- members ---------------------------------------------------------------------------
    def _start_member(self) -> Inflater | None:
        """Skip zero padding, parse the next member's header; None at the clean end."""
        while True:
            self._in = self._in.lstrip(b"\x00")  # the same object when nothing is stripped
            if self._in:
                break
            if not self._fill():
                if not self._members:
                    raise CorruptArchive(f"{self._name}: empty gzip stream")
                return None
        self._members += 1
        while True:
            try:
                length = header_length(self._in)
            except BadHeader as e:
                raise self._corrupt(f"{self._member}: {e}") from None
            if length is not None:
                break
            if len(self._in) >= MAX_HEADER:
                raise self._corrupt(f"{self._member}: header longer than 1 MiB")
            self._more(f"the header of {self._member}")
        self._in = self._in[length:]
        self._inflater = self._decoder.inflater()
        self._crc = 0
        self._size = 0
        return self._inflater

    def _inflate(self, inflater: Inflater, size: int) -> bytes:
        if not self._in and not self._fill():
            raise self._truncated(self._member)
        try:
            out = inflater.decompress(self._in, size)
        except self._decoder.error as e:
            raise self._corrupt(f"{self._member}: {e}") from None
        if out:
            self._crc = self._decoder.crc32(out, self._crc)
            self._size += len(out)
        if inflater.eof:
            self._in = inflater.unused_data
            self._inflater = None
            self._check_trailer()
        else:
            self._in = inflater.unconsumed_tail
        return out

    def _check_trailer(self) -> None:
        while len(self._in) < _TRAILER.size:
            self._more(self._member)
        crc, size = _TRAILER.unpack_from(self._in)
        self._in = self._in[_TRAILER.size :]
        if crc != self._crc:
            raise self._corrupt(
                f"{self._member}: CRC32 {self._crc:08x} of the data, {crc:08x} in the trailer"
            )
        if size != self._size & 0xFFFFFFFF:
            raise self._corrupt(
                f"{self._member}: {self._size} bytes of data, the trailer says {size}"
            )
