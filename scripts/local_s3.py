#!/usr/bin/env python3
"""A local S3-compatible endpoint for the demo and the Molecule scenarios: moto's server mode
on a loopback port, holding the test model tarball like a team's S3 bucket would.

    local_s3.py start --port 45900 [--state DIR]     # background server, waits until it answers
    local_s3.py put --port 45900 FILE s3://BUCKET/KEY  # upload with x-amz-meta-sha256
    local_s3.py stop [--state DIR]

Hosts reach it through an SSH reverse forward (ssh -R PORT:127.0.0.1:PORT), so no traffic
leaves loopback. Credentials are moto's dummies; real ones never appear here.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

DEFAULT_STATE = Path(os.environ.get("VASTLLM_STATE", Path.home() / ".cache" / "vastllm")) / "s3"


def _endpoint(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(_endpoint(port), timeout=1):  # noqa: S310 - loopback only
            return True
    except OSError:
        return False


def start(port: int, state: Path) -> int:
    state.mkdir(parents=True, exist_ok=True)
    if _answers(port):
        print(f"local S3 already answers on {_endpoint(port)}")
        return 0
    log = (state / "moto.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    (state / "moto.pid").write_text(str(proc.pid))
    for _ in range(100):
        if _answers(port):
            print(f"local S3 on {_endpoint(port)} (pid {proc.pid})")
            return 0
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    print(f"local S3 did not start; see {state / 'moto.log'}", file=sys.stderr)
    return 1


def put(port: int, file: Path, url: str) -> int:
    import boto3  # noqa: PLC0415 - only this command needs it (the dev venv has it)

    if not url.startswith("s3://") or "/" not in url[5:]:
        print(f"expected s3://BUCKET/KEY, got {url}", file=sys.stderr)
        return 2
    bucket, key = url[5:].split("/", 1)
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    s3 = boto3.client("s3", endpoint_url=_endpoint(port), region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")  # noqa: S106
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        s3.create_bucket(Bucket=bucket)
    s3.upload_file(str(file), bucket, key,
                   ExtraArgs={"Metadata": {"sha256": digest.hexdigest()}})
    print(f"{url} <- {file} (sha256 {digest.hexdigest()})")
    return 0


def stop(state: Path) -> int:
    pid_file = state / "moto.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.killpg(int(pid_file.read_text()), signal.SIGTERM)
        pid_file.unlink()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_start = sub.add_parser("start")
    p_start.add_argument("--port", type=int, required=True)
    p_start.add_argument("--state", type=Path, default=DEFAULT_STATE)
    p_put = sub.add_parser("put")
    p_put.add_argument("--port", type=int, required=True)
    p_put.add_argument("file", type=Path)
    p_put.add_argument("url")
    p_stop = sub.add_parser("stop")
    p_stop.add_argument("--state", type=Path, default=DEFAULT_STATE)
    args = parser.parse_args()
    if args.cmd == "start":
        return start(args.port, args.state)
    if args.cmd == "put":
        return put(args.port, args.file, args.url)
    return stop(args.state)


if __name__ == "__main__":
    sys.exit(main())
