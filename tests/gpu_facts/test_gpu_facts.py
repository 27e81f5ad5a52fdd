"""collect() of the gpu_facts module_utils (gpu_facts_collect) with a fake NVML and a fake command
runner; the host capacity facts (host_capacity).

No GPU exists here, so NVML and libcuda are replaced by fake "libraries" that follow the C ABI of
nvml.h / cuda.h at the ctypes level (string buffers, pointers, return codes) and answer with
values recorded in the fixtures (NVML_RECORDED_FROM_FIXTURES), and nvidia-smi by a runner that
replays the recorded outputs in tests/fixtures/nvidia-smi.
"""

from __future__ import annotations

import csv
import ctypes
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.gpu_facts.module_utils import load
from tests.gpu_facts.test_gpu_parsers import SMI

gpu_model = load("gpu_model")
nvidia_smi = load("gpu_nvidia_smi")
gpu_nvml = load("gpu_nvml")
host_capacity = load("host_capacity")
gpu_facts_collect = load("gpu_facts_collect")

MIB = 1024 * 1024
NVIDIA_SMI = "/usr/bin/nvidia-smi"
CSV_QUERY = (f"--query-gpu={','.join(nvidia_smi.QUERY_FIELDS)}", "--format=csv")
CSV_QUERY_KMD = (f"--query-gpu={','.join(nvidia_smi.QUERY_FIELDS_KMD)}", "--format=csv")


def read(name: str) -> str:
    return (SMI / name).read_text(encoding="utf-8")


# ----------------------------------------------------------------------------------- fake NVML


@dataclass
class RecordedDevice:
    name: str
    uuid: str
    total_mib: int | None  # None: the device has no memory figures (NVML_ERROR_NOT_SUPPORTED)
    reserved_mib: int = 0
    used_mib: int = 0
    free_mib: int = 0
    mig: int | None = None  # 1 enabled, 0 disabled, None: NOT_SUPPORTED


@dataclass
class RecordedNvml:
    driver: str
    cuda: int
    devices: list[RecordedDevice] = field(default_factory=list)


MASKED = "GPU-00000000-0000-0000-0000-000000000000"
MASKED_1 = "GPU-00000000-0000-0000-0000-000000000001"
H100 = "NVIDIA H100 80GB HBM3"

# What NVML answered on the recorded machines: nvidia-smi prints NVML's values, so they are read
# off the recorded outputs named in each comment. "reserved 0" where the recording does not show
# reserved memory (default tables).
NVML_RECORDED_FROM_FIXTURES = {
    # query-gpu-csv_1x-h100-80gb-hbm3_driver-590.48.01.csv, q-text_1x-h100-80gb-hbm3_...
    "h100-80gb": RecordedNvml(
        "590.48.01", 13010, [RecordedDevice(H100, MASKED, 81559, 479, 0, 81081, 0)]
    ),
    # query-gpu-csv_1x-h100-mig-enabled_driver-590.48.01.csv
    "h100-80gb-mig": RecordedNvml(
        "590.48.01", 13010, [RecordedDevice(H100, MASKED, 81559, 479, 59, 81022, 1)]
    ),
    # query-gpu-csv_1x-rtx2080super_driver-610.57.04.csv, q-text_1x-rtx2080super_driver-610.57.04
    "rtx2080super-610": RecordedNvml(
        "610.57.04", 13030,
        [RecordedDevice("NVIDIA GeForce RTX 2080 SUPER", MASKED, 8192, 400, 211, 7582)],
    ),
    # table_1x-rtx-a5000-wsl2_nvsmi-555.42.03_driver-555.85.txt (UUID not shown: masked)
    "a5000-24gb": RecordedNvml(
        "555.85", 12050, [RecordedDevice("NVIDIA RTX A5000", MASKED, 24564, 0, 24196, 368)]
    ),
    # table_2x-rtx4090_driver-550.90.07_partial-no-processes.txt
    "2x-rtx4090": RecordedNvml(
        "550.90.07", 12040,
        [
            RecordedDevice("NVIDIA GeForce RTX 4090", MASKED, 24564, 0, 1, 24563),
            RecordedDevice("NVIDIA GeForce RTX 4090", MASKED_1, 24564, 0, 1, 24563),
        ],
    ),
    # q-x_1x-a100-sxm4-40gb-mig_driver-510.47.03.xml
    "a100-40gb-mig": RecordedNvml(
        "510.47.03", 11060,
        [RecordedDevice("NVIDIA A100-SXM4-40GB", "GPU-27b94a00-ed54-5c24-b1fd-1054085de32a",
                        40960, 605, 38, 40315, 1)],
    ),
    # CONSTRUCTED: INDEX.md fact 7, GB10 has no memory figures (NVML: NOT_SUPPORTED)
    "gb10": RecordedNvml("580.126.09", 13000, [RecordedDevice("NVIDIA GB10", MASKED, None)]),
}  # fmt: skip

NVML_ERRORS = {
    1: b"Uninitialized",
    2: b"Invalid Argument",
    3: b"Not Supported",
    6: b"Not Found",
    7: b"Insufficient Size",
    9: b"Driver Not Loaded",
    15: b"GPU is lost",
    18: b"Driver/library version mismatch",
    25: b"Argument version mismatch",
    999: b"Unknown Error",
}


