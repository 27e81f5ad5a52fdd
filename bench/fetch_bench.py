"""Benchmark: streaming S3 fetch+extract (vastllm.fetch) vs download-then-`tar xzf`.

Run on demand (not a test):

    .venv/bin/python bench/fetch_bench.py [--size-gib 1.0] [--workers 8] [--chunk-mib 32]

Builds (once, cached under /var/cache/vastllm/bench) a tar.gz (gzip level 1) of random shard
files plus index/tokenizer/config, uploads it to a moto S3 server on loopback, then measures
(a) `vastllm.fetch.fetch` and (b) the two-step way: boto3 `download_file`, `tar xzf`, delete
the tarball. For each: wall time, throughput, and the peak disk used under its work dir
(sampled every 50 ms by a thread walking the tree: the tarball, partial and final files).
Prints a Markdown table and appends it, with the command, to bench/RESULTS.md.

Two servers, one table each (`--servers moto,static`):
- moto in server mode (as the tests use). It keeps objects in spooled temp files, so it runs
  with TMPDIR=/dev/shm and the stored object never shares the disk being measured. moto copies
  the whole object for every ranged GET, which makes it the bottleneck for both methods.
- StaticS3Double, a bench-only S3 double in this file (HEAD, ranged GET, If-Match, metadata,
  served with sendfile), to show the client side when the server is not the limit.
Both methods use the same range size and concurrency.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from tests.support import free_port, wait_http  # noqa: E402

from vastllm.fetch import S3Options, TransferOptions, fetch  # noqa: E402

MiB = 1024 * 1024
CACHE = Path("/var/cache/vastllm/bench")
RESULTS = REPO / "bench" / "RESULTS.md"
WORK_DIR = Path("/var/tmp/vastllm-fetch-bench")  # noqa: S108 - a fixed, root-owned bench dir
KEY_ID, SECRET, REGION = "AKIABENCH00000000000", "bench-secret", "us-east-1"


def build_tarball(size_gib: float, shards: int) -> tuple[Path, dict[str, int | str]]:
    """A cached tar.gz of `shards` random shard files totalling `size_gib` GiB."""
    CACHE.mkdir(parents=True, exist_ok=True)
    name = f"bench-{size_gib:g}gib-{shards}shards.tar.gz"
    path, meta_path = CACHE / name, CACHE / (name + ".json")
    if path.exists() and meta_path.exists():
        return path, json.loads(meta_path.read_text())
    shard_size = int(size_gib * 1024**3) // shards
    weight_map = {}
    extracted = 0
    started = time.monotonic()
    partial = path.with_suffix(".partial")
    with tarfile.open(partial, mode="w:gz", compresslevel=1) as tf:
        for i in range(1, shards + 1):
            shard = f"model-{i:05d}-of-{shards:05d}.safetensors"
            weight_map[f"layer.{i}"] = shard
            info = tarfile.TarInfo(shard)
            info.size = shard_size
            info.mode = 0o644
            info.mtime = int(time.time())
            tf.addfile(info, _RandomFile(shard_size))
            extracted += shard_size
        small = {
            "model.safetensors.index.json": json.dumps({"weight_map": weight_map}).encode(),
            "tokenizer.json": b'{"version": "1.0"}',
            "config.json": b'{"model_type": "llama"}',
        }
        for fname, data in small.items():
            info = tarfile.TarInfo(fname)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, _BytesReader(data))
            extracted += len(data)
    digest = hashlib.sha256()
    with open(partial, "rb") as f:
        while block := f.read(16 * MiB):
            digest.update(block)
    meta: dict[str, int | str] = {
        "extracted_bytes": extracted,
        "sha256": digest.hexdigest(),
        "size": partial.stat().st_size,
        "build_seconds": round(time.monotonic() - started, 1),
    }
    partial.rename(path)
    meta_path.write_text(json.dumps(meta))
    return path, meta


class _RandomFile:
    """A file-like object of `size` random bytes (for tarfile.addfile)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return os.urandom(n)


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, n: int = -1) -> bytes:
        out, self.data = (self.data, b"") if n < 0 else (self.data[:n], self.data[n:])
        return out


def tree_bytes(root: Path) -> int:
    """Disk blocks used under root (like `du -s`), tolerant of files vanishing meanwhile."""
    total = 0
    stack = [root]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            total += st.st_blocks * 512
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
    return total


