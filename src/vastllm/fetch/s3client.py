"""Build the boto3 S3 client and turn botocore failures into clear `FetchError`s.

Credentials come from explicit arguments, else boto's default chain (AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, shared config, instance profile). They are handed to
boto and never logged, formatted into a message or kept in a repr.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)

from vastllm.fetch.errors import (
    FetchError,
    ObjectChanged,
    S3AccessDenied,
    S3Error,
    S3NotFound,
    S3Unreachable,
    UsageError,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

__all__ = [
    "AddressingStyle",
    "S3Client",
    "S3Options",
    "client_error",
    "endpoint_of",
    "make_client",
    "s3_errors",
]

AddressingStyle = Literal["auto", "virtual", "path"]

_DENIED = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AllAccessDisabled",
    "AuthorizationHeaderMalformed",
    "403",
    "Forbidden",
}
_MISSING_KEY = {"NoSuchKey", "404", "NotFound"}


@dataclass(frozen=True)
class S3Options:
    """Where and how to reach S3 (AWS or any S3-compatible store: MinIO, R2, B2)."""

    endpoint_url: str | None = None
    region: str | None = None
    addressing_style: AddressingStyle | None = None
    profile: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    max_attempts: int = 5
    connect_timeout: float = 10.0
    read_timeout: float = 60.0


def make_client(options: S3Options, pool_size: int) -> S3Client:
    """An S3 client whose connection pool can serve `pool_size` threads at once."""
    config = Config(
        max_pool_connections=max(pool_size, 1),
        retries={"max_attempts": options.max_attempts, "mode": "standard"},
        connect_timeout=options.connect_timeout,
        read_timeout=options.read_timeout,
    )
    if options.addressing_style:
        config = config.merge(Config(s3={"addressing_style": options.addressing_style}))
    try:
        session = boto3.session.Session(
            aws_access_key_id=options.access_key_id,
            aws_secret_access_key=options.secret_access_key,
            aws_session_token=options.session_token,
            region_name=options.region,
            profile_name=options.profile,
        )
        return session.client("s3", endpoint_url=options.endpoint_url, config=config)
    except ProfileNotFound:
        raise UsageError(f"AWS profile {options.profile!r} not found in the AWS config") from None
    except ValueError as e:  # e.g. a malformed endpoint URL
        raise UsageError(f"invalid S3 settings: {e}") from None


def endpoint_of(client: S3Client) -> str:
    """The endpoint the client talks to (for messages)."""
    return str(client.meta.endpoint_url)


def client_error(error: ClientError, what: str) -> FetchError:
    """Map a ClientError answered for `what` (an s3:// URL) to a FetchError."""
    info = error.response.get("Error", {})
    code = str(info.get("Code", ""))
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in _DENIED or status == 403:
        return S3AccessDenied(
            f"S3 denied access to {what}: check AWS_ACCESS_KEY_ID/secret "
            f"(and that they may read this bucket) [{code or status}]"
        )
    if code == "NoSuchBucket":
        return S3NotFound(f"no such object: {what} (the bucket does not exist)")
    if code in _MISSING_KEY or status == 404:
        return S3NotFound(f"no such object: {what}")
    if code in {"PreconditionFailed", "412"} or status == 412:
        return ObjectChanged(f"{what} changed while it was being downloaded; run again")
    if code == "InvalidRange":
        return ObjectChanged(f"{what} is shorter than announced (changed during download?)")
    return S3Error(f"S3 error on {what}: {code or status}")


def _unreachable(error: Exception, what: str, client: S3Client | None) -> S3Unreachable:
    """The endpoint could not be reached, or stopped answering while `what` was read."""
    where = endpoint_of(client) if client is not None else "the S3 endpoint"
    name = type(error).__name__
    if isinstance(error, EndpointConnectionError | ConnectTimeoutError):
        return S3Unreachable(
            f"cannot reach S3 endpoint {where} for {what} ({name}); "
            "check --endpoint-url and the network"
        )
    return S3Unreachable(f"S3 endpoint {where} stopped answering while reading {what} ({name})")


@contextmanager
def s3_errors(what: str, client: S3Client | None = None) -> Iterator[None]:
    """Translate botocore exceptions raised inside the block into FetchErrors."""
    try:
        yield
    except ClientError as e:
        raise client_error(e, what) from e
    except (NoCredentialsError, PartialCredentialsError):
        raise S3AccessDenied(
            f"no usable AWS credentials for {what}: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or use an instance profile)"
        ) from None
    except (
        EndpointConnectionError,
        ConnectTimeoutError,
        ReadTimeoutError,
        ConnectionClosedError,
    ) as e:
        raise _unreachable(e, what, client) from e
    except BotoCoreError as e:
        raise S3Error(f"S3 client error on {what}: {type(e).__name__}") from e
