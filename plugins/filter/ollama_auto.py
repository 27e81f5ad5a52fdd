# Copyright: vastllm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter ``ollama_auto_settings``: Ollama's context length and parallel requests for a host.

The ollama role's ``ollama_context_length`` and ``ollama_num_parallel`` are numbers or ``auto``.
Auto takes the tier of ``ollama_auto_tiers`` for the host's free VRAM (the gpu_facts module's
``vastllm_gpu`` fact): in GPU mode the ``gpu`` tier with the highest ``min_free_mib`` that the free
VRAM reaches, in CPU mode the ``cpu`` entry. VRAM that Ollama's own loaded models hold (their
``size_vram`` in ``/api/ps``, given as ``loaded``) counts as free, capped at the total, so a re-run
with the model loaded picks the same tier as the first run did. A GPU that reports no free memory
counts its total; one that reports neither gets the smallest tier.

    {{ ansible_facts.vastllm_gpu | ollama_auto_settings(ollama_auto_tiers, ollama_context_length,
       ollama_num_parallel, ps.json.models) }}
    -> {"context_length": 65536, "num_parallel": 1, "reason": "..."}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class SettingsError(ValueError):
    """A setting or tier that cannot be used; the filter turns it into AnsibleFilterError."""


AUTO = "auto"


def _number(name: str, value: object) -> int | None:
    """None for auto, else the positive integer ``value`` stands for."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        number = None
    if number is None or number <= 0:
        raise SettingsError(f"{name} must be auto or a positive whole number, not {value!r}")
    return number


SETTINGS = ("context_length", "num_parallel")


def _tier(name: str, entry: object, *, gpu: bool) -> Mapping[str, Any]:
    keys = ("min_free_mib", *SETTINGS) if gpu else SETTINGS
    if not isinstance(entry, Mapping) or any(
        isinstance(entry.get(k), bool) or not isinstance(entry.get(k), int) for k in keys
    ):
        raise SettingsError(
            f"ollama_auto_tiers.{name} must be a mapping of whole numbers {', '.join(keys)}, "
            f"not {entry!r}"
        )
    return entry


def _mib(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def held_mib(loaded: object) -> int:
    """MiB of VRAM that the models in an ``/api/ps`` list hold."""
    if not isinstance(loaded, Sequence) or isinstance(loaded, str):
        return 0
    held = sum(_mib(m.get("size_vram")) or 0 for m in loaded if isinstance(m, Mapping))
    return held // (1024 * 1024)


def pick_tier(
    gpu: Mapping[str, Any], tiers: Mapping[str, Any], held: int = 0
) -> tuple[Mapping[str, Any], str]:
    """The tier for the host and a sentence saying why."""
    cpu = _tier("cpu", tiers.get("cpu") if isinstance(tiers, Mapping) else None, gpu=False)
    ladder = tiers.get("gpu") if isinstance(tiers, Mapping) else None
    if not isinstance(ladder, Sequence) or isinstance(ladder, str) or not ladder:
        raise SettingsError("ollama_auto_tiers.gpu must be a non-empty list of tiers")
    gpu_tiers = sorted(
        (_tier(f"gpu[{i}]", t, gpu=True) for i, t in enumerate(ladder)),
        key=lambda t: -int(t["min_free_mib"]),
    )
    if gpu.get("mode") != "gpu":
        return cpu, "CPU mode (no usable GPU)"
    free, total = _mib(gpu.get("vram_free_mib")), _mib(gpu.get("vram_total_mib"))
    held = max(held, 0)
    if free is None and total is None:
        return gpu_tiers[-1], "the GPU reports no VRAM figures: the smallest tier"
    if free is None:
        usable, basis = total or 0, f"{total} MiB VRAM in total (no free figure)"
    else:
        usable = free + held if total is None else min(free + held, total)
        basis = f"{usable} MiB VRAM free"
        if held:
            basis += f" (counting {held} MiB that Ollama's loaded models hold)"
    for tier in gpu_tiers:
        if usable >= int(tier["min_free_mib"]):
            return tier, f"{basis}, tier from {tier['min_free_mib']} MiB"
    return gpu_tiers[-1], f"{basis}, below every tier: the smallest"


def choose(
    gpu: object,
    tiers: Mapping[str, Any],
    context_length: object = AUTO,
    num_parallel: object = AUTO,
    loaded: object = (),
) -> dict[str, Any]:
    """``{"context_length", "num_parallel", "reason"}`` for the ollama role; SettingsError for
    a setting or tier that cannot be used."""
    context = _number("ollama_context_length", context_length)
    parallel = _number("ollama_num_parallel", num_parallel)
    if context is not None and parallel is not None:
        return {"context_length": context, "num_parallel": parallel, "reason": "both set"}
    facts = gpu if isinstance(gpu, Mapping) else {}
    tier, why = pick_tier(facts, tiers, held_mib(loaded))
    return {
        "context_length": context if context is not None else int(tier["context_length"]),
        "num_parallel": parallel if parallel is not None else int(tier["num_parallel"]),
        "reason": why,
    }


def ollama_auto_settings(*args: Any) -> dict[str, Any]:
    """The filter: :func:`choose`, its errors as Ansible's."""
    try:
        return choose(*args)
    except SettingsError as e:
        # imported here, where Ansible runs the filter: importing ansible.errors patches
        # sys.intern, which torch then refuses in a process that imports this module (pytest)
        from ansible.errors import AnsibleFilterError  # noqa: PLC0415

        raise AnsibleFilterError(str(e)) from None


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"ollama_auto_settings": ollama_auto_settings}
