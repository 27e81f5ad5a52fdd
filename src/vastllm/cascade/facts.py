"""Host capacity as the cascade needs it, read from the ``gpu_facts`` module's facts.

The module sets two facts (plugins/modules/gpu_facts.py RETURN): ``vastllm_gpu`` (``mode``,
``gpus[].memory_free_mib`` / ``memory_total_mib``) and ``vastllm_host`` (``disk_free_bytes``,
``ram_available_bytes``, ``summary``). A file holds ``{"vastllm_gpu": {...},
"vastllm_host": {...}}`` as the model_cascade role writes it, or the same inside
``{"ansible_facts": ...}`` as Ansible prints it.

Fallback for older files: before the split, ``vastllm_gpu`` also held the host fields, and a role
of that time wrote ``{"vastllm_gpu": {...}}`` alone. Without a ``vastllm_host`` dict the host
fields are read from ``vastllm_gpu`` (or from the bare facts, a dict with ``mode`` at the top).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vastllm.cascade.errors import UsageError
from vastllm.cascade.units import MIB


@dataclass(frozen=True)
class GpuMemory:
    """One GPU: bytes, None when the GPU did not report the figure."""

    index: int
    name: str
    total_bytes: int | None
    free_bytes: int | None


@dataclass(frozen=True)
class HostCapacity:
    mode: str  # "gpu" or "cpu"
    gpus: tuple[GpuMemory, ...]
    disk_free_bytes: int | None
    ram_available_bytes: int | None
    summary: str = ""

    @property
    def gpu_mode(self) -> bool:
        return self.mode == "gpu" and bool(self.gpus)


def _mib_to_bytes(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) * MIB


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def unwrap(data: object) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``vastllm_gpu`` and ``vastllm_host`` dicts out of whatever wrapping Ansible put around
    them; the host dict is the GPU dict itself for a file of an older role (no ``vastllm_host``)."""
    if isinstance(data, dict) and isinstance(data.get("ansible_facts"), dict):
        data = data["ansible_facts"]
    host = data.get("vastllm_host") if isinstance(data, dict) else None
    if isinstance(data, dict) and isinstance(data.get("vastllm_gpu"), dict):
        data = data["vastllm_gpu"]
    if not isinstance(data, dict) or "mode" not in data:
        raise UsageError("GPU facts must be the gpu_facts module's vastllm_gpu dict (no 'mode')")
    if host is None:
        host = data  # older role: disk and RAM inside vastllm_gpu
    if not isinstance(host, dict):
        raise UsageError("host facts must be the gpu_facts module's vastllm_host dict")
    return data, host


def capacity_from_facts(data: object) -> HostCapacity:
    facts, host = unwrap(data)
    mode = str(facts.get("mode"))
    if mode not in ("gpu", "cpu"):
        raise UsageError(f"GPU facts: mode must be gpu or cpu, not {mode!r}")
    gpus = []
    for position, gpu in enumerate(facts.get("gpus") or []):
        if not isinstance(gpu, dict):
            continue
        index = gpu.get("index")
        gpus.append(
            GpuMemory(
                index=index if isinstance(index, int) else position,
                name=str(gpu.get("name") or "GPU"),
                total_bytes=_mib_to_bytes(gpu.get("memory_total_mib")),
                free_bytes=_mib_to_bytes(gpu.get("memory_free_mib")),
            )
        )
    return HostCapacity(
        mode=mode,
        gpus=tuple(gpus) if mode == "gpu" else (),
        disk_free_bytes=_int_or_none(host.get("disk_free_bytes")),
        ram_available_bytes=_int_or_none(host.get("ram_available_bytes")),
        summary=str(host.get("summary") or ""),
    )


def load_facts(path: str | Path) -> HostCapacity:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read GPU facts file {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path}: invalid JSON: {exc}") from exc
    return capacity_from_facts(data)