class Symbol:
    """One C function of a fake library: callable, with ctypes' restype/argtypes attributes."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self._function = function
        self.restype: Any = ctypes.c_int
        self.argtypes: Any = None

    def __call__(self, *args: Any) -> Any:
        return self._function(*args)


def _pointer_to(value: Any, kind: type) -> Any:
    """The object a ctypes pointer argument points to; fails the test on an ABI mistake."""
    assert isinstance(value, ctypes._Pointer), f"expected a pointer, got {value!r}"
    assert isinstance(value.contents, kind), f"expected *{kind.__name__}, got {value.contents!r}"
    return value.contents


class FakeNvmlLibrary:
    """Stands in for ctypes.CDLL("libnvidia-ml.so.1"), answering with recorded values."""

    def __init__(
        self,
        recorded: RecordedNvml,
        init_rc: int = 0,
        missing: tuple[str, ...] = (),
        handle_rc: dict[int, int] | None = None,
    ) -> None:
        self.recorded = recorded
        self.init_rc = init_rc
        self.handle_rc = handle_rc or {}
        self.initialized = 0
        self.calls: list[str] = []
        implementations: dict[str, Callable[..., Any]] = {
            "nvmlInit_v2": self._init,
            "nvmlShutdown": self._shutdown,
            "nvmlErrorString": lambda code: NVML_ERRORS.get(code, b"Unknown Error"),
            "nvmlSystemGetDriverVersion": lambda b, size: self._string(recorded.driver, b, size),
            "nvmlSystemGetCudaDriverVersion_v2": self._cuda,
            "nvmlDeviceGetCount_v2": self._count,
            "nvmlDeviceGetHandleByIndex_v2": self._handle,
            "nvmlDeviceGetName": lambda h, buf, size: self._device_string(h, "name", buf, size),
            "nvmlDeviceGetUUID": lambda h, buf, size: self._device_string(h, "uuid", buf, size),
            "nvmlDeviceGetMemoryInfo_v2": self._memory_v2,
            "nvmlDeviceGetMemoryInfo": self._memory_v1,
            "nvmlDeviceGetMigMode": self._mig,
        }
        for name, function in implementations.items():
            if name not in missing:
                setattr(self, name, Symbol(self._logged(name, function)))

    def _logged(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            self.calls.append(name)
            if name not in ("nvmlInit_v2", "nvmlErrorString") and not self.initialized:
                return 1  # NVML_ERROR_UNINITIALIZED
            return function(*args)

        return call

    def _init(self) -> int:
        if self.init_rc == 0:
            self.initialized += 1
        return self.init_rc

    def _shutdown(self) -> int:
        self.initialized -= 1
        return 0

    @staticmethod
    def _string(value: str, buf: Any, size: int) -> int:
        assert isinstance(buf, ctypes.Array), f"expected a char buffer, got {buf!r}"
        assert isinstance(size, int)
        assert size <= len(buf)
        data = value.encode()
        if len(data) + 1 > size:
            return 7  # NVML_ERROR_INSUFFICIENT_SIZE
        buf.value = data
        return 0

    def _cuda(self, pointer: Any) -> int:
        _pointer_to(pointer, ctypes.c_int).value = self.recorded.cuda
        return 0

    def _count(self, pointer: Any) -> int:
        _pointer_to(pointer, ctypes.c_uint).value = len(self.recorded.devices)
        return 0

    def _handle(self, index: int, pointer: Any) -> int:
        if index in self.handle_rc:
            return self.handle_rc[index]
        if not 0 <= index < len(self.recorded.devices):
            return 2
        _pointer_to(pointer, ctypes.c_void_p).value = 0x1000 + index
        return 0

    def _device(self, handle: Any) -> RecordedDevice:
        assert isinstance(handle, ctypes.c_void_p), f"expected a device handle, got {handle!r}"
        assert handle.value is not None
        return self.recorded.devices[handle.value - 0x1000]

    def _device_string(self, handle: Any, attribute: str, buf: Any, size: int) -> int:
        return self._string(getattr(self._device(handle), attribute), buf, size)

    def _memory_v2(self, handle: Any, pointer: Any) -> int:
        device = self._device(handle)
        memory = _pointer_to(pointer, gpu_nvml.NvmlMemoryV2)
        if memory.version != ctypes.sizeof(gpu_nvml.NvmlMemoryV2) | (2 << 24):
            return 25  # NVML_ERROR_ARGUMENT_VERSION_MISMATCH
        if device.total_mib is None:
            return 3
        memory.total, memory.reserved = device.total_mib * MIB, device.reserved_mib * MIB
        memory.used, memory.free = device.used_mib * MIB, device.free_mib * MIB
        return 0

    def _memory_v1(self, handle: Any, pointer: Any) -> int:
        device = self._device(handle)
        memory = _pointer_to(pointer, gpu_nvml.NvmlMemory)
        if device.total_mib is None:
            return 3
        # v1 counts the reserved memory as used
        memory.total, memory.free = device.total_mib * MIB, device.free_mib * MIB
        memory.used = (device.total_mib - device.free_mib) * MIB
        return 0

    def _mig(self, handle: Any, current: Any, pending: Any) -> int:
        device = self._device(handle)
        if device.mig is None:
            return 3
        _pointer_to(current, ctypes.c_uint).value = device.mig
        _pointer_to(pending, ctypes.c_uint).value = device.mig
        return 0


class FakeLibcuda:
    """Stands in for ctypes.CDLL("libcuda.so.1"): cuDriverGetVersion only."""

    def __init__(self, version: int) -> None:
        def get_version(pointer: Any) -> int:
            _pointer_to(pointer, ctypes.c_int).value = version
            return 0

        self.cuDriverGetVersion = Symbol(get_version)


def loader(nvml: Any = None, cuda: Any = None) -> Callable[[str], Any]:
    libraries = {gpu_nvml.NVML_LIBRARY: nvml, gpu_nvml.CUDA_LIBRARY: cuda}

    def load(name: str) -> Any:
        library = libraries.get(name)
        if library is None:
            raise OSError(f"{name}: cannot open shared object file: No such file or directory")
        return library

    return load


# ----------------------------------------------------------------------------------- fake runner


class FakeRunner:
    """Replays recorded nvidia-smi outputs: args -> (rc, stdout, stderr). Commands without a
    recording fail like an unknown query would (rc 2), and every call is logged."""

    def __init__(self, answers: dict[tuple[str, ...], tuple[int, str, str]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: list[str]) -> tuple[int, str, str]:
        assert argv[0] == NVIDIA_SMI
        args = tuple(argv[1:])
        self.calls.append(args)
        return self.answers.get(args, (2, "", f"fake runner: nothing recorded for {args}"))


class FailingRunner(FakeRunner):
    """Every command prints the recorded failure message (on stdout, INDEX.md fact 10)."""

    def __init__(self, message: str, rc: int) -> None:
        super().__init__({})
        self.message, self.rc = message, rc

    def __call__(self, argv: list[str]) -> tuple[int, str, str]:
        self.calls.append(tuple(argv[1:]))
        return self.rc, self.message, ""


def select_columns(recorded_csv: str, fields: tuple[str, ...]) -> str:
    """Answer a --query-gpu for ``fields`` from a recorded CSV holding more columns."""
    rows = list(csv.reader(io.StringIO(recorded_csv), skipinitialspace=True))
    names = [h.split(" [")[0] for h in rows[0]]
    positions = [names.index(f) for f in fields]
    return "".join(", ".join(row[p] for p in positions) + "\n" for row in rows)


def smi_answers(**recordings: str) -> dict[tuple[str, ...], tuple[int, str, str]]:
    keys = {"csv": CSV_QUERY, "xml": ("-q", "-x"), "q": ("-q",), "version": ("--version",),
            "table": ()}  # fmt: skip
    answers = {}
    for key, text in recordings.items():
        answer = select_columns(text, nvidia_smi.QUERY_FIELDS) if key == "csv" else text
        answers[keys[key]] = (0, answer, "")
    return answers


def run_facts(
    tmp_path: Path,
    runner: FakeRunner | None = None,
    nvml: Any = None,
    cuda: Any = None,
    smi_installed: bool = True,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """collect()'s two facts: ``vastllm_gpu`` and ``vastllm_host`` (which has the summary)."""
    facts: dict[str, dict[str, Any]] = gpu_facts_collect.collect(
        model_dir=str(tmp_path / "models"),
        runner=runner or FakeRunner({}),
        load_library=loader(nvml, cuda),
        find_smi=lambda: NVIDIA_SMI if smi_installed else None,
    )
    assert sorted(facts) == ["vastllm_gpu", "vastllm_host"]
    return facts["vastllm_gpu"], facts["vastllm_host"]


