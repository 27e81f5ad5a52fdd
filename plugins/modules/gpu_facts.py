#!/usr/bin/python
"""Ansible module gpu_facts: GPU, NVIDIA driver, CUDA and host capacity facts for vastllm."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.gpu_facts_collect import collect
from ansible.module_utils.gpu_nvidia_smi import subprocess_runner

DOCUMENTATION = r"""
---
module: gpu_facts
short_description: Gather GPU, NVIDIA driver, CUDA and host capacity facts for vastllm
description:
  - Reports the NVIDIA GPUs of the host (name, UUID, VRAM total/used/free), the driver version,
    the CUDA version the driver supports, free disk space on the model volume, RAM and CPU count,
    and whether vastllm should run in C(gpu) or C(cpu) mode.
  - GPU data comes from NVML (C(libnvidia-ml.so.1) through ctypes) when it loads, otherwise from
    C(nvidia-smi) (C(--query-gpu) CSV, then C(-q -x) XML, then the default table). The CUDA
    version comes from NVML, then libcuda C(cuDriverGetVersion), then C(nvidia-smi -q -x),
    C(nvidia-smi -q) and C(nvidia-smi --version).
  - When a driver exists but is unusable (driver/library version mismatch, kernel module not
    loaded, no devices, NVML unknown error) the host is in C(cpu) mode and O(ignore:problem)
    says what was found and what to do. A host without any NVIDIA driver is in C(cpu) mode
    without a problem.
  - Sets two facts, each named for what it holds. C(vastllm_gpu) holds the GPU part (mode,
    GPUs, VRAM, driver and CUDA versions, the problem). C(vastllm_host) holds the host's capacity
    (CPUs, RAM, free disk on the model volume) and C(summary), the one line about the whole host
    that the gpu_facts role prints, built from both facts.
  - Never changes the host.
version_added: "0.1.0"
author:
  - vastllm
options:
  model_dir:
    description:
      - Directory that holds (or will hold) the models. Free disk space is measured on it, or on
        its nearest existing parent when it does not exist yet.
    type: path
    default: /workspace
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
requirements:
  - Python >= 3.8 on the host. No Python packages.
notes:
  - Memory figures are in MiB, like nvidia-smi's. Devices that report no memory figures (for
    example GB10) have C(null) memory values.
  - From the default nvidia-smi table, free memory is total minus used (the table shows no
    reserved memory); that source is used only when the CSV and XML queries fail.
"""

EXAMPLES = r"""
- name: Gather GPU facts, measuring free disk on the model directory
  gpu_facts:
    model_dir: /workspace/models

- name: Show the GPU count and the CUDA version
  ansible.builtin.debug:
    msg: "{{ ansible_facts.vastllm_gpu.gpu_count }} GPU(s), CUDA {{ ansible_facts.vastllm_gpu.cuda_version }}"

