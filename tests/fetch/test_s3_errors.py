"""S3 failures become one clear line: denied credentials, missing objects, dead endpoints.

Credentials are checked for real: a second moto server runs with IAM authentication switched
on (moto's `/moto-api/reset-auth`), with one IAM user allowed to read S3.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from tests.fetch.conftest import REGION, Bucket, start_moto, stop_moto
from tests.fetch.models import archive, sha256, sharded_model
from tests.support import free_port
from vastllm.fetch import (
    S3AccessDenied,
    S3NotFound,
    S3Options,
    S3Unreachable,
    UsageError,
    fetch,
)


@dataclass
class AuthServer:
    endpoint: str
    key_id: str
    secret: str
    url: str


@pytest.fixture(scope="module")
def auth_server() -> Iterator[AuthServer]:
    server = start_moto()
    try:
        admin = {
            "endpoint_url": server.endpoint,
            "region_name": REGION,
            "aws_access_key_id": "AKIAADMINBOOTSTRAP00",
            "aws_secret_access_key": "bootstrap",
        }
        iam = boto3.client("iam", **admin)
        iam.create_user(UserName="fetcher")
        key = iam.create_access_key(UserName="fetcher")["AccessKey"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(
            UserName="fetcher", PolicyName="read", PolicyDocument=json.dumps(policy)
        )
        s3 = boto3.client("s3", **admin)
        s3.create_bucket(Bucket="private-models")
        body = archive(sharded_model(shards=1), "tar")
        s3.put_object(
            Bucket="private-models", Key="m.tar", Body=body, Metadata={"sha256": sha256(body)}
        )
        # from now on every request is authenticated
        request = urllib.request.Request(  # noqa: S310 - loopback moto server
            f"{server.endpoint}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
            assert answer.status == 200
        yield AuthServer(
            server.endpoint, key["AccessKeyId"], key["SecretAccessKey"], "s3://private-models/m.tar"
        )
    finally:
        stop_moto(server)


def _options(server: AuthServer, key_id: str, secret: str) -> S3Options:
    return S3Options(
        endpoint_url=server.endpoint,
        region=REGION,
        access_key_id=key_id,
        secret_access_key=secret,
        max_attempts=1,
    )


def test_unknown_access_key_is_denied(auth_server: AuthServer, tmp_path: Path) -> None:
    secret = "wrong-secret-" + uuid.uuid4().hex
    with pytest.raises(S3AccessDenied) as error:
        fetch(
            auth_server.url,
            tmp_path / "m",
            s3=_options(auth_server, "AKIANOSUCHKEY0000000", secret),
        )
    message = str(error.value)
    assert message.startswith(
        f"S3 denied access to {auth_server.url}: check AWS_ACCESS_KEY_ID/secret"
    )
    assert secret not in message
    assert not (tmp_path / "m").exists()


def test_wrong_secret_is_denied(auth_server: AuthServer, tmp_path: Path) -> None:
    secret = "wrong-secret-" + uuid.uuid4().hex
    with pytest.raises(S3AccessDenied, match="check AWS_ACCESS_KEY_ID/secret") as error:
        fetch(auth_server.url, tmp_path / "m", s3=_options(auth_server, auth_server.key_id, secret))
    assert secret not in str(error.value)
    assert auth_server.secret not in str(error.value)


def test_right_credentials_work_on_the_same_server(auth_server: AuthServer, tmp_path: Path) -> None:
    options = _options(auth_server, auth_server.key_id, auth_server.secret)
    result = fetch(auth_server.url, tmp_path / "m", s3=options)
    assert result.changed is True
    assert result.layout["kind"] == "sharded-safetensors"


def test_missing_object(bucket: Bucket, tmp_path: Path) -> None:
    url = f"s3://{bucket.name}/nope.tar.gz"
    with pytest.raises(S3NotFound, match=f"no such object: {url}"):
        fetch(url, tmp_path / "m", s3=bucket.options)
    assert not (tmp_path / "m").exists()


def test_missing_bucket(bucket: Bucket, tmp_path: Path) -> None:
    url = f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/m.tar.gz"
    with pytest.raises(S3NotFound, match="no such object"):
        fetch(url, tmp_path / "m", s3=bucket.options)


def test_empty_prefix(bucket: Bucket, tmp_path: Path) -> None:
    with pytest.raises(S3NotFound, match="no such object: nothing under"):
        fetch(f"s3://{bucket.name}/empty/", tmp_path / "m", s3=bucket.options)


def test_unreachable_endpoint(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    options = S3Options(
        endpoint_url=f"http://127.0.0.1:{port}",
        region=REGION,
        access_key_id="AKIAUNREACHABLE00000",
        secret_access_key="unreachable-secret",  # noqa: S106 - a test value
        max_attempts=1,
        connect_timeout=2,
    )
    with pytest.raises(S3Unreachable) as error:
        fetch("s3://models/m.tar.gz", tmp_path / "m", s3=options)
    assert f"cannot reach S3 endpoint http://127.0.0.1:{port}" in str(error.value)
    assert "unreachable-secret" not in str(error.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://bucket/m.tar.gz", "not an s3:// URL"),
        ("s3:///m.tar.gz", "no bucket"),
        ("s3://bucket/model.zip", "unsupported object type"),
        ("s3://bucket/prefix-without-slash", "prefix ending in '/'"),
    ],
)
def test_bad_urls_are_usage_errors(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        fetch(url, tmp_path / "m")


def test_bad_sha256_argument_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="64 hexadecimal"):
        fetch("s3://bucket/m.tar.gz", tmp_path / "m", sha256="abc")