def run_collect(
    tmp_path: Path,
    runner: FakeRunner | None = None,
    nvml: Any = None,
    cuda: Any = None,
    smi_installed: bool = True,
) -> dict[str, Any]:
    """The ``vastllm_gpu`` fact alone."""
    return run_facts(tmp_path, runner, nvml, cuda, smi_installed)[0]


def gpu_rows(facts: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (g["index"], g["name"], g["memory_total_mib"], g["memory_used_mib"], g["memory_free_mib"])
        for g in facts["gpus"]
    ]


# ----------------------------------------------------------------------------------- NVML


@pytest.mark.parametrize("machine", sorted(NVML_RECORDED_FROM_FIXTURES))
def test_nvml_reports_recorded_machine(tmp_path: Path, machine: str) -> None:
    recorded = NVML_RECORDED_FROM_FIXTURES[machine]
    nvml = FakeNvmlLibrary(recorded)
    runner = FakeRunner({})
    facts = run_collect(tmp_path, runner, nvml=nvml)
    assert facts["mode"] == "gpu"
    assert facts["source"] == "nvml"
    assert facts["driver_version"] == recorded.driver
    assert facts["cuda_version"] == gpu_model.cuda_version_from_int(recorded.cuda)
    assert facts["cuda_version_source"] == "nvml"
    assert facts["gpu_count"] == len(recorded.devices)
    assert gpu_rows(facts) == [
        (i, d.name, d.total_mib, d.used_mib if d.total_mib else None,
         d.free_mib if d.total_mib else None)
        for i, d in enumerate(recorded.devices)
    ]  # fmt: skip
    assert [g["uuid"] for g in facts["gpus"]] == [d.uuid for d in recorded.devices]
    assert [g["mig_mode"] for g in facts["gpus"]] == [
        {1: "Enabled", 0: "Disabled", None: None}[d.mig] for d in recorded.devices
    ]
    assert facts["problem"] is None
    assert runner.calls == []  # nvidia-smi not needed
    assert nvml.initialized == 0  # nvmlShutdown after nvmlInit


