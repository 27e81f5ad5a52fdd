"""`python -m vastllm.fetch` as the Ansible role runs it: JSON on stdout, one error line, codes."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

from tests.fetch.conftest import SECRET, Bucket, cli_env
from tests.fetch.models import archive, sha256, sharded_model
from tests.support import free_port
from vastllm.fetch.progress import Progress, StderrProgress

SHARD = "model-00002-of-00003.safetensors"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vastllm.fetch", *args],
        capture_output=True,
        text=True,
        env=env or cli_env(),
        timeout=120,
        check=False,
    )


def _assert_one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in done.stderr
    assert SECRET not in done.stderr + done.stdout
    return lines[0]


def test_fetch_again_verify_repair_cycle(bucket: Bucket, models_dir: Path) -> None:
    files = sharded_model()
    body = archive(files, "tar.zst")
    url = bucket.put("m.tar.zst", body)
    dest = str(models_dir / "m")
    common = ["--dest", dest, "--endpoint-url", str(bucket.options.endpoint_url)]
    small = ["--workers", "3", "--chunk-mib", "1", "--json"]

    dry = run_cli("--url", url, *common, *small, "--check")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["action"] == "would-fetch"
    assert json.loads(dry.stdout)["changed"] is True
    assert not (models_dir / "m").exists()

    first = run_cli("--url", url, *common, *small, "--sha256", sha256(body))
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert result["changed"] is True
    assert result["dest"] == dest
    assert result["layout"]["kind"] == "sharded-safetensors"
    assert result["bytes"] == len(body)
    assert result["problems"] == []
    assert result["sha256_verified"] is True
    assert isinstance(result["seconds"], float)

    second = run_cli("--url", url, *common, *small)
    assert second.returncode == 0
    assert json.loads(second.stdout)["changed"] is False

    (models_dir / "m" / SHARD).unlink()
    check = run_cli("--dest", dest, "--verify-only", "--json")
    assert check.returncode == 1
    report = json.loads(check.stdout)
    assert report["changed"] is False
    assert report["missing"] == [SHARD]
    assert report["problems"] == [f"{SHARD}: missing"]
    assert "--repair" in _assert_one_error_line(check)

    fixed = run_cli(*common, "--repair", "--json")
    assert fixed.returncode == 0, fixed.stderr
    assert json.loads(fixed.stdout)["repaired"] == [SHARD]
    assert (models_dir / "m" / SHARD).read_bytes() == files[SHARD]

    healthy = run_cli("--dest", dest, "--verify-only", "--json")
    assert healthy.returncode == 0
    assert json.loads(healthy.stdout)["ok"] is True


def test_human_output_without_json(bucket: Bucket, models_dir: Path) -> None:
    url = bucket.put("m.tar", archive(sharded_model(shards=1), "tar"))
    done = run_cli(
        "--url",
        url,
        "--dest",
        str(models_dir / "m"),
        "--endpoint-url",
        str(bucket.options.endpoint_url),
    )
    assert done.returncode == 0
    assert done.stdout.startswith(f"fetched: {models_dir / 'm'} (sharded-safetensors")


def test_failure_is_one_line_with_exit_1_and_json_on_stdout(
    bucket: Bucket, models_dir: Path
) -> None:
    url = bucket.put("m.tar.gz", archive(sharded_model(shards=1), "tar.gz"))
    done = run_cli(
        "--url",
        url,
        "--dest",
        str(models_dir / "m"),
        "--sha256",
        "a" * 64,
        "--endpoint-url",
        str(bucket.options.endpoint_url),
        "--json",
    )
    assert done.returncode == 1
    assert "sha256 mismatch" in _assert_one_error_line(done)
    answer = json.loads(done.stdout)
    assert answer["failed"] is True
    assert answer["changed"] is False
    assert answer["error_type"] == "ChecksumMismatch"


def test_unreachable_endpoint_exit_1(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    done = run_cli(
        "--url",
        "s3://models/m.tar.gz",
        "--dest",
        str(tmp_path / "m"),
        "--endpoint-url",
        endpoint,
        env=cli_env({"VASTLLM_FETCH_MAX_ATTEMPTS": "1", "VASTLLM_FETCH_CONNECT_TIMEOUT": "2"}),
    )
    assert done.returncode == 1
    assert f"cannot reach S3 endpoint {endpoint}" in _assert_one_error_line(done)


def test_missing_credentials_exit_1(tmp_path: Path, bucket: Bucket) -> None:
    env = cli_env()
    del env["AWS_ACCESS_KEY_ID"]
    del env["AWS_SECRET_ACCESS_KEY"]
    done = run_cli(
        "--url",
        f"s3://{bucket.name}/m.tar",
        "--dest",
        str(tmp_path / "m"),
        "--endpoint-url",
        str(bucket.options.endpoint_url),
        env=env,
    )
    assert done.returncode == 1
    assert "AWS_ACCESS_KEY_ID" in _assert_one_error_line(done)


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    no_dest = run_cli("--url", "s3://b/m.tar.gz")
    assert no_dest.returncode == 2
    assert "--dest" in no_dest.stderr

    bad_url = run_cli("--url", "http://b/m.tar.gz", "--dest", str(tmp_path / "m"), "--json")
    assert bad_url.returncode == 2
    assert "not an s3:// URL" in _assert_one_error_line(bad_url)
    assert json.loads(bad_url.stdout)["error_type"] == "UsageError"

    no_url = run_cli("--dest", str(tmp_path / "m"))
    assert no_url.returncode == 2
    assert "--url is required" in _assert_one_error_line(no_url)

    both = run_cli("--dest", str(tmp_path / "m"), "--verify-only", "--repair")
    assert both.returncode == 2

    bad_env = run_cli("--dest", str(tmp_path / "m"), env=cli_env({"VASTLLM_FETCH_WORKERS": "0"}))
    assert bad_env.returncode == 2
    assert "VASTLLM_FETCH_WORKERS" in bad_env.stderr


def test_progress_lines_on_stderr(bucket: Bucket, models_dir: Path) -> None:
    url = bucket.put("m.tar.gz", archive(sharded_model(shards=4), "tar.gz"))
    done = run_cli(
        "--url",
        url,
        "--dest",
        str(models_dir / "m"),
        "--chunk-mib",
        "1",
        "--endpoint-url",
        str(bucket.options.endpoint_url),
        "--progress-seconds",
        "0.001",
    )
    assert done.returncode == 0
    assert re.search(r"download [\d.]+/[\d.]+ MiB \(100%\) [\d.]+ MiB/s done in", done.stderr)


def test_progress_line_format() -> None:
    out = io.StringIO()
    printer = StderrProgress(interval=5, stream=out)
    gib = 1024**3
    printer(Progress("download", 0, 4 * gib, 0.0))  # the first report only starts the clock
    assert out.getvalue() == ""
    printer._first["download"] -= 10  # as if 10 s went by
    printer(Progress("download", gib, 4 * gib, 10.0))
    assert out.getvalue() == ("vastllm.fetch: download 1.00/4.00 GiB (25%) 102.4 MiB/s ETA 0:30\n")
    printer(Progress("download", 2 * gib, 4 * gib, 11.0))  # within the interval: quiet
    assert out.getvalue().count("\n") == 1
