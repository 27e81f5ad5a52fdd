"""Fetch a model from S3 (tarball or prefix), extracting while downloading.

    from vastllm.fetch import fetch, verify, repair
    result = fetch("s3://models/llama.tar.zst", "/workspace/models/llama")

No temporary tarball: parallel ranged GETs feed a reorder buffer, the decompressor and a
streaming tar extractor that writes into `.<name>.partial-XXXX` beside the target; the
directory is renamed into place once the sha256 and the layout check pass. The sha256 comes
from the caller, the object's `x-amz-meta-sha256` or a prefix's SHA256SUMS; without one the
fetch is refused unless `allow_unverified`. A marker file
(`.vastllm-fetch.json`) makes the next run a no-op after one HEAD, and lets `verify` and
`repair` find and re-fetch a deleted or damaged shard.
"""

from vastllm.fetch.api import FetchResult, fetch, repair, verify
from vastllm.fetch.errors import (
    ChecksumMismatch,
    CorruptArchive,
    DestinationError,
    DiskFull,
    FetchError,
    LayoutError,
    NotEnoughSpace,
    ObjectChanged,
    S3AccessDenied,
    S3Error,
    S3NotFound,
    S3Unreachable,
    UnsafeArchive,
    Unverified,
    UsageError,
)
from vastllm.fetch.layout import Layout, detect_layout
from vastllm.fetch.marker import MARKER_NAME
from vastllm.fetch.progress import Progress
from vastllm.fetch.ranged import TransferOptions
from vastllm.fetch.s3client import S3Options
from vastllm.fetch.verify import VerifyReport

__all__ = [
    "MARKER_NAME",
    "ChecksumMismatch",
    "CorruptArchive",
    "DestinationError",
    "DiskFull",
    "FetchError",
    "FetchResult",
    "Layout",
    "LayoutError",
    "NotEnoughSpace",
    "ObjectChanged",
    "Progress",
    "S3AccessDenied",
    "S3Error",
    "S3NotFound",
    "S3Options",
    "S3Unreachable",
    "TransferOptions",
    "UnsafeArchive",
    "Unverified",
    "UsageError",
    "VerifyReport",
    "detect_layout",
    "fetch",
    "repair",
    "verify",
]
