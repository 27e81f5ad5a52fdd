"""GPU, NVIDIA driver, CUDA and host-capacity facts for a vastllm GPU host.

Runs on the target host (Debian/Ubuntu, Python >= 3.8): pure standard library, 3.8 syntax.

How the GPU facts are found, in this order:

1. NVML through ctypes (``libnvidia-ml.so.1``) for devices, driver and CUDA version; libcuda's
   ``cuDriverGetVersion`` for the CUDA version when NVML does not report it.
2. ``nvidia-smi --query-gpu=... --format=csv`` for devices; the CUDA version from ``-q -x``
   (``<cuda_version>``), then ``-q`` text (``CUDA UMD Version``, else the first token of
   ``CUDA Version``), then ``--version``; ``-q -x`` and the default table are fallbacks for the
   device list, and the table header is the last resort for the versions.
3. Known failure messages (version mismatch, no driver, no devices, NVML unknown error) become a
   ``problem`` that says what was found and what to do; the host is then in ``cpu`` mode.

The native libraries and the command runner are injectable (``collect(load_library=...,
runner=...)``) so the logic can be exercised without a GPU.

The pieces: gpu_model (shared data, failures), gpu_nvml (step 1), gpu_smi_parsers and
gpu_nvidia_smi (step 2), host_capacity (disk, RAM, CPUs); this module puts them together into
two facts, each named for what it holds: ``vastllm_gpu`` (the GPUs, driver and CUDA version, the
GPU or CPU mode and why) and ``vastllm_host`` (CPUs, RAM, free disk on the model volume, and the
one-line ``summary`` of the whole host, which needs both).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ansible.module_utils.gpu_model import KIND_SMI_ERROR, KIND_TIMEOUT, SOURCE_NONE, GpuProbe
from ansible.module_utils.gpu_nvidia_smi import (
    find_nvidia_smi,
    probe_nvidia_smi,
    subprocess_runner,
)
from ansible.module_utils.gpu_nvml import (
    NVML_LIBRARY,
    load_libcuda_version,
    load_native_library,
    probe_nvml,
    try_load,
)
from ansible.module_utils.host_capacity import cpu_count, disk_facts, memory_facts

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ansible.module_utils.gpu_nvidia_smi import Runner
    from ansible.module_utils.gpu_nvml import LibraryLoader


def probe_gpus(
    runner: Runner,
    load_library: LibraryLoader,
    nvidia_smi: str | None,
) -> GpuProbe:
    """NVML first, then nvidia-smi; the best-informed failure when neither lists a GPU."""
    nvml_lib = try_load(load_library, NVML_LIBRARY)
    nvml_probe = probe_nvml(nvml_lib) if nvml_lib is not None else None
    if nvml_probe is not None and nvml_probe.failure is None:
        if nvml_probe.versions.cuda_version is None:
            nvml_probe.versions.cuda_version = load_libcuda_version(load_library)
            if nvml_probe.versions.cuda_version:
                nvml_probe.cuda_version_source = "libcuda"
        return nvml_probe
    if nvidia_smi is None:
        return nvml_probe if nvml_probe is not None else GpuProbe(SOURCE_NONE)
    smi_probe = probe_nvidia_smi(runner, nvidia_smi, load_libcuda_version(load_library))
    if smi_probe.failure is None or nvml_probe is None:
        return smi_probe
    # Both failed: nvidia-smi's message is the one people know, unless it is unrecognised.
    if smi_probe.failure.kind in (KIND_SMI_ERROR, KIND_TIMEOUT):
        return nvml_probe
    return smi_probe


def _gib(number_of_bytes: float) -> str:
    return f"{number_of_bytes / 1024**3:.1f} GiB"


def summarize(gpu: dict[str, Any], host: dict[str, Any]) -> str:
    """One readable line about the host from both facts, e.g. ``GPU mode: 1x NVIDIA RTX A5000
    (24564 MiB); 23.3 GiB VRAM free; driver 555.85, CUDA 12.5; 16 CPUs; ...``."""
    capacity = []
    if host.get("cpu_count"):
        capacity.append(f"{host['cpu_count']} CPUs")
    if host.get("ram_available_bytes") is not None:
        capacity.append(f"{_gib(host['ram_available_bytes'])} RAM available")
    disk = f"disk free on {host['disk_path']}"
    if host["disk_path"] != host["model_dir"]:
        disk += f" (nearest existing parent of {host['model_dir']})"
    capacity.append(f"{disk}: {_gib(host['disk_free_bytes'])}")
    if gpu["mode"] == "gpu":
        groups: dict[tuple[str, int | None, bool], int] = {}
        for device in gpu["gpus"]:
            key = (
                device["name"] or "unnamed GPU",
                device["memory_total_mib"],
                device["mig_mode"] == "Enabled",
            )
            groups[key] = groups.get(key, 0) + 1
        parts = []
        for (name, total, mig), count in groups.items():
            size = f"{total} MiB" if total is not None else "memory not reported"
            if count > 1 and total is not None:
                size += " each"
            if mig:
                size += ", MIG enabled"
            parts.append(f"{count}x {name} ({size})")
        vram = (
            f"{gpu['vram_free_mib'] / 1024:.1f} GiB VRAM free"
            if gpu["vram_free_mib"] is not None
            else "free VRAM not reported"
        )
        versions = (
            f"driver {gpu['driver_version'] or 'unknown'}, CUDA {gpu['cuda_version'] or 'unknown'}"
        )
        return f"GPU mode: {' + '.join(parts)}; {vram}; {versions}; {'; '.join(capacity)}"
    reason = gpu["problem"] or "no NVIDIA GPU or driver found"
    return f"CPU mode: {reason} -- {'; '.join(capacity)}"


def _sum_or_none(values: Iterable[int | None]) -> int | None:
    total = 0
    for value in values:
        if value is None:
            return None
        total += value
    return total


def collect_gpu(
    runner: Runner | None = None,
    load_library: LibraryLoader = load_native_library,
    find_smi: Callable[[], str | None] = find_nvidia_smi,
) -> dict[str, Any]:
    """The GPU part (the value of ``ansible_facts.vastllm_gpu``)."""
    probe = probe_gpus(runner or subprocess_runner(), load_library, find_smi())
    gpus = [gpu.as_dict() for gpu in probe.gpus]
    return {
        "mode": "gpu" if gpus else "cpu",
        "source": probe.source,
        "problem": probe.failure.problem if probe.failure else None,
        "problem_kind": probe.failure.kind if probe.failure else None,
        "problem_detail": probe.failure.detail if probe.failure else None,
        "gpu_count": len(gpus),
        "gpus": gpus,
        "vram_total_mib": _sum_or_none(g["memory_total_mib"] for g in gpus) if gpus else None,
        "vram_free_mib": _sum_or_none(g["memory_free_mib"] for g in gpus) if gpus else None,
        "driver_version": probe.versions.driver_version,
        "cuda_version": probe.versions.cuda_version,
        "cuda_version_source": probe.cuda_version_source,
        "nvidia_smi_version": probe.versions.nvidia_smi_version,
        "warnings": probe.warnings,
    }


def collect_host(model_dir: str = "/workspace", host_root: str = "/") -> dict[str, Any]:
    """CPUs, RAM and disk (the value of ``ansible_facts.vastllm_host``, less ``summary``)."""
    host: dict[str, Any] = {"cpu_count": cpu_count(host_root)}
    host.update(memory_facts(host_root))
    host.update(disk_facts(model_dir))
    return host


def collect(
    model_dir: str = "/workspace",
    runner: Runner | None = None,
    load_library: LibraryLoader = load_native_library,
    find_smi: Callable[[], str | None] = find_nvidia_smi,
    host_root: str = "/",
) -> dict[str, dict[str, Any]]:
    """Both facts, as the module sets them: ``{"vastllm_gpu": {...}, "vastllm_host": {...}}``."""
    gpu = collect_gpu(runner, load_library, find_smi)
    host = collect_host(model_dir, host_root)
    host["summary"] = summarize(gpu, host)
    return {"vastllm_gpu": gpu, "vastllm_host": host}
