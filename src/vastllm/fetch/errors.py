"""The errors `vastllm.fetch` raises: one small hierarchy, one line of text each.

Every message is safe to print: it names the URL, the path and what to do, never a credential.
"""

from __future__ import annotations


class FetchError(Exception):
    """Base of every error this package raises on purpose (the CLI prints it and exits 1)."""


class UsageError(FetchError):
    """The caller asked for something that cannot work (bad URL, bad option): CLI exit 2."""


class Unverified(UsageError):
    """No sha256 to check the source against, and unverified installs were not allowed."""


class S3AccessDenied(FetchError):
    """Credentials were refused (InvalidAccessKeyId, SignatureDoesNotMatch, 403)."""


class S3NotFound(FetchError):
    """The bucket, the object or every file under a prefix is missing."""


class S3Unreachable(FetchError):
    """The S3 endpoint did not answer (DNS, refused connection, timeout)."""


class S3Error(FetchError):
    """Any other error answered by the S3 service."""


class ObjectChanged(FetchError):
    """The object was replaced while it was being downloaded."""


class ChecksumMismatch(FetchError):
    """The downloaded bytes do not have the expected sha256."""


class NotEnoughSpace(FetchError):
    """The free-disk pre-check failed: nothing was downloaded."""


class DiskFull(FetchError):
    """The disk filled up during extraction (ENOSPC); the partial directory was removed."""


class UnsafeArchive(FetchError):
    """The archive holds a member that could write outside the target or is not plain data."""


class CorruptArchive(FetchError):
    """The archive cannot be decompressed or read as tar."""


class LayoutError(FetchError):
    """The extracted model is incomplete (e.g. a shard listed in the index is missing)."""


class DestinationError(FetchError):
    """The target directory cannot be used as asked (not ours, not a directory, no marker)."""
