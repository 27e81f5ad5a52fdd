"""Parse `s3://bucket/key` URLs and tell which kind of source they name."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from vastllm.fetch.errors import UsageError


class SourceKind(StrEnum):
    """What the URL points at; decides the decompressor and the extraction path."""

    TAR_GZ = "tar.gz"
    TAR_ZST = "tar.zst"
    TAR = "tar"
    PREFIX = "prefix"


_SUFFIXES: tuple[tuple[str, SourceKind], ...] = (
    (".tar.gz", SourceKind.TAR_GZ),
    (".tgz", SourceKind.TAR_GZ),
    (".tar.zst", SourceKind.TAR_ZST),
    (".tar.zstd", SourceKind.TAR_ZST),
    (".tzst", SourceKind.TAR_ZST),
    (".tar", SourceKind.TAR),
)


@dataclass(frozen=True)
class S3Url:
    """A bucket and a key (a prefix when the key is empty or ends with `/`)."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def is_prefix(self) -> bool:
        return self.key == "" or self.key.endswith("/")

    def child(self, key: str) -> S3Url:
        """The URL of another key in the same bucket."""
        return S3Url(self.bucket, key)

    @property
    def kind(self) -> SourceKind:
        """The source kind, from the key's suffix; a prefix must end with `/`."""
        if self.is_prefix:
            return SourceKind.PREFIX
        lower = self.key.lower()
        for suffix, kind in _SUFFIXES:
            if lower.endswith(suffix):
                return kind
        raise UsageError(
            f"{self}: unsupported object type; expected a .tar.gz, .tar.zst or .tar object, "
            "or a prefix ending in '/'"
        )


def parse_s3_url(url: str) -> S3Url:
    """Split `s3://bucket/key` into its parts; raise UsageError on anything else."""
    if not url.startswith("s3://"):
        raise UsageError(
            f"not an s3:// URL: {url!r} (expected s3://BUCKET/KEY or s3://BUCKET/PREFIX/)"
        )
    rest = url[len("s3://") :]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise UsageError(f"no bucket in {url!r} (expected s3://BUCKET/KEY)")
    return S3Url(bucket=bucket, key=key)
