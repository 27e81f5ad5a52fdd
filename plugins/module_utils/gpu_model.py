"""What the GPU probes share: data classes, source and problem kinds, value parsers, failures.

Runs on the target host (Debian/Ubuntu, Python >= 3.8): pure standard library, 3.8 syntax. Used
by gpu_nvml (NVML/libcuda), gpu_smi_parsers and gpu_nvidia_smi (nvidia-smi) and
gpu_facts_collect (the facts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

SOURCE_NVML = "nvml"
SOURCE_CSV = "nvidia-smi-csv"
SOURCE_XML = "nvidia-smi-xml"
SOURCE_TABLE = "nvidia-smi-table"
SOURCE_NONE = "none"

# Problem kinds (machine-readable companion of the human-readable ``problem``).
KIND_MISMATCH = "driver-mismatch"
KIND_NO_DRIVER = "no-driver"
KIND_NO_DEVICES = "no-devices"
KIND_NVML_UNKNOWN = "nvml-unknown-error"
KIND_NO_PERMISSION = "no-permission"
KIND_GPU_LOST = "gpu-lost"
KIND_TIMEOUT = "nvidia-smi-timeout"
KIND_NVML_ERROR = "nvml-error"
KIND_SMI_ERROR = "nvidia-smi-error"

# nvidia-smi's message when the driver lists no GPU; NVML's NOT_FOUND is classified the same.
NO_DEVICES_MESSAGE = "No devices were found"

_VERSION_RE = re.compile(r"^\d+(?:\.\d+)+$")


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


@dataclass
class Gpu:
    """One GPU as reported by NVML or nvidia-smi. Memory in MiB, None when not reported."""

    index: int
    name: str | None
    uuid: str | None = None
    memory_total_mib: int | None = None
    memory_used_mib: int | None = None
    memory_free_mib: int | None = None
    mig_mode: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "uuid": self.uuid,
            "memory_total_mib": self.memory_total_mib,
            "memory_used_mib": self.memory_used_mib,
            "memory_free_mib": self.memory_free_mib,
            "mig_mode": self.mig_mode,
        }


@dataclass
class Versions:
    driver_version: str | None = None
    cuda_version: str | None = None
    nvidia_smi_version: str | None = None


@dataclass
class SmiReport:
    """What one nvidia-smi output (XML or table) says."""

    versions: Versions
    gpus: list[Gpu]
    attached_gpus: int | None = None


@dataclass
class Failure:
    kind: str
    detail: str
    problem: str


@dataclass
class GpuProbe:
    source: str
    gpus: list[Gpu] = field(default_factory=list)
    versions: Versions = field(default_factory=Versions)
    cuda_version_source: str | None = None
    failure: Failure | None = None
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# small value parsers
# --------------------------------------------------------------------------------------------

_NOT_A_VALUE = {"n/a", "not supported", "unknown error", "insufficient permissions", ""}


def clean_value(value: str | None) -> str | None:
    """Stripped value; None for nvidia-smi's non-values (``[N/A]``, ``N/A``, ``Not Supported``)."""
    if value is None:
        return None
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        return None
    if text.lower() in _NOT_A_VALUE:
        return None
    return text


def parse_mib(value: str | None) -> int | None:
    """``"24564 MiB"``, ``"24564"`` -> 24564; ``[N/A]``, ``Not Supported`` -> None."""
    text = clean_value(value)
    if text is None:
        return None
    match = re.match(r"^(\d+)\s*(MiB|GiB)?$", text)
    if not match:
        return None
    number = int(match.group(1))
    return number * 1024 if match.group(2) == "GiB" else number


def first_version_token(value: str | None) -> str | None:
    """First token of a version value if it looks like a version: drops ``[Deprecated; ...]``."""
    text = clean_value(value)
    if text is None:
        return None
    token = text.split()[0]
    return token if _VERSION_RE.match(token) else None


def cuda_version_from_int(version: int) -> str:
    """NVML/libcuda encode CUDA 12.4 as 12040."""
    return f"{version // 1000}.{(version % 1000) // 10}"


# --------------------------------------------------------------------------------------------
# failures
# --------------------------------------------------------------------------------------------

_CONTAINER_HINT = "in a container, start it with --gpus all (NVIDIA Container Toolkit)"


def classify_failure(output: str) -> Failure | None:
    """Recognise nvidia-smi's known failure messages; None for anything else."""
    text = output.strip()
    first_line = text.splitlines()[0] if text else ""
    if "Driver/library version mismatch" in text:
        nvml = re.search(r"NVML library version:\s*(\S+)", text)
        found = f" (user-space NVML library {nvml.group(1)})" if nvml else ""
        return Failure(
            KIND_MISMATCH,
            text,
            "NVIDIA driver/library version mismatch: the loaded kernel module is not the version "
            f"of the installed user-space driver{found}. This follows a driver update without "
            "a reboot: reboot the host (or reload the nvidia kernel modules); on a rented "
            "instance, rent another one.",
        )
    if "couldn't communicate with the NVIDIA driver" in text:
        return Failure(
            KIND_NO_DRIVER,
            first_line,
            "nvidia-smi is installed but couldn't communicate with the NVIDIA driver: the "
            "kernel module is not loaded. Install the NVIDIA driver for this kernel and "
            f"reboot; {_CONTAINER_HINT} on a host with a working driver.",
        )
    if NO_DEVICES_MESSAGE in text:
        return Failure(
            KIND_NO_DEVICES,
            first_line,
            "The NVIDIA driver is loaded but reports no GPU ('No devices were found'): the GPU "
            "failed to initialise or is not passed through. Check 'dmesg' for NVRM errors and "
            f"that the driver supports this GPU; {_CONTAINER_HINT}.",
        )
    if "Failed to initialize NVML: Unknown Error" in text:
        return Failure(
            KIND_NVML_UNKNOWN,
            first_line,
            "NVML failed with 'Unknown Error': typical in a container that lost access to "
            "/dev/nvidia* (for example after 'systemctl daemon-reload' on the host). Restart the "
            f"container; {_CONTAINER_HINT}; on a rented instance, rent another one.",
        )
    if "Insufficient Permissions" in text:
        return Failure(
            KIND_NO_PERMISSION,
            first_line,
            "NVML reports insufficient permissions: this user cannot open /dev/nvidia*. Run as "
            "a user in the 'video' group or as root.",
        )
    if "GPU is lost" in text:
        return Failure(
            KIND_GPU_LOST,
            first_line,
            "A GPU has fallen off the bus ('GPU is lost'): reboot the host; on a rented "
            "instance, rent another one.",
        )
    return None