def test_nvml_h100_versions_and_totals(tmp_path: Path) -> None:
    facts, host = run_facts(
        tmp_path, nvml=FakeNvmlLibrary(NVML_RECORDED_FROM_FIXTURES["h100-80gb"])
    )
    assert (facts["driver_version"], facts["cuda_version"]) == ("590.48.01", "13.1")
    assert (facts["vram_total_mib"], facts["vram_free_mib"]) == (81559, 81081)
    assert host["summary"].startswith(
        "GPU mode: 1x NVIDIA H100 80GB HBM3 (81559 MiB); 79.2 GiB VRAM free; "
        "driver 590.48.01, CUDA 13.1; "
    )


def test_nvml_gb10_without_memory_figures_is_still_gpu_mode(tmp_path: Path) -> None:
    facts, host = run_facts(tmp_path, nvml=FakeNvmlLibrary(NVML_RECORDED_FROM_FIXTURES["gb10"]))
    assert facts["mode"] == "gpu"
    assert gpu_rows(facts) == [(0, "NVIDIA GB10", None, None, None)]
    assert facts["vram_total_mib"] is None
    assert "1x NVIDIA GB10 (memory not reported); free VRAM not reported" in host["summary"]


def test_nvml_memory_v1_fallback_counts_reserved_as_used(tmp_path: Path) -> None:
    nvml = FakeNvmlLibrary(
        NVML_RECORDED_FROM_FIXTURES["h100-80gb"], missing=("nvmlDeviceGetMemoryInfo_v2",)
    )
    facts = run_collect(tmp_path, nvml=nvml)
    assert gpu_rows(facts) == [(0, "NVIDIA H100 80GB HBM3", 81559, 478, 81081)]
    assert "nvmlDeviceGetMemoryInfo" in nvml.calls


def test_nvml_without_cuda_function_uses_libcuda(tmp_path: Path) -> None:
    nvml = FakeNvmlLibrary(
        NVML_RECORDED_FROM_FIXTURES["2x-rtx4090"],
        missing=("nvmlSystemGetCudaDriverVersion_v2",),
    )
    facts, host = run_facts(tmp_path, nvml=nvml, cuda=FakeLibcuda(12040))
    assert (facts["cuda_version"], facts["cuda_version_source"]) == ("12.4", "libcuda")
    assert facts["warnings"] == ["NVML did not report the CUDA version: NVML error 13: "
                                 "nvmlSystemGetCudaDriverVersion_v2 not found"]  # fmt: skip
    assert "2x NVIDIA GeForce RTX 4090 (24564 MiB each)" in host["summary"]


def test_nvml_unusable_device_is_skipped_with_a_warning(tmp_path: Path) -> None:
    nvml = FakeNvmlLibrary(NVML_RECORDED_FROM_FIXTURES["2x-rtx4090"], handle_rc={1: 15})
    facts = run_collect(tmp_path, nvml=nvml)
    assert facts["gpu_count"] == 1
    assert facts["warnings"] == ["GPU 1 is not usable: NVML error 15: GPU is lost"]


def test_nvml_no_devices(tmp_path: Path) -> None:
    nvml = FakeNvmlLibrary(RecordedNvml("570.153.02", 12080, []))
    facts = run_collect(tmp_path, nvml=nvml, smi_installed=False)
    assert (facts["mode"], facts["problem_kind"]) == ("cpu", "no-devices")
    assert "No devices were found" in facts["problem"]


@pytest.mark.parametrize(
    ("init_rc", "kind"),
    [(18, "driver-mismatch"), (9, "no-driver"), (6, "no-devices"), (999, "nvml-unknown-error"),
     (4, "no-permission"), (12, "nvml-error")],
)  # fmt: skip
def test_nvml_init_failure_without_nvidia_smi(tmp_path: Path, init_rc: int, kind: str) -> None:
    nvml = FakeNvmlLibrary(NVML_RECORDED_FROM_FIXTURES["h100-80gb"], init_rc=init_rc)
    facts, host = run_facts(tmp_path, nvml=nvml, smi_installed=False)
    assert (facts["mode"], facts["source"], facts["problem_kind"]) == ("cpu", "none", kind)
    assert facts["problem_detail"].startswith(f"NVML error {init_rc}: ")
    assert facts["gpus"] == []
    assert host["summary"].startswith("CPU mode: ")


