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

Weight-like data, each decoder (`--data weights [--weights smollm2|normal]`):

    .venv/bin/python bench/fetch_bench.py --data weights

Random bytes barely exercise inflate; real weights do. This mode builds shards from the test
model's bf16 safetensors (`tests.model.build_test_model`; or `--weights normal`: N(0, 0.02)
bf16 values from numpy), packs them with `tar czf` (gzip's default level 6) and with
`tar -I 'zstd -T0'` (zstd's default level 3), serves both from the static double and measures
in one run: download only (the fetch's own ranged reader + sha256, bytes dropped), fetch+extract
with zlib, with the decoder a fetch picks by itself (isal when installed), and of the .tar.zst;
then each stage alone from memory (inflate per decoder, tar parse + sha256 + write, sha256,
write), wall and CPU seconds, and the other processes' CPU meanwhile (the machine is shared).
It holds /tmp/vastllm-bench.lock like the other benchmarks.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import io
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import boto3
from boto3.s3.transfer import TransferConfig

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from tests.support import free_port, wait_http  # noqa: E402

from vastllm.fetch import S3Options, TransferOptions, fetch  # noqa: E402
from vastllm.fetch.decompress import decompressed  # noqa: E402
from vastllm.fetch.extract import COPY_SIZE, TarExtractor  # noqa: E402
from vastllm.fetch.gzipstream import GzipReader  # noqa: E402
from vastllm.fetch.inflate import ENV as GZIP_DECODER_ENV  # noqa: E402
from vastllm.fetch.inflate import GzipDecoder, gzip_decoder, installed  # noqa: E402
from vastllm.fetch.objects import head_object  # noqa: E402
from vastllm.fetch.ranged import RangedReader  # noqa: E402
from vastllm.fetch.s3client import make_client  # noqa: E402
from vastllm.fetch.s3url import SourceKind, parse_s3_url  # noqa: E402

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
    """Bench-only S3 double: serves one file as `/bench/<key>` (default `model.tar.gz`; HEAD,
    ranged GET, If-Match, x-amz-meta-*) straight from disk with sendfile. It exists because moto
    copies the whole object for every ranged GET, which hides the client side being measured."""

    daemon_threads = True

    def __init__(
        self, path: Path, etag: str, metadata: dict[str, str], key: str = "model.tar.gz"
    ) -> None:
        super().__init__(("127.0.0.1", free_port()), _StaticHandler)
        self.path, self.etag, self.metadata = path, etag, metadata
        self.key = key
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
        if urllib.parse.urlparse(self.path).path != f"/bench/{srv.key}":
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


# -- weight-like data: each decoder against download only -------------------------------------

GiB = 1024**3
BENCH_LOCK = Path("/tmp/vastllm-bench.lock")  # noqa: S108 - the lock every benchmark agrees on
# How the two archives are packed: the defaults a user gets (gzip -6; zstd -3, all cores).
PACKERS = {
    "tar.gz": ["tar", "--hard-dereference", "--sort=name", "-czf"],
    "tar.zst": ["tar", "--hard-dereference", "--sort=name", "-I", "zstd -T0", "-cf"],
}


@contextmanager
def bench_lock() -> Iterator[None]:
    """Hold the benchmarks' shared lock, so no other benchmark measures at the same time."""
    with BENCH_LOCK.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for {BENCH_LOCK} (another benchmark is measuring)...", flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _shard_names(count: int) -> list[str]:
    return [f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]


def _write_index(tree: Path, names: list[str]) -> None:
    weight_map = {f"layers.{i}.weight": name for i, name in enumerate(names)}
    (tree / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


def _smollm2_tree(size_gib: float) -> Path:
    """Copies (hard links) of the test model's bf16 safetensors as shards, plus its small files."""
    from tests.model.build_test_model import ensure_test_model  # noqa: PLC0415 - on demand

    model = ensure_test_model()
    weights = model / "model.safetensors"
    count = max(1, round(size_gib * GiB / weights.stat().st_size))
    tree = CACHE / f"weights-smollm2-{model.name.rsplit('-', 1)[-1]}-{count}x"
    if tree.is_dir():
        return tree
    partial = tree.with_name(tree.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    names = _shard_names(count)
    for name in names:
        try:
            os.link(weights, partial / name)  # tar --hard-dereference packs the bytes each time
        except OSError:
            shutil.copyfile(weights, partial / name)
    for small in model.iterdir():
        if small.is_file() and small.name != weights.name and not small.name.startswith("."):
            shutil.copyfile(small, partial / small.name)
    _write_index(partial, names)
    partial.rename(tree)
    return tree


def _normal_tree(size_gib: float, shards: int) -> Path:
    """Shards of bf16 values drawn from N(0, 0.02) (numpy, seeded): what trained weights look like
    to a compressor (sign/exponent byte skewed, mantissa byte close to random)."""
    import numpy as np  # noqa: PLC0415 - only this data source needs it

    tree = CACHE / f"weights-normal-{size_gib:g}gib-{shards}shards"
    if tree.is_dir():
        return tree
    partial = tree.with_name(tree.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    names = _shard_names(shards)
    values = int(size_gib * GiB) // shards // 2
    block = 16 * 1024 * 1024
    for seed, name in enumerate(names):
        rng = np.random.default_rng(seed)
        with open(partial / name, "wb") as f:
            for start in range(0, values, block):
                x = rng.normal(0.0, 0.02, min(block, values - start)).astype(np.float32)
                f.write((x.view(np.uint32) >> 16).astype(np.uint16).tobytes())  # bf16 = top half
    (partial / "config.json").write_text(json.dumps({"model_type": "llama", "torch_dtype": "bf16"}))
    (partial / "tokenizer.json").write_text(json.dumps({"version": "1.0"}))
    _write_index(partial, names)
    partial.rename(tree)
    return tree


def pack(tree: Path, fmt: str) -> tuple[Path, dict[str, int | str]]:
    """`tree` packed as `fmt` with the packer's default level (cached next to the tree)."""
    path = tree.with_name(f"{tree.name}.{fmt}")
    meta_path = path.with_name(path.name + ".json")
    if path.exists() and meta_path.exists():
        return path, json.loads(meta_path.read_text())
    partial = path.with_name(path.name + ".partial")
    command = [*PACKERS[fmt], str(partial), "-C", str(tree), "."]
    print(f"packing: {shlex.join(command)}", flush=True)
    started = time.monotonic()
    subprocess.run(command, check=True)
    digest = hashlib.sha256()
    with open(partial, "rb") as f:
        while block := f.read(16 * MiB):
            digest.update(block)
    meta: dict[str, int | str] = {
        "size": partial.stat().st_size,
        "sha256": digest.hexdigest(),
        "extracted_bytes": sum(p.stat().st_size for p in tree.iterdir()),
        "pack_seconds": round(time.monotonic() - started, 1),
        "command": shlex.join([*PACKERS[fmt], f"{tree.name}.{fmt}", "-C", tree.name, "."]),
    }
    partial.rename(path)
    meta_path.write_text(json.dumps(meta))
    return path, meta


class CpuMeter:
    """CPU seconds used by this process (server threads included) and by the whole machine."""

    def __enter__(self) -> CpuMeter:
        self._proc, self._machine, self._wall = os.times(), _machine_busy(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        proc, machine = os.times(), _machine_busy()
        self.wall = time.perf_counter() - self._wall
        self.cpu = (proc.user - self._proc.user) + (proc.system - self._proc.system)
        self.machine = machine - self._machine


def _machine_busy() -> float:
    """CPU seconds every process on the machine has spent busy since boot (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass
class Timing:
    """One kind of run over one object: wall and CPU seconds per run, worst peak disk."""

    label: str
    stored: int
    extracted: int
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    others: list[float] = field(default_factory=list)  # other processes' CPU s meanwhile
    peak: int = 0

    def add(self, meter: CpuMeter, peak: int = 0) -> None:
        self.seconds.append(meter.wall)
        self.cpu.append(meter.cpu)
        self.others.append(max(meter.machine - meter.cpu, 0.0))
        self.peak = max(self.peak, peak)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def markdown(self, disk: bool = True) -> str:
        runs = ", ".join(f"{s:.2f}" for s in self.seconds)
        cores = statistics.median(c / s for c, s in zip(self.cpu, self.seconds, strict=True))
        others = statistics.median(o / s for o, s in zip(self.others, self.seconds, strict=True))
        cells = [
            self.label,
            f"{self.median:.2f} ({runs})",
            f"{self.stored / self.median / 1e6:.0f}",
            f"{self.extracted / self.median / 1e6:.0f}",
            f"{cores:.2f}",
            f"{others:.2f}",
        ]
        if disk:
            cells.append(f"{self.peak / self.extracted:.3f}" if self.peak else "0")
        return "| " + " | ".join(cells) + " |"


@contextmanager
def gzip_decoder_env(name: str) -> Iterator[None]:
    """Run the block with $VASTLLM_FETCH_GZIP_DECODER set to `name`."""
    before = os.environ.get(GZIP_DECODER_ENV)
    os.environ[GZIP_DECODER_ENV] = name
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(GZIP_DECODER_ENV, None)
        else:
            os.environ[GZIP_DECODER_ENV] = before


class WeightsRun:
    """Download-only and fetch+extract runs of the weight-like archives, one static server each."""

    def __init__(self, archives: dict[str, tuple[Path, dict[str, int | str]]], args: Any) -> None:
        self.args = args
        self.transfer = TransferOptions(workers=args.workers, chunk_size=args.chunk_mib * MiB)
        self.servers: dict[str, StaticS3Double] = {}
        for fmt, (path, meta) in archives.items():
            metadata = {
                "sha256": str(meta["sha256"]),
                "extracted-size": str(meta["extracted_bytes"]),
            }
            server = StaticS3Double(path, f'"{str(meta["sha256"])[:32]}"', metadata, f"model.{fmt}")
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.servers[fmt] = server

    def close(self) -> None:
        for server in self.servers.values():
            server.shutdown()
            server.server_close()

    def _options(self, fmt: str) -> S3Options:
        endpoint = self.servers[fmt].endpoint
        return S3Options(
            endpoint_url=endpoint, region=REGION, access_key_id=KEY_ID, secret_access_key=SECRET
        )

    def download_only(self, fmt: str, row: Timing) -> None:
        """The fetch's own download path (client, HEAD, parallel ranges, sha256), bytes dropped."""
        os.sync()
        with CpuMeter() as meter:
            client = make_client(self._options(fmt), self.transfer.workers + 2)
            info = head_object(client, parse_s3_url(f"s3://bench/model.{fmt}"))
            reader = RangedReader(client, info, self.transfer)
            try:
                reader.drain()
                reader.sha256()
            finally:
                reader.close()
        row.add(meter)

    def fetch_extract(self, fmt: str, decoder: str, row: Timing) -> None:
        root = self.args.work_dir / "fetch"
        root.mkdir(parents=True)
        os.sync()
        with PeakDisk(root) as peak, gzip_decoder_env(decoder), CpuMeter() as meter:
            result = fetch(
                f"s3://bench/model.{fmt}",
                root / "model",
                s3=self._options(fmt),
                transfer=self.transfer,
            )
        if not (result.changed and result.sha256_verified):
            raise SystemExit(f"unexpected fetch result: {result}")
        row.add(meter, peak.peak_tree)
        shutil.rmtree(root)


def _one_pass(
    row: Timing, fn: Callable[[], object], repeat: int, setup: Callable[[], object] | None = None
) -> Timing:
    for _ in range(repeat):
        if setup is not None:
            setup()
        os.sync()
        with CpuMeter() as meter:
            fn()
        row.add(meter)
    return row


def _drain(stream: Any) -> None:
    while stream.read(MiB):
        pass


TAR_STAGE = "tar parse + sha256 + write (main + writer thread)"
ZSTD_STAGE = "inflate tar.zst: zstandard, 1 thread (main thread)"


def inflate_label(decoder: str) -> str:
    return f"inflate tar.gz: {decoder} (main thread)"


def _inflate_rows(gz: bytes, zst: bytes, extracted: int, repeat: int) -> list[Timing]:
    rows = []
    for name in installed():
        decoder = gzip_decoder(name)

        def inflate_gz(decoder: GzipDecoder = decoder) -> None:
            _drain(GzipReader(cast(io.RawIOBase, io.BytesIO(gz)), "bench", decoder))

        rows.append(_one_pass(Timing(inflate_label(name), len(gz), extracted), inflate_gz, repeat))

    def inflate_zst() -> None:
        _drain(decompressed(cast(io.RawIOBase, io.BytesIO(zst)), SourceKind.TAR_ZST, "bench"))

    rows.append(_one_pass(Timing(ZSTD_STAGE, len(zst), extracted), inflate_zst, repeat))
    return rows


def _tar_rows(tar: bytes, extracted: int, work_dir: Path, repeat: int) -> list[Timing]:
    root = work_dir / "stage"
    target = work_dir / "write.bin"

    def fresh_root() -> None:
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)

    def extract() -> None:
        TarExtractor(root).run(io.BytesIO(tar), "bench")

    def sha256() -> None:
        digest = hashlib.sha256()
        view = memoryview(tar)
        for start in range(0, len(tar), MiB):
            digest.update(view[start : start + MiB])

    def write(piece: int) -> Callable[[], None]:
        def run() -> None:
            view = memoryview(tar)
            with open(target, "wb", buffering=0) as f:
                for start in range(0, len(tar), piece):
                    f.write(view[start : start + piece])

        return run

    n = len(tar)
    rows = [
        _one_pass(Timing(TAR_STAGE, n, extracted), extract, repeat, fresh_root),
        _one_pass(Timing("sha256 of the tar bytes (hashlib)", n, extracted), sha256, repeat),
        _one_pass(
            Timing("write, 1 MiB pieces at 1 MiB-aligned offsets (page cache)", n, extracted),
            write(MiB),
            repeat,
            lambda: target.unlink(missing_ok=True),
        ),
        _one_pass(
            Timing(f"write, {COPY_SIZE // 1024} KiB pieces (the extractor's)", n, extracted),
            write(COPY_SIZE),
            repeat,
            lambda: target.unlink(missing_ok=True),
        ),
    ]
    shutil.rmtree(root, ignore_errors=True)
    target.unlink(missing_ok=True)
    return rows


def stage_rows(
    archives: dict[str, tuple[Path, dict[str, int | str]]], work_dir: Path, repeat: int
) -> list[Timing]:
    """Each stage of the pipeline alone, over the same bytes, from memory: where the time goes."""
    extracted = int(archives["tar.gz"][1]["extracted_bytes"])
    zst = archives["tar.zst"][0].read_bytes()
    rows = _inflate_rows(archives["tar.gz"][0].read_bytes(), zst, extracted, repeat)
    stream = decompressed(cast(io.RawIOBase, io.BytesIO(zst)), SourceKind.TAR_ZST, "bench")
    del zst
    work_dir.mkdir(parents=True, exist_ok=True)
    rows += _tar_rows(b"".join(iter(lambda: stream.read(MiB), b"")), extracted, work_dir, repeat)
    return rows


def _verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**FAIL**"


def run_weights(args: argparse.Namespace) -> str:
    """Download only vs fetch+extract per decoder, on weight-like .tar.gz and .tar.zst."""
    if args.weights == "smollm2":
        tree = _smollm2_tree(args.size_gib)
    else:
        tree = _normal_tree(args.size_gib, args.shards)
    archives = {fmt: pack(tree, fmt) for fmt in PACKERS}
    gz_size = int(archives["tar.gz"][1]["size"])
    zst_size = int(archives["tar.zst"][1]["size"])
    extracted = int(archives["tar.gz"][1]["extracted_bytes"])
    chosen = gzip_decoder().name  # what a fetch picks by itself
    rows = {
        "dl-gz": Timing(
            "tar.gz: download only (ranged GETs + sha256, bytes dropped)", gz_size, extracted
        ),
        "zlib": Timing("tar.gz: fetch+extract, zlib (before)", gz_size, extracted),
    }
    if chosen != "zlib":
        rows[chosen] = Timing(f"tar.gz: fetch+extract, {chosen} (auto choice)", gz_size, extracted)
    rows["dl-zst"] = Timing("tar.zst: download only", zst_size, extracted)
    rows["zstd"] = Timing("tar.zst: fetch+extract, zstandard", zst_size, extracted)
    shutil.rmtree(args.work_dir, ignore_errors=True)
    with bench_lock():
        load_before = os.getloadavg()
        run = WeightsRun(archives, args)
        try:
            steps: list[Callable[[], None]] = [
                lambda: run.download_only("tar.gz", rows["dl-gz"]),
                lambda: run.fetch_extract("tar.gz", "zlib", rows["zlib"]),
                lambda: run.download_only("tar.zst", rows["dl-zst"]),
                lambda: run.fetch_extract("tar.zst", "auto", rows["zstd"]),
            ]
            if chosen != "zlib":
                steps.insert(2, lambda: run.fetch_extract("tar.gz", chosen, rows[chosen]))
            for i in range(args.repeat):  # rotate which goes first
                for step in steps[i % len(steps) :] + steps[: i % len(steps)]:
                    step()
                print(f"round {i + 1}/{args.repeat} done", flush=True)
        finally:
            run.close()
        stages = stage_rows(archives, args.work_dir, args.repeat)
        load_after = os.getloadavg()
    shutil.rmtree(args.work_dir, ignore_errors=True)

    head = (
        "| run | wall s, median (runs) | MB/s stored | MB/s extracted "
        "| cores busy (this process) | cores busy (other processes) | peak disk / extracted |\n"
        "|---|---|---|---|---|---|---|\n"
    )
    table = head + "\n".join(r.markdown() for r in rows.values()) + "\n"
    stage_head = (
        "| stage, alone, from memory (one pass over the object) | s, median (runs) "
        "| MB/s in (its input) | MB/s extracted | cores busy (this process) "
        "| cores busy (other processes) |\n|---|---|---|---|---|---|\n"
    )
    stage_table = stage_head + "\n".join(r.markdown(disk=False) for r in stages) + "\n"
    zlib_s = rows["zlib"].median
    best_s = rows[chosen].median if chosen != "zlib" else zlib_s
    speedup = zlib_s / best_s
    zstd_share = rows["dl-zst"].median / rows["zstd"].median
    peak = max(r.peak / r.extracted for r in rows.values() if r.peak)
    alone = {r.label: r.median for r in stages}
    tar_write = alone[TAR_STAGE]
    where = (
        "Where the time goes (each stage alone, above, against the whole fetch): "
        f"tar.gz with {chosen}: fetch {best_s:.2f} s = download {rows['dl-gz'].median:.2f} s "
        f"| inflate {alone[inflate_label(chosen)]:.2f} s | tar parse + sha256 + write "
        f"{tar_write:.2f} s; with zlib: fetch {zlib_s:.2f} s, inflate "
        f"{alone[inflate_label('zlib')]:.2f} s. tar.zst: fetch {rows['zstd'].median:.2f} s = "
        f"download {rows['dl-zst'].median:.2f} s | inflate {alone[ZSTD_STAGE]:.2f} s | tar "
        f"parse + sha256 + write {tar_write:.2f} s. The stages run on their own threads "
        "(download: 8 range workers + a sha256 thread; inflate and tar parsing: the main "
        "thread; each member's sha256 + write: a writer thread), so with free cores a fetch "
        "takes about as long as its slowest stage, and on a busy machine about the sum of the "
        "stages' CPU time.\n"
    )
    verdict = (
        f"Goals: gzip fetch+extract {chosen} vs zlib {speedup:.2f}x (goal >= 1.7x): "
        f"{_verdict(speedup >= 1.7)}; zstd fetch+extract at {100 * zstd_share:.0f} % of "
        f"download only (goal >= 80 %): {_verdict(zstd_share >= 0.8)}; peak disk "
        f"{peak:.3f} x extracted (bound 1.05): {_verdict(peak <= 1.05)}.\n"
    )
    gz_meta, zst_meta = archives["tar.gz"][1], archives["tar.zst"][1]
    source = (
        f"{len(_shard_names_in(tree))} copies of the test model's bf16 `model.safetensors` "
        "(`tests.model.build_test_model`, SmolLM2-135M-Instruct) as shards, plus its config "
        "and tokenizer files"
        if args.weights == "smollm2"
        else f"{args.shards} shards of bf16 values drawn from N(0, 0.02) (numpy, seeded)"
    )
    command = ".venv/bin/python bench/fetch_bench.py " + shlex.join(sys.argv[1:])
    header = (
        "## fetch: gzip decoders and zstd on weight-like data "
        f"({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n\n"
        f"Command: `{command.strip()}`  \n"
        f"Machine: {os.cpu_count()} cores ({_cpu_model()}), shared: load average (1, 5, 15 min) "
        f"before {' / '.join(f'{v:.2f}' for v in load_before)}, after "
        f"{' / '.join(f'{v:.2f}' for v in load_after)}; 'other processes' is the rest of "
        "the machine's busy CPU during each run (/proc/stat; kernel writeback of the "
        "extracted files counts there too). "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{_versions()}; server (the bench-only range-serving S3 double, sendfile) and client "
        "in this process, on loopback.  \n"
        f"Data: {source}: {extracted / MiB:.0f} MiB extracted. `{gz_meta['command']}` (gzip's "
        f"default level 6): {gz_size / MiB:.0f} MiB ({gz_size / extracted:.3f}); "
        f"`{zst_meta['command']}` (zstd's default level 3): {zst_size / MiB:.0f} MiB "
        f"({zst_size / extracted:.3f}). {args.workers} workers x {args.chunk_mib} MiB ranges; "
        f"{args.repeat} rounds, the order rotated each round; sha256 checked against the "
        "object's metadata on every fetch. Peak disk: largest `du` of the work dir, sampled "
        "every 50 ms.\n\n"
    )
    return header + table + "\n" + stage_table + "\n" + where + "\n" + verdict


def _shard_names_in(tree: Path) -> list[str]:
    return sorted(p.name for p in tree.glob("model-*-of-*.safetensors"))


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    out = []
    for package in ("isal", "zstandard"):
        try:
            out.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            out.append(f"{package} not installed")
    return ", ".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=1.0)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--chunk-mib", type=int, default=32)
    parser.add_argument("--servers", default="moto,static", help="comma list: moto, static")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method (median)")
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR)
    parser.add_argument(
        "--data",
        choices=["random", "weights"],
        default="random",
        help="random: tar.gz (level 1) of random shards, streaming vs two-step (--servers); "
        "weights: weight-like shards as tar.gz (gzip -6) and tar.zst (zstd -3), download only "
        "vs fetch+extract with each decoder, and each stage alone (static server)",
    )
    parser.add_argument(
        "--weights",
        choices=["smollm2", "normal"],
        default="smollm2",
        help="with --data weights: copies of the test model's safetensors, or N(0, 0.02) bf16",
    )
    args = parser.parse_args()
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    if args.data == "weights":
        text = run_weights(args)
        print(text)
        _append(text)
        return 0

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
    _append(header + "\n".join(tables))
    return 0


def _append(text: str) -> None:
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmarks\n")
    with RESULTS.open("a") as f:
        f.write("\n" + text)
    print(f"appended to {RESULTS}")


if __name__ == "__main__":
    raise SystemExit(main())
