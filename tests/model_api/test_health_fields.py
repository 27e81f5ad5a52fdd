"""/health's GPU fields in-process, torch.cuda answered by a fake (no GPU here): ours in MiB and
the first seed's ``healthy``, ``gpu``, ``vram_used``, ``vram_total`` beside them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vastllm.model_api import hardware
from vastllm.model_api.hardware import GpuInfo
from vastllm.model_api.routes_health import health_of
from vastllm.model_api.runtime import Runtime
from vastllm.model_api.settings import ModelApiSettings
from vastllm.seed_health import seed_size

MIB = 1024**2
# the seed's documented answer: "gpu": "NVIDIA RTX A5000", "vram_used": "14.23 GB",
# "vram_total": "23.55 GB"; these MiB figures give it with the GiB formula (bytes / 1024**3)
SEED_TOTAL_MIB, SEED_USED_MIB = 24115, 14571


class FakeEngine:
    """What /health reads of a loaded engine; its GPU figures come from torch.cuda."""

    device = "cuda:0"
    dtype = "bfloat16"
    context_length = 8192

    def gpu_info(self) -> GpuInfo | None:
        return hardware.gpu_info(self.device)


@pytest.fixture
def a5000(monkeypatch: pytest.MonkeyPatch) -> None:
    free = (SEED_TOTAL_MIB - SEED_USED_MIB) * MIB
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (free, SEED_TOTAL_MIB * MIB))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA RTX A5000")


def runtime(tmp_path: Path, status: str) -> Runtime:
    rt = Runtime(ModelApiSettings(model_path=tmp_path))
    rt.engine = FakeEngine()  # type: ignore[assignment]
    rt.status = status  # type: ignore[assignment]
    return rt


@pytest.mark.parametrize(
    ("number_of_bytes", "shown"),
    [
        (None, None),
        (0, "0.00 GB"),
        (24564 * MIB, "23.99 GB"),  # an RTX A5000's total as nvidia-smi shows it
        (SEED_TOTAL_MIB * MIB, "23.55 GB"),
        (SEED_USED_MIB * MIB, "14.23 GB"),
        (10**9, "0.93 GB"),  # binary, not decimal, gigabytes
    ],
)
def test_seed_size_is_gib_with_two_decimals(number_of_bytes: int | None, shown: str) -> None:
    assert seed_size(number_of_bytes) == shown


def test_gpu_figures_ours_and_the_seeds(a5000: None, tmp_path: Path) -> None:
    body = health_of(runtime(tmp_path, "ready")).model_dump()
    assert body["status"] == "ready"
    assert (body["gpu_name"], body["vram_used_mib"], body["vram_total_mib"]) == (
        "NVIDIA RTX A5000", SEED_USED_MIB, SEED_TOTAL_MIB)  # fmt: skip
    assert {k: body[k] for k in ("healthy", "gpu", "vram_used", "vram_total")} == {
        "healthy": True,
        "gpu": "NVIDIA RTX A5000",
        "vram_used": "14.23 GB",
        "vram_total": "23.55 GB",
    }


def test_not_ready_is_not_healthy(a5000: None, tmp_path: Path) -> None:
    for status in ("loading", "error"):
        body = health_of(runtime(tmp_path, status)).model_dump()
        assert (body["status"], body["healthy"]) == (status, False)
        assert body["gpu"] == "NVIDIA RTX A5000"


def test_cpu_has_no_gpu_figures(tmp_path: Path) -> None:
    rt = Runtime(ModelApiSettings(model_path=tmp_path))
    body = health_of(rt).model_dump()  # still loading: no engine yet
    assert (body["healthy"], body["gpu"], body["vram_used"], body["vram_total"]) == (
        False, None, None, None)  # fmt: skip
    assert hardware.gpu_info("cpu") is None