def test_nvml_mismatch_then_nvidia_smi_message_wins(tmp_path: Path) -> None:
    message = read("fail_driver-library-mismatch_with-nvml-version-570.124_tinygrad-ogkm-47.txt")
    nvml = FakeNvmlLibrary(NVML_RECORDED_FROM_FIXTURES["h100-80gb"], init_rc=18)
    runner = FailingRunner(message, 18)
    facts = run_collect(tmp_path, runner, nvml=nvml)
    assert facts["problem_kind"] == "driver-mismatch"
    assert "570.124" in facts["problem"]
    assert runner.calls == [CSV_QUERY]


def test_nvml_failure_but_nvidia_smi_works(tmp_path: Path) -> None:
    # an NVML that errors where nvidia-smi still lists the GPU: trust the GPU list
    nvml = FakeNvmlLibrary(NVML_RECORDED_FROM_FIXTURES["h100-80gb"], init_rc=999)
    runner = FakeRunner(smi_answers(
        csv=read("query-gpu-csv_1x-h100-80gb-hbm3_driver-590.48.01.csv"),
        q=read("q-text_1x-h100-80gb-hbm3_driver-590.48.01.txt"),
    ))  # fmt: skip
    facts = run_collect(tmp_path, runner, nvml=nvml)
    assert (facts["mode"], facts["source"]) == ("gpu", "nvidia-smi-csv")


# ----------------------------------------------------------------------------------- nvidia-smi


def test_smi_h100_csv_and_q_text(tmp_path: Path) -> None:
    # XML is not recorded for this machine: the CUDA version comes from -q text
    runner = FakeRunner(smi_answers(
        csv=read("query-gpu-csv_1x-h100-80gb-hbm3_driver-590.48.01.csv"),
        q=read("q-text_1x-h100-80gb-hbm3_driver-590.48.01.txt"),
        table=read("table_1x-h100-80gb-hbm3_driver-590.48.01.txt"),
    ))  # fmt: skip
    facts = run_collect(tmp_path, runner)
    assert (facts["mode"], facts["source"]) == ("gpu", "nvidia-smi-csv")
    assert gpu_rows(facts) == [(0, "NVIDIA H100 80GB HBM3", 81559, 0, 81081)]
    assert facts["gpus"][0]["uuid"] == MASKED
    assert facts["gpus"][0]["mig_mode"] == "Disabled"
    assert (facts["driver_version"], facts["cuda_version"]) == ("590.48.01", "13.1")
    assert facts["cuda_version_source"] == "nvidia-smi-q"
    assert runner.calls == [CSV_QUERY, ("-q", "-x"), ("-q",)]  # never the table


def test_smi_h100_mig(tmp_path: Path) -> None:
    runner = FakeRunner(smi_answers(
        csv=read("query-gpu-csv_1x-h100-mig-enabled_driver-590.48.01.csv"),
        version=read("version_driver-590.48.01.txt"),
        table=read("table_1x-h100-80gb-hbm3-mig-enabled_driver-590.48.01.txt"),
    ))  # fmt: skip
    facts, host = run_facts(tmp_path, runner)
    assert gpu_rows(facts) == [(0, "NVIDIA H100 80GB HBM3", 81559, 59, 81022)]
    assert facts["gpus"][0]["mig_mode"] == "Enabled"
    assert (facts["cuda_version"], facts["cuda_version_source"]) == ("13.1", "nvidia-smi-version")
    assert "(81559 MiB, MIG enabled)" in host["summary"]
    assert () not in runner.calls


def test_smi_610_csv_and_q_text_prefer_umd(tmp_path: Path) -> None:
    runner = FakeRunner(smi_answers(
        csv=read("query-gpu-csv_1x-rtx2080super_driver-610.57.04.csv"),
        q=read("q-text_1x-rtx2080super_driver-610.57.04.txt"),
        version=read("version_driver-610.57.04.txt"),
        table=read("table_1x-rtx2080super_driver-610.57.04_KMD-UMD-header.txt"),
    ))  # fmt: skip
    facts = run_collect(tmp_path, runner)
    assert gpu_rows(facts) == [(0, "NVIDIA GeForce RTX 2080 SUPER", 8192, 211, 7582)]
    assert (facts["driver_version"], facts["cuda_version"]) == ("610.57.04", "13.3")
    assert facts["cuda_version_source"] == "nvidia-smi-q"


def test_smi_610_version_output_when_q_fails(tmp_path: Path) -> None:
    runner = FakeRunner(smi_answers(
        csv=read("query-gpu-csv_1x-rtx2080super_driver-610.57.04.csv"),
        version=read("version_driver-610.57.04.txt"),
    ))  # fmt: skip
    facts = run_collect(tmp_path, runner)
    assert (facts["cuda_version"], facts["cuda_version_source"]) == ("13.3", "nvidia-smi-version")
    assert facts["nvidia_smi_version"] == "610.57.04"