- name: Show the free disk and what the host offers
  ansible.builtin.debug:
    msg: "{{ ansible_facts.vastllm_host.disk_free_bytes }} bytes free; {{ ansible_facts.vastllm_host.summary }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: dict
  contains:
    vastllm_gpu:
      description: GPU, NVIDIA driver and CUDA facts, and the GPU or CPU mode they give.
      returned: always
      type: dict
      contains:
        mode:
          description: C(gpu) when at least one usable GPU was found, else C(cpu).
          type: str
          returned: always
          sample: gpu
        source:
          description: Where the GPU list came from.
          type: str
          returned: always
          choices: [nvml, nvidia-smi-csv, nvidia-smi-xml, nvidia-smi-table, none]
          sample: nvml
        problem:
          description:
            - What is wrong with the NVIDIA driver and what to do, when a driver exists but no
              GPU can be used. C(null) otherwise (also when there is no driver at all).
          type: str
          returned: always
          sample: "NVIDIA driver/library version mismatch: ... reboot the host ..."
        problem_kind:
          description: Machine-readable class of O(ignore:problem).
          type: str
          returned: always
          choices:
            - driver-mismatch
            - no-driver
            - no-devices
            - nvml-unknown-error
            - no-permission
            - gpu-lost
            - nvidia-smi-timeout
            - nvml-error
            - nvidia-smi-error
        problem_detail:
          description: The message nvidia-smi or NVML printed for the problem.
          type: str
          returned: always
          sample: "Failed to initialize NVML: Driver/library version mismatch"
        gpu_count:
          description: Number of usable GPUs.
          type: int
          returned: always
          sample: 1
        gpus:
          description: One entry per GPU.
          type: list
          elements: dict
          returned: always
          contains:
            index:
              description: GPU index as nvidia-smi numbers it.
              type: int
              sample: 0
            name:
              description: Product name.
              type: str
              sample: NVIDIA RTX A5000
            uuid:
              description: GPU UUID, C(null) when unknown.
              type: str
              sample: GPU-27b94a00-ed54-5c24-b1fd-1054085de32a
            memory_total_mib:
              description: VRAM total in MiB, C(null) when the device reports none.
              type: int
              sample: 24564
            memory_used_mib:
              description: VRAM used in MiB, C(null) when not reported.
              type: int
              sample: 342
            memory_free_mib:
              description: VRAM free in MiB, C(null) when not reported.
              type: int
              sample: 23876
            mig_mode:
              description: C(Enabled) or C(Disabled) when the source reports MIG mode, else C(null).
              type: str
              sample: Disabled
        vram_total_mib:
          description: Sum of VRAM over all GPUs in MiB; C(null) when a GPU reports none.
          type: int
          returned: always
          sample: 24564
        vram_free_mib:
          description: Sum of free VRAM over all GPUs in MiB; C(null) when a GPU reports none.
          type: int
          returned: always
          sample: 23876
        driver_version:
          description: NVIDIA driver (kernel module) version, C(null) when unknown.
          type: str
          returned: always
          sample: "550.90.07"
        cuda_version:
          description: Highest CUDA version the installed driver (libcuda) supports.
          type: str
          returned: always
          sample: "12.4"
        cuda_version_source:
          description: Where O(ignore:cuda_version) came from.
          type: str
          returned: always
          choices: [nvml, libcuda, nvidia-smi-xml, nvidia-smi-q, nvidia-smi-version, nvidia-smi-table]
        nvidia_smi_version:
          description: nvidia-smi's own version when it was read (differs from the driver under WSL2).
          type: str
          returned: always
          sample: "555.42.03"
        warnings:
          description: Non-fatal findings, for example a GPU that NVML lists but cannot open.
          type: list
          elements: str
          returned: always
    vastllm_host:
      description: Host capacity facts (CPUs, RAM, disk) and the one-line summary of the host.
      returned: always
      type: dict
      contains:
        model_dir:
          description: The O(model_dir) option.
          type: str
          returned: always
          sample: /workspace/models
        disk_path:
          description: The existing directory the disk figures were measured on.
          type: str
          returned: always
          sample: /workspace
        disk_free_bytes:
          description: Bytes available to unprivileged users on O(ignore:disk_path).
          type: int
          returned: always
        disk_total_bytes:
          description: Size of the file system holding O(ignore:disk_path).
          type: int
          returned: always
        ram_total_bytes:
          description: RAM in bytes (the container's cgroup limit when lower).
          type: int
          returned: always
        ram_available_bytes:
          description: RAM available in bytes (MemAvailable, lowered to the cgroup headroom).
          type: int
          returned: always
        ram_limited_by_cgroup:
          description: Whether a cgroup memory limit lowered the RAM figures.
          type: bool
          returned: always
        cpu_count:
          description: CPUs this process may use (affinity, lowered to the cgroup CPU quota).
          type: int
          returned: always
          sample: 16
        summary:
          description:
            - One human-readable line about the host, built from both facts (the GPU part of
              C(vastllm_gpu), then CPUs, RAM and disk).
          type: str
          returned: always
          sample: "GPU mode: 1x NVIDIA RTX A5000 (24564 MiB); 23.3 GiB VRAM free; driver 555.85, CUDA 12.5; ..."
"""


def main() -> None:
    module = AnsibleModule(
        argument_spec={"model_dir": {"type": "path", "default": "/workspace"}},
        supports_check_mode=True,
    )
    try:
        facts = collect(model_dir=module.params["model_dir"], runner=subprocess_runner())
    except OSError as exc:
        module.fail_json(msg=f"gpu_facts could not read the host: {exc}")
    module.exit_json(changed=False, ansible_facts=facts)


if __name__ == "__main__":
    main()
