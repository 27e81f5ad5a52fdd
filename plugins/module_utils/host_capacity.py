"""Host capacity facts: free disk on the model volume, RAM and CPUs (cgroup limits included).

Runs on the target host (Debian/Ubuntu, Python >= 3.8): pure standard library, 3.8 syntax.
"""

from __future__ import annotations

import os
import re
from typing import Any


def nearest_existing(path: str) -> str:
    """``path`` or its nearest existing parent directory."""
    current = os.path.abspath(path)
    while not os.path.exists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def _read(root: str, path: str) -> str | None:
    try:
        with open(os.path.join(root, path.lstrip("/")), encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo -> {key: bytes}."""
    values = {}
    for line in text.splitlines():
        match = re.match(r"^(\w+):\s+(\d+)(?:\s+kB)?", line)
        if match:
            values[match.group(1)] = int(match.group(2)) * 1024
    return values


def memory_facts(root: str = "/") -> dict[str, Any]:
    """Total/available RAM in bytes, lowered to the cgroup v2/v1 limit of a container."""
    info = parse_meminfo(_read(root, "/proc/meminfo") or "")
    total = info.get("MemTotal")
    available = info.get("MemAvailable", info.get("MemFree"))
    limit, usage = _cgroup_memory(root)
    limited = limit is not None and total is not None and limit < total
    if limited and limit is not None:
        total = limit
        if usage is not None:
            headroom = max(limit - usage, 0)
            available = headroom if available is None else min(available, headroom)
    return {
        "ram_total_bytes": total,
        "ram_available_bytes": available,
        "ram_limited_by_cgroup": limited,
    }


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    value = text.strip()
    return int(value) if value.isdigit() else None


def _cgroup_memory(root: str) -> tuple[int | None, int | None]:
    limit = _int_or_none(_read(root, "/sys/fs/cgroup/memory.max"))
    if limit is not None:
        return limit, _int_or_none(_read(root, "/sys/fs/cgroup/memory.current"))
    limit = _int_or_none(_read(root, "/sys/fs/cgroup/memory/memory.limit_in_bytes"))
    # cgroup v1 reports "no limit" as a huge number; the caller compares with MemTotal.
    return limit, _int_or_none(_read(root, "/sys/fs/cgroup/memory/memory.usage_in_bytes"))


def cpu_count(root: str = "/", affinity: int | None = None) -> int:
    """CPUs this process may use: affinity mask, lowered to the cgroup v2 ``cpu.max`` quota."""
    if affinity is None:
        try:
            affinity = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            affinity = os.cpu_count() or 1
    quota = (_read(root, "/sys/fs/cgroup/cpu.max") or "").split()
    if len(quota) == 2 and quota[0].isdigit() and quota[1].isdigit() and int(quota[1]) > 0:
        limit = -(-int(quota[0]) // int(quota[1]))
        return max(1, min(affinity, limit))
    return affinity


def disk_facts(model_dir: str) -> dict[str, Any]:
    path = nearest_existing(model_dir)
    stats = os.statvfs(path)
    return {
        "model_dir": model_dir,
        "disk_path": path,
        "disk_free_bytes": stats.f_bavail * stats.f_frsize,
        "disk_total_bytes": stats.f_blocks * stats.f_frsize,
    }