class PeakDisk:
    """Samples tree_bytes(root) and the filesystem's used bytes every `every` seconds."""

    def __init__(self, root: Path, every: float = 0.05) -> None:
        self.root, self.every = root, every
        self.peak_tree = 0
        self.peak_fs = 0
        self._stop = threading.Event()
        self._base = self._fs_used()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _fs_used(self) -> int:
        st = os.statvfs(self.root)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak_tree = max(self.peak_tree, tree_bytes(self.root))
            self.peak_fs = max(self.peak_fs, self._fs_used() - self._base)
            self._stop.wait(self.every)

    def __enter__(self) -> PeakDisk:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_tree = max(self.peak_tree, tree_bytes(self.root))


@dataclass
class Row:
    """One method's runs: median wall time, worst peak disk."""

    method: str
    object_bytes: int
    extracted_bytes: int
    seconds: list[float] = field(default_factory=list)
    peak_tree: int = 0
    peak_fs: int = 0

    def add(self, seconds: float, peak: PeakDisk) -> None:
        self.seconds.append(seconds)
        self.peak_tree = max(self.peak_tree, peak.peak_tree)
        self.peak_fs = max(self.peak_fs, peak.peak_fs)

    def markdown(self) -> str:
        median = statistics.median(self.seconds)
        runs = ", ".join(f"{s:.1f}" for s in self.seconds)
        return (
            f"| {self.method} | {median:.1f} ({runs}) | {self.object_bytes / median / 1e6:.0f} "
            f"| {self.peak_tree / MiB:.0f} | {self.peak_tree / self.extracted_bytes:.3f} "
            f"| {self.peak_fs / MiB:.0f} |"
        )


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    # moto spills objects to TMPDIR: keep them in RAM, off the disk being measured
    env = {**os.environ, "TMPDIR": "/dev/shm"}  # noqa: S108
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    endpoint = f"http://127.0.0.1:{port}"
    wait_http(f"{endpoint}/moto-api/data.json", timeout=60)
    return proc, endpoint


class StaticS3Double(ThreadingHTTPServer):
    """Bench-only S3 double: serves one file as `/bench/model.tar.gz` (HEAD, ranged GET,
    If-Match, x-amz-meta-*) straight from disk with sendfile. It exists because moto copies the
    whole object for every ranged GET, which hides the client side being measured."""

    daemon_threads = True

    def __init__(self, path: Path, etag: str, metadata: dict[str, str]) -> None:
        super().__init__(("127.0.0.1", free_port()), _StaticHandler)
        self.path, self.etag, self.metadata = path, etag, metadata
        self.size = path.stat().st_size

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _StaticHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StaticS3Double

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        srv = self.server
        if urllib.parse.urlparse(self.path).path != "/bench/model.tar.gz":
            self._empty(404)
            return
        if self.headers.get("If-Match") not in (None, srv.etag):
            self._empty(412)
            return
        start, end, status = 0, srv.size - 1, 200
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            first, _, last = rng[len("bytes=") :].partition("-")
            start, end, status = int(first), min(int(last or end), end), 206
        self.send_response(status)
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("ETag", srv.etag)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Last-Modified", "Mon, 23 Nov 2026 00:00:00 GMT")
        for name, value in srv.metadata.items():
            self.send_header(f"x-amz-meta-{name}", value)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{srv.size}")
        self.end_headers()
        if body:
            with open(srv.path, "rb") as f:
                offset, left = start, end - start + 1
                while left > 0:
                    sent = os.sendfile(self.connection.fileno(), f.fileno(), offset, left)
                    if sent == 0:
                        break
                    offset, left = offset + sent, left - sent

    def _empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


def measure(
    endpoint: str, work_dir: Path, args: argparse.Namespace, size: int, extracted: int
) -> list[Row]:
    """Run (a) the streaming fetch and (b) the two-step way against one endpoint, `--repeat`
    times each, alternating which goes first."""
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
    )
    options = S3Options(
        endpoint_url=endpoint, region=REGION, access_key_id=KEY_ID, secret_access_key=SECRET
    )
    transfer = TransferOptions(workers=args.workers, chunk_size=args.chunk_mib * MiB)
    config = TransferConfig(multipart_chunksize=args.chunk_mib * MiB, max_concurrency=args.workers)
    streaming = Row("vastllm.fetch (streaming)", size, extracted)
    two_step = Row("download_file + tar xzf + rm", size, extracted)

    def run_streaming() -> None:
        root = work_dir / "stream"
        root.mkdir(parents=True)
        os.sync()
        with PeakDisk(root) as peak:
            t0 = time.monotonic()
            result = fetch("s3://bench/model.tar.gz", root / "model", s3=options, transfer=transfer)
            seconds = time.monotonic() - t0
        if not (result.changed and result.sha256_verified):
            raise SystemExit(f"unexpected fetch result: {result}")
        streaming.add(seconds, peak)
        shutil.rmtree(root)

    def run_two_step() -> None:
        root = work_dir / "two-step"
        (root / "model").mkdir(parents=True)
        os.sync()
        with PeakDisk(root) as peak:
            t0 = time.monotonic()
            local = root / "model.tar.gz"
            s3.download_file("bench", "model.tar.gz", str(local), Config=config)
            subprocess.run(["tar", "xzf", str(local), "-C", str(root / "model")], check=True)
            local.unlink()
            seconds = time.monotonic() - t0
        two_step.add(seconds, peak)
        shutil.rmtree(root)

    for i in range(args.repeat):
        for step in (run_streaming, run_two_step) if i % 2 == 0 else (run_two_step, run_streaming):
            step()
    return [streaming, two_step]


