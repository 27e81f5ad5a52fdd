"""Build small "model directories" and archives of them for the fetch tests."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import zstandard

KiB = 1024


def sharded_model(shards: int = 3, shard_size: int = 400 * KiB) -> dict[str, bytes]:
    """Random safetensors-like shards, their index, tokenizer files and a config."""
    files: dict[str, bytes] = {}
    weight_map = {}
    for i in range(1, shards + 1):
        name = f"model-{i:05d}-of-{shards:05d}.safetensors"
        files[name] = os.urandom(shard_size + i)  # distinct sizes
        weight_map[f"layers.{i}.weight"] = name
    files["model.safetensors.index.json"] = json.dumps(
        {"metadata": {"total_size": shards * shard_size}, "weight_map": weight_map}
    ).encode()
    files["tokenizer.json"] = json.dumps({"version": "1.0", "model": {"type": "BPE"}}).encode()
    files["tokenizer_config.json"] = json.dumps(
        {"chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"}
    ).encode()
    files["config.json"] = json.dumps({"model_type": "llama", "hidden_size": 64}).encode()
    return files


def tar_bytes(files: dict[str, bytes], prefix: str = "", mtime: int = 1_700_000_000) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        if prefix:
            info = tarfile.TarInfo(prefix.rstrip("/"))
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tf.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = mtime
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def archive(files: dict[str, bytes], kind: str, prefix: str = "") -> bytes:
    """The files as a `tar`, `tar.gz` (level 1) or `tar.zst` archive."""
    raw = tar_bytes(files, prefix)
    if kind == "tar":
        return raw
    if kind == "tar.gz":
        return gzip.compress(raw, compresslevel=1, mtime=0)
    if kind == "tar.gz-multimember":  # what pigz --independent / concatenated gzips produce
        half = len(raw) // 2
        return gzip.compress(raw[:half], 1, mtime=0) + gzip.compress(raw[half:], 1, mtime=0)
    if kind == "tar.zst":
        return zstandard.ZstdCompressor(level=3, write_checksum=True).compress(raw)
    raise ValueError(kind)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256sums(files: dict[str, bytes]) -> bytes:
    return "".join(f"{sha256(data)}  {name}\n" for name, data in files.items()).encode()


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """(inode, mtime_ns, size) of every path under root, to prove nothing was touched.

    Directories count by inode only: creating and removing a partial dir beside the target
    changes its parent's mtime, which is fine.
    """
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if stat.S_ISDIR(st.st_mode):
            out[path.relative_to(root).as_posix()] = (st.st_ino, 0, 0)
        else:
            out[path.relative_to(root).as_posix()] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return out


def read_tree(root: Path) -> dict[str, bytes]:
    """Contents of every regular file under root (marker excluded)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink() and p.name != ".vastllm-fetch.json"
    }