@pytest.mark.parametrize(
    ("table", "expected", "versions"),
    [
        ("table_1x-rtx-a5000-wsl2_nvsmi-555.42.03_driver-555.85.txt",
         [(0, "NVIDIA RTX A5000", 24564, 24196, 368)], ("555.85", "12.5", "555.42.03")),
        ("table_2x-rtx4090_driver-550.90.07_partial-no-processes.txt",
         [(0, "NVIDIA GeForce RTX 4090", 24564, 1, 24563),
          (1, "NVIDIA GeForce RTX 4090", 24564, 1, 24563)], ("550.90.07", "12.4", "550.90.07")),
        ("table_1x-rtx2080super_driver-610.57.04_KMD-UMD-header.txt",
         [(0, "NVIDIA GeForce RTX 2080 ...", 8192, 211, 7981)], ("610.57.04", "13.3", "610.57.04")),
    ],
)  # fmt: skip
def test_smi_table_is_the_last_fallback(
    tmp_path: Path, table: str, expected: list[tuple[Any, ...]], versions: tuple[str, ...]
) -> None:
    # only the default table is recorded for these machines
    runner = FakeRunner(smi_answers(table=read(table)))
    facts = run_collect(tmp_path, runner)
    assert (facts["mode"], facts["source"]) == ("gpu", "nvidia-smi-table")
    assert gpu_rows(facts) == expected
    assert (facts["driver_version"], facts["cuda_version"], facts["nvidia_smi_version"]) == versions
    assert facts["cuda_version_source"] == "nvidia-smi-table"
    assert runner.calls == [CSV_QUERY, CSV_QUERY_KMD, ("-q", "-x"), ("-q",), ("--version",), ()]


def test_smi_xml_gives_devices_when_csv_fails(tmp_path: Path) -> None:
    runner = FakeRunner(smi_answers(xml=read("q-x_1x-a10g_driver-515.105.01.xml")))
    facts = run_collect(tmp_path, runner)
    assert (facts["mode"], facts["source"]) == ("gpu", "nvidia-smi-xml")
    assert gpu_rows(facts) == [(0, "NVIDIA A10G", 23028, 22, 22569)]
    assert (facts["driver_version"], facts["cuda_version"]) == ("515.105.01", "11.7")
    assert facts["cuda_version_source"] == "nvidia-smi-xml"
    assert ("-q",) not in runner.calls


def test_smi_table_reads_the_mig_mode(tmp_path: Path) -> None:
    # only the default table answers on this host: its MIG M. cell is the MIG mode
    runner = FakeRunner(smi_answers(
        table=read("table_1x-h100-80gb-hbm3-mig-enabled_driver-590.48.01.txt"),
    ))  # fmt: skip
    facts, host = run_facts(tmp_path, runner)
    assert (facts["mode"], facts["source"]) == ("gpu", "nvidia-smi-table")
    assert facts["gpus"][0]["mig_mode"] == "Enabled"
    assert "1x NVIDIA H100 80GB HBM3 (81559 MiB, MIG enabled)" in host["summary"]


def test_smi_xml_with_more_attached_gpus_than_described_warns(tmp_path: Path) -> None:
    # CONSTRUCTED: INDEX.md fact 6 (a recorded XML says attached_gpus 4 and describes one GPU)
    text = read("q-x_1x-a100-sxm4-40gb-mig_driver-510.47.03.xml").replace(
        "<attached_gpus>1</attached_gpus>", "<attached_gpus>4</attached_gpus>"
    )
    facts = run_collect(tmp_path, FakeRunner(smi_answers(xml=text)))
    assert (facts["mode"], facts["source"], facts["gpu_count"]) == ("gpu", "nvidia-smi-xml", 1)
    assert gpu_rows(facts) == [(0, "NVIDIA A100-SXM4-40GB", 40960, 38, 40315)]
    assert facts["warnings"] == [
        "nvidia-smi -q -x says 4 GPUs are attached but describes 1; only the described ones "
        "are reported"
    ]
    same = run_collect(tmp_path, FakeRunner(smi_answers(
        xml=read("q-x_1x-a100-sxm4-40gb-mig_driver-510.47.03.xml"))))  # fmt: skip
    assert same["warnings"] == []


def test_smi_xml_gives_cuda_version_after_csv(tmp_path: Path) -> None:
    # CONSTRUCTED CSV: the recorded T4 XML's values in --query-gpu form (no CSV was recorded)
    csv_text = (
        "index, name, uuid, memory.total [MiB], memory.used [MiB], memory.free [MiB], "
        "mig.mode.current, driver_version\n"
        "0, Tesla T4, GPU-d37e67a5-91dd-3774-a5cb-99096249601a, 15360 MiB, 1032 MiB, 13939 MiB, "
        "[N/A], 515.105.01\n"
    )
    answers = smi_answers(xml=read("q-x_1x-tesla-t4_driver-515.105.01.xml"))
    answers[CSV_QUERY] = (0, csv_text, "")
    runner = FakeRunner(answers)
    facts = run_collect(tmp_path, runner)
    assert (facts["source"], facts["cuda_version_source"]) == ("nvidia-smi-csv", "nvidia-smi-xml")
    assert facts["cuda_version"] == "11.7"
    assert runner.calls == [CSV_QUERY, ("-q", "-x")]


