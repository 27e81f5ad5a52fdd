"""A real S3 server (moto in server mode, on loopback) and helpers for the fetch tests."""

from __future__ import annotations

import collections
import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support import free_port, wait_http
from vastllm.fetch import S3Options, TransferOptions
from vastllm.fetch.inflate import ENV as GZIP_DECODER_ENV
from vastllm.fetch.inflate import installed
from vastllm.fetch.s3client import make_client

REGION = "us-east-1"
KEY_ID = "AKIAFETCHTESTS000000"
SECRET = "fetch-tests-secret-never-printed"  # noqa: S105 - moto accepts any in open mode
# Small ranges so that even a ~1 MB object is fetched by several parallel ranged GETs.
SMALL_TRANSFER = TransferOptions(workers=4, chunk_size=128 * 1024, prefetch=3)


def _no_aws_leaks() -> dict[str, str]:
    """Env for boto: no ambient config, and never ask the EC2 metadata service (not loopback)."""
    return {
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


@pytest.fixture(autouse=True)
def _isolated_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("AWS_", "VASTLLM_FETCH_")):
            monkeypatch.delenv(name)
    for name, value in _no_aws_leaks().items():
        monkeypatch.setenv(name, value)


@pytest.fixture(autouse=True, params=installed(), ids=lambda name: f"gzip={name}")
def gzip_decoder(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, _isolated_aws_env: None
) -> str:
    """Every fetch test runs once per installed gzip decoder (isal and zlib where both are);
    CLI subprocesses get the same choice through cli_env()."""
    monkeypatch.setenv(GZIP_DECODER_ENV, request.param)
    return str(request.param)


@dataclass
class MotoServer:
    endpoint: str
    process: subprocess.Popen[bytes]


def start_moto(env: dict[str, str] | None = None) -> MotoServer:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{endpoint}/moto-api/data.json", timeout=60)
    except TimeoutError:
        process.kill()
        raise
    return MotoServer(endpoint, process)


def stop_moto(server: MotoServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    server = start_moto()
    yield server
    stop_moto(server)


@pytest.fixture(scope="session")
def s3opts(moto: MotoServer) -> S3Options:
    return S3Options(
        endpoint_url=moto.endpoint,
        region=REGION,
        access_key_id=KEY_ID,
        secret_access_key=SECRET,
        max_attempts=2,
    )


class CountingClient:
    """A boto3 S3 client (the one the fetch code uses) that counts the calls it makes."""

    def __init__(self, options: S3Options, pool: int = 8) -> None:
        self.client = make_client(options, pool)
        self.calls: collections.Counter[str] = collections.Counter()
        self.ranges: list[str] = []
        self.client.meta.events.register("before-call.s3", self._count)

    def _count(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls[model.name] += 1
        header = params.get("headers", {}).get("Range")
        if model.name == "GetObject" and header:
            self.ranges.append(header)

    def reset(self) -> None:
        self.calls.clear()
        self.ranges.clear()


@dataclass
class Bucket:
    """A fresh bucket on the moto server, with an admin client to put objects."""

    name: str
    admin: Any
    options: S3Options

    def put(
        self,
        key: str,
        body: bytes,
        metadata: dict[str, str] | None = None,
        *,
        verified: bool = True,
    ) -> str:
        """Upload `body`; with its sha256 as x-amz-meta-sha256 (what the project's uploads set,
        and what fetch needs) unless `metadata` names another or `verified` is false."""
        meta = {"sha256": hashlib.sha256(body).hexdigest()} if verified else {}
        meta.update(metadata or {})
        self.admin.put_object(Bucket=self.name, Key=key, Body=body, Metadata=meta)
        return f"s3://{self.name}/{key}"

    def put_files(self, prefix: str, files: dict[str, bytes]) -> str:
        """Upload the files of a prefix as they are (no SHA256SUMS added: the caller's)."""
        for name, data in files.items():
            self.put(prefix + name, data, verified=False)
        return f"s3://{self.name}/{prefix}"

    def counting(self) -> CountingClient:
        return CountingClient(self.options)


@pytest.fixture
def bucket(s3opts: S3Options) -> Bucket:
    admin = boto3.client(
        "s3",
        endpoint_url=s3opts.endpoint_url,
        region_name=REGION,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
    )
    name = f"models-{uuid.uuid4().hex[:12]}"
    admin.create_bucket(Bucket=name)
    return Bucket(name, admin, s3opts)


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    """`…/models/` with a sibling model already installed, which must never be touched."""
    root = tmp_path / "models"
    sibling = root / "sibling"
    sibling.mkdir(parents=True)
    (sibling / "model.safetensors").write_bytes(b"sibling weights")
    (sibling / "config.json").write_text("{}")
    return root


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for `python -m vastllm.fetch` subprocesses (credentials like a host has)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "VASTLLM_FETCH_")) or k == GZIP_DECODER_ENV
    }
    env.update(_no_aws_leaks())
    env.update(
        {
            "AWS_ACCESS_KEY_ID": KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_DEFAULT_REGION": REGION,
            "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
        }
    )
    env.update(extra or {})
    return env
