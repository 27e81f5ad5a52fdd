"""roles/model_fetch on a test host container, fetching from the moto S3 server on this machine
through an SSH reverse forward: a model is fetched only with a sha256 to check it against (here
the object's x-amz-meta-sha256) or with model_fetch_allow_unverified, the error names the ways,
and the S3 credentials the role writes on the host are gone once the fetch is over, whatever its
outcome, with a second run still changed=0."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.containers import PIP_VARS, VENV_PACKAGES, Host, Run, started_host
from tests.fetch.conftest import KEY_ID, REGION, SECRET, Bucket, MotoServer
from tests.fetch.models import archive, sharded_model
from tests.support import REPO

PLAYBOOK = REPO / "tests" / "fetch" / "model_fetch.yml"
CREDENTIALS = "/etc/vastllm/aws-credentials"
MODELS = "/workspace/models"


@pytest.fixture
def gzip_decoder() -> str:
    """One run of these slow tests, not one per gzip decoder (the host picks its own)."""
    return "auto"


@pytest.fixture(scope="module")
def host(moto: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    port = moto.endpoint.rsplit(":", 1)[1]
    forward = f"-R {port}:127.0.0.1:{port}"  # the host reaches moto on its own loopback
    ssh = f"{forward} -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no"
    tmp = tmp_path_factory.mktemp("model-fetch-role")
    with started_host(
        "vast-like",
        tmp,
        VENV_PACKAGES,
        {"ansible_ssh_extra_args": ssh},
    ) as h:
        yield h


def _run(host: Host, bucket: Bucket, url: str, name: str, **extra: Any) -> Run:
    settings = {
        "model_fetch_url": url,
        "model_fetch_name": name,
        "model_fetch_endpoint_url": bucket.options.endpoint_url,
        "model_fetch_region": REGION,
        "model_fetch_aws_access_key_id": KEY_ID,
        "model_fetch_aws_secret_access_key": SECRET,
        "model_fetch_workers": 2,
        "model_fetch_chunk_mib": 1,
        "vastllm_model_dir": MODELS,
        **PIP_VARS,
        **extra,
    }
    extra_file = host.tmp / f"{name}.json"  # the secret stays out of argv
    extra_file.write_text(json.dumps(settings))
    run = host.playbook(PLAYBOOK, "-e", f"@{extra_file}")
    assert SECRET not in run.output
    assert host.sh(f"test -e {CREDENTIALS}", check=False).returncode != 0, "credentials left"
    return run


def test_a_verified_model_is_fetched_and_the_credentials_removed(
    host: Host, bucket: Bucket
) -> None:
    url = bucket.put("m.tar.gz", archive(sharded_model(shards=1), "tar.gz"))  # with its sha256

    first = _run(host, bucket, url, "verified")
    again = _run(host, bucket, url, "verified")

    assert first.rc == 0, first.output
    assert host.sh(f"test -f {MODELS}/verified/.vastllm-fetch.json", check=False).returncode == 0
    assert again.rc == 0, again.output
    assert again.changed == 0, again.changed_tasks() or again.output


def test_an_unverified_model_is_refused_unless_allowed(host: Host, bucket: Bucket) -> None:
    url = bucket.put("u.tar", archive(sharded_model(shards=1), "tar"), verified=False)

    refused = _run(host, bucket, url, "unverified")

    assert refused.rc != 0
    for way in ("--sha256", "x-amz-meta-sha256", "SHA256SUMS", "model_fetch_allow_unverified"):
        assert way in refused.output, refused.output
    assert host.sh(f"test -e {MODELS}/unverified", check=False).returncode != 0

    allowed = _run(host, bucket, url, "unverified", model_fetch_allow_unverified=True)
    assert allowed.rc == 0, allowed.output
    marker = json.loads(host.sh(f"cat {MODELS}/unverified/.vastllm-fetch.json").stdout)
    assert marker["source"] == url


def test_credentials_an_earlier_version_left_are_removed(host: Host, bucket: Bucket) -> None:
    url = bucket.put("m.tar.gz", archive(sharded_model(shards=1), "tar.gz"))
    _run(host, bucket, url, "stale")
    host.sh(f"mkdir -p /etc/vastllm && echo '[default]' > {CREDENTIALS}")

    run = _run(host, bucket, url, "stale")

    assert run.rc == 0, run.output
    assert run.changed == 1, run.output  # the removal of the stale file