def test_smi_libcuda_version_saves_the_xml_call(tmp_path: Path) -> None:
    h100_csv = read("query-gpu-csv_1x-h100-80gb-hbm3_driver-590.48.01.csv")
    runner = FakeRunner(smi_answers(csv=h100_csv))
    facts = run_collect(tmp_path, runner, cuda=FakeLibcuda(13010))
    assert (facts["cuda_version"], facts["cuda_version_source"]) == ("13.1", "libcuda")
    assert runner.calls == [CSV_QUERY]


def test_smi_refusing_driver_version_field_retries_with_kmd_version(tmp_path: Path) -> None:
    # CONSTRUCTED: a future driver that drops the deprecated driver_version field (fact 4)
    recorded = read("query-gpu-csv_1x-rtx2080super_driver-610.57.04.csv")
    runner = FakeRunner({
        CSV_QUERY: (2, 'Field "driver_version" is not a valid field to query.\n', ""),
        CSV_QUERY_KMD: (0, select_columns(recorded, nvidia_smi.QUERY_FIELDS_KMD), ""),
        ("-q",): (0, read("q-text_1x-rtx2080super_driver-610.57.04.txt"), ""),
    })  # fmt: skip
    facts = run_collect(tmp_path, runner)
    assert (facts["source"], facts["driver_version"]) == ("nvidia-smi-csv", "610.57.04")


FAILURES = [
    ("fail_driver-library-mismatch_single-line_shine-cluster-30.txt", 18, "driver-mismatch"),
    ("fail_driver-library-mismatch_with-nvml-version-550.144_intel-llvm-17614.txt", 18,
     "driver-mismatch"),
    ("fail_no-driver_couldnt-communicate_shine-cluster-50.txt", 9, "no-driver"),
    ("fail_no-devices-were-found_open-gpu-kernel-modules-862.txt", 6, "no-devices"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "rc", "kind"), FAILURES)
def test_smi_recorded_failure_gives_cpu_mode_with_problem(
    tmp_path: Path, name: str, rc: int, kind: str
) -> None:
    runner = FailingRunner(read(name), rc)
    facts, host = run_facts(tmp_path, runner)
    assert (facts["mode"], facts["source"], facts["problem_kind"]) == ("cpu", "none", kind)
    assert facts["gpus"] == []
    assert facts["gpu_count"] == 0
    assert facts["problem_detail"] in read(name)
    assert host["summary"] == (
        f"CPU mode: {facts['problem']} -- " + host["summary"].split(" -- ", 1)[1]
    )
    assert runner.calls == [CSV_QUERY]  # stops at the first recognised failure


def test_smi_unknown_error_message(tmp_path: Path) -> None:
    # CONSTRUCTED: message from INDEX.md fact 10, exit code assumed
    facts = run_collect(tmp_path, FailingRunner("Failed to initialize NVML: Unknown Error\n", 255))
    assert facts["problem_kind"] == "nvml-unknown-error"
    assert "--gpus all" in facts["problem"]


def test_smi_timeout(tmp_path: Path) -> None:
    runner = FakeRunner({CSV_QUERY: (124, "", "/usr/bin/nvidia-smi timed out after 60 s")})
    facts = run_collect(tmp_path, runner)
    assert (facts["mode"], facts["problem_kind"]) == ("cpu", "nvidia-smi-timeout")


def test_smi_unrecognised_failure_everywhere(tmp_path: Path) -> None:
    facts = run_collect(tmp_path, FailingRunner("Segmentation fault\n", 139))
    assert (facts["mode"], facts["problem_kind"]) == ("cpu", "nvidia-smi-error")
    assert "Segmentation fault" in facts["problem"]


def test_smi_csv_without_rows_means_no_devices(tmp_path: Path) -> None:
    runner = FakeRunner({CSV_QUERY: (0, "", "")})
    facts = run_collect(tmp_path, runner)
    assert (facts["mode"], facts["problem_kind"]) == ("cpu", "no-devices")


def test_no_nvidia_smi_and_no_nvml_is_cpu_mode_without_problem(tmp_path: Path) -> None:
    runner = FakeRunner({})
    facts, host = run_facts(tmp_path, runner, smi_installed=False)
    assert (facts["mode"], facts["source"], facts["problem"]) == ("cpu", "none", None)
    assert host["summary"].startswith("CPU mode: no NVIDIA GPU or driver found -- ")
    assert runner.calls == []


# ----------------------------------------------------------------------------------- host


def documented_facts() -> dict[str, set[str]]:
    """Each fact of the module's RETURN block -> the keys it documents."""
    source = (Path(__file__).resolve().parents[2] / "plugins/modules/gpu_facts.py").read_text()
    block = source.split('RETURN = r"""', 1)[1].split('"""', 1)[0]
    facts = yaml.safe_load(block)["ansible_facts"]["contains"]
    return {name: set(fact["contains"]) for name, fact in facts.items()}


