"""A plain prefix of files: map keys to paths, read SHA256SUMS, download files one by one."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from vastllm.fetch.errors import ChecksumMismatch, UnsafeArchive
from vastllm.fetch.extract import prepare_parent
from vastllm.fetch.marker import MARKER_NAME, FileRecord
from vastllm.fetch.objects import ObjectInfo
from vastllm.fetch.progress import ProgressTracker
from vastllm.fetch.ranged import RangedReader, TransferOptions
from vastllm.fetch.s3client import S3Client, s3_errors
from vastllm.fetch.s3url import S3Url
from vastllm.fetch.tarsafe import FILE_MODE, safe_relpath

SUMS_NAME = "SHA256SUMS"
COPY_SIZE = 1024 * 1024
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def relative_files(objects: list[ObjectInfo], prefix: S3Url) -> dict[str, ObjectInfo]:
    """Each object under `prefix` by its safe relative path."""
    files: dict[str, ObjectInfo] = {}
    for info in objects:
        rel = safe_relpath(info.url.key[len(prefix.key) :], "S3 key")
        if not rel:
            continue
        if rel == MARKER_NAME:
            raise UnsafeArchive(f"refusing {info.url}: {MARKER_NAME} is reserved")
        files[rel] = info
    return files


def listing_fingerprint(files: dict[str, ObjectInfo]) -> str:
    """One identity for the whole prefix: sha256 over (path, size, ETag) of every file."""
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(f"{rel}\0{files[rel].size}\0{files[rel].etag}\n".encode())
    return f"listing-sha256:{digest.hexdigest()}"


def parse_sha256sums(text: str) -> dict[str, str]:
    """`sha256sum` output (`HEX  path` or `HEX *path`) as {relative path: hex}."""
    sums: dict[str, str] = {}
    for number, raw_line in enumerate(text.splitlines(), 1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        digest, _, name = line.partition(" ")
        name = name.lstrip(" ").removeprefix("*")
        digest = digest.lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or not name:
            raise ChecksumMismatch(
                f"{SUMS_NAME} line {number} is not 'SHA256  path': {line[:80]!r}"
            )
        sums[safe_relpath(name, f"{SUMS_NAME} entry")] = digest
    return sums


def download_file(
    client: S3Client,
    info: ObjectInfo,
    root: Path,
    rel: str,
    *,
    transfer: TransferOptions,
    tracker: ProgressTracker,
) -> FileRecord:
    """Download one object to `root/rel` (parallel ranges, in-order write, hashed on the way)."""
    target = prepare_parent(root, rel)
    if os.path.lexists(target):
        os.unlink(target)
    reader = RangedReader(client, info, transfer, tracker.add)
    try:
        with s3_errors(str(info.url), client):
            fd = os.open(target, _OPEN_FLAGS, 0o600)
            with os.fdopen(fd, "wb") as out:
                while chunk := reader.read(COPY_SIZE):
                    out.write(chunk)
    finally:
        reader.close()
    os.chmod(target, FILE_MODE)
    return FileRecord(rel, reader.bytes_read, reader.sha256(), etag=info.etag)


def check_against(record: FileRecord, expected: str | None, source: str, url: S3Url) -> None:
    """Raise ChecksumMismatch when a downloaded file's sha256 differs from `expected`."""
    if expected is not None and record.sha256 != expected:
        raise ChecksumMismatch(
            f"sha256 mismatch for {url}: expected {expected} ({source}), got {record.sha256}"
        )
