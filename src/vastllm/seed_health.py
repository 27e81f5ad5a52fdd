"""The first seed's ``/health`` fields, answered by the model API and the proxy beside their own.

The seed documented ``{"status": "healthy", "gpu": "NVIDIA RTX A5000", "vram_used": "14.23 GB",
"vram_total": "23.55 GB"}``. ``status`` keeps vastllm's values (model API ``loading`` / ``ready``
/ ``error``, proxy ``ok`` / ``degraded``); the seed's verdict is the boolean ``healthy``, ``gpu``
the GPU name and ``vram_used`` / ``vram_total`` its strings, each null when unknown (on CPU).
Standard library only: the proxy runs without torch.
"""

from __future__ import annotations

from typing import Any

GIB = 1024**3


def seed_size(number_of_bytes: int | None) -> str | None:
    """Bytes as the seed printed them: bytes / 1024**3 (GiB) with two decimals, labelled "GB".

    The seed divided torch's byte counts by 1024**3: its 23.55 GB total for an RTX A5000
    (24564 MiB on nvidia-smi, less what the driver keeps) is about 25.29e9 bytes, which would
    read 25.29 in decimal GB.
    """
    if number_of_bytes is None:
        return None
    return f"{number_of_bytes / GIB:.2f} GB"


def seed_fields(
    *, healthy: bool, gpu: str | None, vram_used: int | None, vram_total: int | None
) -> dict[str, Any]:
    """``healthy``, ``gpu``, ``vram_used``, ``vram_total`` (memory given in bytes)."""
    return {
        "healthy": healthy,
        "gpu": gpu,
        "vram_used": seed_size(vram_used),
        "vram_total": seed_size(vram_total),
    }