def test_collect_reports_every_documented_fact(tmp_path: Path) -> None:
    nvml = FakeNvmlLibrary(NVML_RECORDED_FROM_FIXTURES["a5000-24gb"])
    facts, host = run_facts(tmp_path, nvml=nvml)
    assert documented_facts() == {"vastllm_gpu": set(facts), "vastllm_host": set(host)}
    assert set(host) == {
        "cpu_count", "ram_total_bytes", "ram_available_bytes", "ram_limited_by_cgroup",
        "model_dir", "disk_path", "disk_free_bytes", "disk_total_bytes", "summary",
    }  # fmt: skip
    assert host["model_dir"] == str(tmp_path / "models")
    assert host["disk_path"] == str(tmp_path)  # nearest existing parent
    stats = os.statvfs(tmp_path)
    assert 0 < host["disk_free_bytes"] <= stats.f_blocks * stats.f_frsize
    assert host["disk_total_bytes"] == stats.f_blocks * stats.f_frsize
    assert host["ram_total_bytes"] > 0
    assert host["cpu_count"] >= 1
    assert (
        f"disk free on {tmp_path} (nearest existing parent of {tmp_path}/models)" in host["summary"]
    )


def test_nearest_existing(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    assert host_capacity.nearest_existing(str(tmp_path / "a" / "b" / "c")) == str(tmp_path / "a")
    assert host_capacity.nearest_existing(str(tmp_path / "a")) == str(tmp_path / "a")
    assert host_capacity.nearest_existing("/definitely/not/here") == "/"


def write_host(root: Path, files: dict[str, str]) -> str:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(root)


MEMINFO = "MemTotal:       65807796 kB\nMemFree:         1000000 kB\nMemAvailable:   60000000 kB\n"


def test_memory_without_cgroup_limit(tmp_path: Path) -> None:
    root = write_host(tmp_path, {"proc/meminfo": MEMINFO, "sys/fs/cgroup/memory.max": "max\n"})
    assert host_capacity.memory_facts(root) == {
        "ram_total_bytes": 65807796 * 1024,
        "ram_available_bytes": 60000000 * 1024,
        "ram_limited_by_cgroup": False,
    }


def test_memory_cgroup_v2_limit_lowers_total_and_available(tmp_path: Path) -> None:
    root = write_host(tmp_path, {
        "proc/meminfo": MEMINFO,
        "sys/fs/cgroup/memory.max": str(16 * 1024**3),
        "sys/fs/cgroup/memory.current": str(4 * 1024**3),
    })  # fmt: skip
    assert host_capacity.memory_facts(root) == {
        "ram_total_bytes": 16 * 1024**3,
        "ram_available_bytes": 12 * 1024**3,
        "ram_limited_by_cgroup": True,
    }


def test_memory_cgroup_v1_unlimited_is_ignored(tmp_path: Path) -> None:
    root = write_host(tmp_path, {
        "proc/meminfo": MEMINFO,
        "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
        "sys/fs/cgroup/memory/memory.usage_in_bytes": "123\n",
    })  # fmt: skip
    assert host_capacity.memory_facts(root)["ram_limited_by_cgroup"] is False


@pytest.mark.parametrize(
    ("cpu_max", "affinity", "expected"),
    [("max 100000", 32, 32), ("400000 100000", 32, 4), ("150000 100000", 32, 2),
     ("400000 100000", 2, 2), (None, 8, 8)],
)  # fmt: skip
def test_cpu_count_respects_cgroup_quota(
    tmp_path: Path, cpu_max: str | None, affinity: int, expected: int
) -> None:
    files = {"sys/fs/cgroup/cpu.max": cpu_max} if cpu_max else {}
    assert host_capacity.cpu_count(write_host(tmp_path, files), affinity=affinity) == expected


def test_real_host_figures_are_plausible() -> None:
    facts = host_capacity.memory_facts("/")
    assert 0 < facts["ram_available_bytes"] <= facts["ram_total_bytes"]
    assert 1 <= host_capacity.cpu_count("/") <= (os.cpu_count() or 1)


# ----------------------------------------------------------------------------------- plumbing


def test_subprocess_runner(tmp_path: Path) -> None:
    run = nvidia_smi.subprocess_runner(timeout=30)
    assert run(["sh", "-c", "echo out; echo err >&2; exit 3"]) == (3, "out\n", "err\n")
    assert run(["sh", "-c", "echo $LC_ALL"])[1] == "C\n"
    code, _, err = run([str(tmp_path / "missing")])
    assert code == 127
    assert "missing" in err


def test_subprocess_runner_timeout() -> None:
    code, _, err = nvidia_smi.subprocess_runner(timeout=0.2)(["sleep", "5"])
    assert code == 124
    assert "timed out" in err


def test_find_nvidia_smi(tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert nvidia_smi.find_nvidia_smi(str(fake.parent)) == str(fake)
    empty = tmp_path / "empty"
    empty.mkdir()
    wsl = Path("/usr/lib/wsl/lib/nvidia-smi")
    assert nvidia_smi.find_nvidia_smi(str(empty)) == (str(wsl) if wsl.exists() else None)


def test_default_loader_raises_oserror_for_missing_library() -> None:
    with pytest.raises(OSError, match="libdoes-not-exist"):
        gpu_nvml.load_native_library("libdoes-not-exist.so.1")
