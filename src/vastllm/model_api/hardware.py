"""Device and dtype choice, and GPU facts for /health (torch.cuda; null on CPU hosts)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vastllm.model_api.settings import Device, Dtype

MIB = 1024 * 1024


class DeviceError(RuntimeError):
    """The requested device or dtype cannot be used on this host."""


def resolve_device(pref: Device) -> str:
    """``cuda`` or ``cpu`` (``auto``: cuda when torch sees a GPU)."""
    has_cuda = torch.cuda.is_available()
    if pref == "cuda" and not has_cuda:
        raise DeviceError("device=cuda was asked for but torch sees no CUDA device")
    if pref == "cpu":
        return "cpu"
    return "cuda" if has_cuda else "cpu"


def _cpu_bf16_works() -> bool:
    try:
        a = torch.ones(4, 4, dtype=torch.bfloat16)
        return bool(torch.isfinite((a @ a).float()).all())
    except (RuntimeError, TypeError):
        return False


def resolve_dtype(pref: Dtype, device: str) -> torch.dtype:
    """auto: bf16 on GPUs that support it, else fp16; on CPU bf16 if it works, else fp32."""
    explicit = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
    if pref != "auto":
        return explicit[pref]
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if _cpu_bf16_works() else torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


@dataclass(frozen=True)
class GpuInfo:
    name: str
    used_bytes: int
    total_bytes: int

    @property
    def used_mib(self) -> int:
        return self.used_bytes // MIB

    @property
    def total_mib(self) -> int:
        return self.total_bytes // MIB


def gpu_info(device: str | None) -> GpuInfo | None:
    """Name and memory of the GPU serving the model; None on CPU.

    ``used_mib`` is device-wide (total minus free, what nvidia-smi shows), so memory held by
    other processes counts too.
    """
    if device is None or not device.startswith("cuda"):
        return None
    try:
        free, total = torch.cuda.mem_get_info(device)
        name = torch.cuda.get_device_name(device)
    except (RuntimeError, AssertionError):
        return None
    return GpuInfo(name=name, used_bytes=total - free, total_bytes=total)
