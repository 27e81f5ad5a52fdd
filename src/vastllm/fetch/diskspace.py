"""Free-disk pre-check: how much the extraction needs, and whether the filesystem has it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from vastllm.fetch.errors import NotEnoughSpace
from vastllm.fetch.objects import ObjectInfo
from vastllm.fetch.s3url import SourceKind

GiB = 1024**3
# Extracted size / stored size when the object carries no `x-amz-meta-extracted-size`.
# bf16/fp16 safetensors shrink 5-20% under gzip or zstd, so the tarball expands by ~1.05-1.25x;
# 1.25 covers the common case with a little room. A plain tar is never smaller than its content.
EXPANSION_FACTOR: dict[SourceKind, float] = {
    SourceKind.TAR_GZ: 1.25,
    SourceKind.TAR_ZST: 1.25,
    SourceKind.TAR: 1.0,
    SourceKind.PREFIX: 1.0,
}
# Kept free on top of the estimate so the filesystem is never filled to the last block:
# 5% of the need, at most 64 MiB.
RESERVE_MAX = 64 * 1024 * 1024

FreeSpaceFn = Callable[[Path], int]


def existing_ancestor(path: Path) -> Path:
    """The nearest existing directory at or above `path`."""
    current = path.absolute()
    while not current.exists():
        current = current.parent
    return current


def mount_point(path: Path) -> Path:
    """The mount point of the filesystem holding `path` (for messages)."""
    current = existing_ancestor(path)
    while not os.path.ismount(current):
        current = current.parent
    return current


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer can still use on the filesystem of `path`."""
    st = os.statvfs(existing_ancestor(path))
    return st.f_bavail * st.f_frsize


def needed_bytes(kind: SourceKind, info: ObjectInfo) -> tuple[int, str]:
    """Estimated extracted size of a tarball, and how it was obtained (for messages)."""
    exact = info.extracted_size
    if exact is not None:
        return exact, "from x-amz-meta-extracted-size"
    factor = EXPANSION_FACTOR[kind]
    how = "object size" if factor == 1.0 else f"estimate: object size x {factor}"
    return int(info.size * factor), how


def gib(n: int) -> str:
    return f"{n / GiB:.2f}"


def ensure_free_space(where: Path, need: int, how: str, free_fn: FreeSpaceFn = free_bytes) -> None:
    """Raise NotEnoughSpace unless `need` bytes (plus a reserve) are free where `where` lives."""
    have = free_fn(existing_ancestor(where))
    reserve = min(RESERVE_MAX, need // 20)
    if have >= need + reserve:
        return
    raise NotEnoughSpace(
        f"need ~{gib(need + reserve)} GiB free on {mount_point(where)} ({how}, plus a "
        f"{reserve / (1024 * 1024):.0f} MiB reserve), have {gib(have)} GiB; "
        "free space or pass a bigger disk"
    )
