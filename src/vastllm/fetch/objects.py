"""Cheap metadata calls: HEAD one object, LIST a prefix, GET a small object."""

from __future__ import annotations

from dataclasses import dataclass, field

from vastllm.fetch.errors import FetchError, S3NotFound
from vastllm.fetch.s3client import S3Client, s3_errors
from vastllm.fetch.s3url import S3Url

SMALL_OBJECT_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    """What HEAD (or LIST, without metadata) tells about one object."""

    url: S3Url
    size: int
    etag: str
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def expected_sha256(self) -> str | None:
        """`x-amz-meta-sha256`, lower-cased, when the uploader set it."""
        value = self.metadata.get("sha256")
        return value.strip().lower() if value else None

    @property
    def extracted_size(self) -> int | None:
        """`x-amz-meta-extracted-size` (or `uncompressed-size`) when set and numeric."""
        for name in ("extracted-size", "uncompressed-size"):
            value = self.metadata.get(name)
            if value and value.strip().isdigit():
                return int(value.strip())
        return None


def head_object(client: S3Client, url: S3Url) -> ObjectInfo:
    """HEAD the object: size, ETag and user metadata."""
    with s3_errors(str(url), client):
        answer = client.head_object(Bucket=url.bucket, Key=url.key)
    metadata = {k.lower(): v for k, v in answer.get("Metadata", {}).items()}
    return ObjectInfo(
        url=url,
        size=int(answer["ContentLength"]),
        etag=str(answer["ETag"]),
        metadata=metadata,
    )


def list_prefix(client: S3Client, url: S3Url) -> list[ObjectInfo]:
    """Every object under the prefix (folder placeholders ending in `/` left out), by key."""
    found: list[ObjectInfo] = []
    with s3_errors(str(url), client):
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=url.bucket, Prefix=url.key)
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"]
                if key.endswith("/"):
                    continue
                found.append(
                    ObjectInfo(url=url.child(key), size=int(item["Size"]), etag=item["ETag"])
                )
    if not found:
        raise S3NotFound(f"no such object: nothing under {url}")
    return sorted(found, key=lambda o: o.url.key)


def get_small_object(client: S3Client, info: ObjectInfo) -> bytes:
    """GET a small object (e.g. SHA256SUMS) whole, pinned to the listed ETag."""
    if info.size > SMALL_OBJECT_LIMIT:
        raise FetchError(f"{info.url} is too large to be a checksum list ({info.size} bytes)")
    with s3_errors(str(info.url), client):
        answer = client.get_object(Bucket=info.url.bucket, Key=info.url.key, IfMatch=info.etag)
        return answer["Body"].read()