def run_moto(tarball: Path, meta: dict[str, int | str], args: argparse.Namespace) -> list[Row]:
    proc, endpoint = start_moto()
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
        )
        s3.create_bucket(Bucket="bench")
        t0 = time.monotonic()
        s3.upload_file(
            str(tarball),
            "bench",
            "model.tar.gz",
            ExtraArgs={"Metadata": _metadata(meta)},
            Config=TransferConfig(multipart_chunksize=64 * MiB, max_concurrency=4),
        )
        print(f"uploaded to moto in {time.monotonic() - t0:.1f}s")
        return measure(
            endpoint, args.work_dir / "moto", args, int(meta["size"]), int(meta["extracted_bytes"])
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def run_static(tarball: Path, meta: dict[str, int | str], args: argparse.Namespace) -> list[Row]:
    server = StaticS3Double(tarball, f'"{str(meta["sha256"])[:32]}"', _metadata(meta))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        return measure(
            server.endpoint,
            args.work_dir / "static",
            args,
            int(meta["size"]),
            int(meta["extracted_bytes"]),
        )
    finally:
        server.shutdown()
        server.server_close()


def _metadata(meta: dict[str, int | str]) -> dict[str, str]:
    return {"sha256": str(meta["sha256"]), "extracted-size": str(meta["extracted_bytes"])}


SERVERS = {
    "moto": ("moto S3 server (TMPDIR=/dev/shm)", run_moto),
    "static": ("bench-only range-serving S3 double (sendfile from the page cache)", run_static),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=1.0)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--chunk-mib", type=int, default=32)
    parser.add_argument("--servers", default="moto,static", help="comma list: moto, static")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method (median)")
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR)
    args = parser.parse_args()
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

    tarball, meta = build_tarball(args.size_gib, args.shards)
    extracted = int(meta["extracted_bytes"])
    size = int(meta["size"])
    print(f"tarball {tarball} ({size / MiB:.0f} MiB, extracted {extracted / MiB:.0f} MiB)")
    shutil.rmtree(args.work_dir, ignore_errors=True)
    tables = []
    try:
        for name in args.servers.split(","):
            label, runner = SERVERS[name.strip()]
            rows = runner(tarball, meta, args)
            tables.append(
                f"Server: {label}\n\n"
                "| method | wall s, median (runs) | MB/s (stored bytes) "
                "| peak disk MiB (du of work dir) | peak / extracted | peak fs delta MiB |\n"
                "|---|---|---|---|---|---|\n" + "\n".join(r.markdown() for r in rows) + "\n"
            )
            print(tables[-1])
    finally:
        shutil.rmtree(args.work_dir, ignore_errors=True)

    command = ".venv/bin/python bench/fetch_bench.py " + shlex.join(sys.argv[1:])
    header = (
        f"## fetch: streaming vs two-step ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n\n"
        f"Command: `{command.strip()}`  \n"
        f"Machine: {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}, server and client on loopback.  \n"
        f"Object: tar.gz (level 1) of {args.shards} random shards, {size / MiB:.0f} MiB stored, "
        f"{extracted / MiB:.0f} MiB extracted; {args.workers} workers x {args.chunk_mib} MiB "
        "ranges for both methods, runs alternating which goes first. Peak disk: largest `du` "
        "of the method's work dir (tarball + partial + final files), sampled every 50 ms; "
        "fs delta: statvfs used-bytes growth (includes writeback noise).\n\n"
    )
    text = header + "\n".join(tables)
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmarks\n")
    with RESULTS.open("a") as f:
        f.write("\n" + text)
    print(f"appended to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
