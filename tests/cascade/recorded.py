"""GPU facts for the cascade tests, made by the gpu_facts parsers from recorded nvidia-smi
outputs (tests/fixtures/nvidia-smi), in the shape of the file the model_cascade role writes:
``{"vastllm_gpu": {...}, "vastllm_host": {...}}``."""

from __future__ import annotations

from typing import Any

from tests.gpu_facts.module_utils import load
from tests.support import FIXTURES

gpu_model = load("gpu_model")
smi_parsers = load("gpu_smi_parsers")

SMI = FIXTURES / "nvidia-smi"
GB = 10**9


def _read(name: str) -> str:
    return (SMI / name).read_text(encoding="utf-8")


def facts_for(
    gpus: list[Any], disk_free_bytes: int = 500 * GB, ram_available_bytes: int = 64 * GB
) -> dict[str, Any]:
    """The keys of collect()'s two facts that the cascade reads (mode, gpus; disk, RAM)."""
    rows = [g.as_dict() for g in gpus]
    return {
        "vastllm_gpu": {
            "mode": "gpu" if rows else "cpu",
            "gpus": rows,
            "gpu_count": len(rows),
            "vram_total_mib": sum(r["memory_total_mib"] for r in rows) if rows else None,
            "vram_free_mib": sum(r["memory_free_mib"] for r in rows) if rows else None,
            "problem": None,
        },
        "vastllm_host": {
            "disk_free_bytes": disk_free_bytes,
            "ram_available_bytes": ram_available_bytes,
        },
    }


def h100(**kw: int) -> dict[str, Any]:
    rows = smi_parsers.parse_query_csv(
        _read("query-gpu-csv_1x-h100-80gb-hbm3_driver-590.48.01.csv")
    )
    return facts_for(smi_parsers.gpus_from_query_rows(rows), **kw)


def a5000(**kw: int) -> dict[str, Any]:
    """The recorded A5000 (WSL2): 24564 MiB total, 24196 in use, 368 free."""
    table = smi_parsers.parse_table(
        _read("table_1x-rtx-a5000-wsl2_nvsmi-555.42.03_driver-555.85.txt")
    )
    return facts_for(table.gpus, **kw)


def two_4090(**kw: int) -> dict[str, Any]:
    table = smi_parsers.parse_table(
        _read("table_2x-rtx4090_driver-550.90.07_partial-no-processes.txt")
    )
    return facts_for(table.gpus, **kw)


def one_4090(**kw: int) -> dict[str, Any]:
    """Idle RTX 4090 (-q -x): 24214 MiB free."""
    return facts_for(smi_parsers.parse_xml(_read("q-x_1x-rtx4090_driver-535.86.05.xml")).gpus, **kw)


def rtx2080super(**kw: int) -> dict[str, Any]:
    """8 GB card: 7582 MiB free (--query-gpu CSV)."""
    rows = smi_parsers.parse_query_csv(_read("query-gpu-csv_1x-rtx2080super_driver-610.57.04.csv"))
    return facts_for(smi_parsers.gpus_from_query_rows(rows), **kw)


def no_gpu(**kw: int) -> dict[str, Any]:
    """CPU mode: the driver says 'No devices were found'."""
    failure = gpu_model.classify_failure(
        _read("fail_no-devices-were-found_open-gpu-kernel-modules-862.txt")
    )
    facts = facts_for([], **kw)
    facts["vastllm_gpu"].update(problem=failure.problem, problem_kind=failure.kind)
    return facts
