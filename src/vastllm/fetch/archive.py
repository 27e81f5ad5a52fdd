"""Stream one tarball from S3 through the decompressor into the extractor, hashing on the way."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vastllm.fetch.decompress import READ_SIZE, decompressed
from vastllm.fetch.errors import ObjectChanged
from vastllm.fetch.extract import TarExtractor
from vastllm.fetch.marker import FileRecord
from vastllm.fetch.objects import ObjectInfo
from vastllm.fetch.progress import ProgressTracker
from vastllm.fetch.ranged import RangedReader, TransferOptions
from vastllm.fetch.s3client import S3Client, s3_errors
from vastllm.fetch.s3url import SourceKind


@dataclass(frozen=True)
class StreamResult:
    """What came out of one pass over the archive."""

    records: list[FileRecord]
    sha256: str  # of the object's bytes as stored (compressed)
    bytes: int


def stream_archive(
    client: S3Client,
    info: ObjectInfo,
    kind: SourceKind,
    into: Path,
    *,
    transfer: TransferOptions,
    tracker: ProgressTracker,
    only: set[str] | None = None,
    link_fallback: Path | None = None,
) -> StreamResult:
    """Download `info` with parallel ranged GETs and extract it under `into` as it arrives.

    No byte of the archive touches the disk: only extracted members are written.
    """
    name = str(info.url)
    reader = RangedReader(client, info, transfer, tracker.add)
    try:
        with s3_errors(name, client):
            stream = decompressed(reader, kind, name)
            records = TarExtractor(into, only, link_fallback).run(stream, name)
            while stream.read(READ_SIZE):  # tar padding, compression trailer: check and hash
                pass
            reader.drain()
    finally:
        reader.close()
    if reader.bytes_read != info.size:
        raise ObjectChanged(f"{name}: read {reader.bytes_read} bytes, expected {info.size}")
    return StreamResult(records, reader.sha256(), reader.bytes_read)
