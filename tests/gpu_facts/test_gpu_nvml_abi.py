"""The ctypes NVML/libcuda code against real shared libraries with the C ABI of nvml.h / cuda.h.

No NVIDIA driver exists here, so the libraries are TEST DOUBLES compiled from the C source below
(``libnvidia-ml-double`` / ``libcuda-double``): they follow the declarations of nvml.h
(nvmlReturn_t codes, nvmlMemory_t / nvmlMemory_v2_t layouts, opaque device handles, caller-owned
string buffers) and answer with values recorded in the fixtures (H100: query-gpu-csv_1x-h100-80gb-
hbm3_driver-590.48.01.csv; 2x RTX 4090: table_2x-rtx4090_driver-550.90.07_partial-no-processes).
This catches what a Python fake cannot: argument marshalling, struct layout and restype mistakes.
Needs gcc (build-essential).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.gpu_facts.module_utils import load

gpu_nvml = load("gpu_nvml")

NVML_DOUBLE_C = r"""
/* TEST DOUBLE of libnvidia-ml.so.1 -- values come from -D macros. */
#include <string.h>

typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct {
    unsigned int version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;
typedef struct nvmlDevice_st *nvmlDevice_t;

#define MIB (1024ULL * 1024ULL)
#define HANDLE_BASE 0x1000UL

static int initialized = 0;

int nvmlInit_v2(void) { if (INIT_RC == 0) initialized++; return INIT_RC; }
int nvmlShutdown(void) { if (!initialized) return 1; initialized--; return 0; }

const char *nvmlErrorString(int rc) {
    switch (rc) {
    case 1: return "Uninitialized";
    case 2: return "Invalid Argument";
    case 3: return "Not Supported";
    case 7: return "Insufficient Size";
    case 9: return "Driver Not Loaded";
    case 18: return "Driver/library version mismatch";
    case 25: return "Argument version mismatch";
    default: return "Unknown Error";
    }
}

static int copy(const char *value, char *buffer, unsigned int length) {
    if (strlen(value) + 1 > length) return 7;
    strcpy(buffer, value);
    return 0;
}

static int device(nvmlDevice_t handle) {
    unsigned long value = (unsigned long)handle;
    if (!initialized) return -1;
    if (value < HANDLE_BASE || value >= HANDLE_BASE + COUNT) return -1;
    return (int)(value - HANDLE_BASE);
}

int nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    if (!initialized) return 1;
    return copy(DRIVER, version, length);
}

int nvmlSystemGetCudaDriverVersion_v2(int *version) {
    if (!initialized) return 1;
    *version = CUDA;
    return 0;
}

int nvmlDeviceGetCount_v2(unsigned int *count) {
    if (!initialized) return 1;
    *count = COUNT;
    return 0;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *handle) {
    if (!initialized) return 1;
    if (index >= COUNT) return 2;
    *handle = (nvmlDevice_t)(HANDLE_BASE + index);
    return 0;
}

int nvmlDeviceGetName(nvmlDevice_t handle, char *name, unsigned int length) {
    if (device(handle) < 0) return 2;
    return copy(NAME, name, length);
}

int nvmlDeviceGetUUID(nvmlDevice_t handle, char *uuid, unsigned int length) {
    char value[96];
    if (device(handle) < 0) return 2;
    strcpy(value, UUID_PREFIX);
    value[strlen(value) - 1] = (char)('0' + device(handle));
    return copy(value, uuid, length);
}

int nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t handle, nvmlMemory_v2_t *memory) {
    if (device(handle) < 0) return 2;
    if (memory->version != (unsigned int)(sizeof(nvmlMemory_v2_t) | (2u << 24))) return 25;
    memory->total = TOTAL * MIB;
    memory->reserved = RESERVED * MIB;
    memory->used = USED * MIB;
    memory->free = FREE * MIB;
    return 0;
}

int nvmlDeviceGetMemoryInfo(nvmlDevice_t handle, nvmlMemory_t *memory) {
    if (device(handle) < 0) return 2;
    memory->total = TOTAL * MIB;
    memory->free = FREE * MIB;
    memory->used = (TOTAL - FREE) * MIB;
    return 0;
}

int nvmlDeviceGetMigMode(nvmlDevice_t handle, unsigned int *current, unsigned int *pending) {
    if (device(handle) < 0) return 2;
    if (MIG < 0) return 3;
    *current = MIG;
    *pending = MIG;
    return 0;
}
"""

LIBCUDA_DOUBLE_C = r"""
/* TEST DOUBLE of libcuda.so.1: cuDriverGetVersion only. */
int cuDriverGetVersion(int *version) { if (!version) return 1; *version = CUDA; return 0; }
"""

# recorded machines: -D values for the double
MASKED_UUID = '"GPU-00000000-0000-0000-0000-000000000000"'
H100 = {  # query-gpu-csv_1x-h100-80gb-hbm3_driver-590.48.01.csv: 81559 total, 479 reserved,
    # 0 used, 81081 free
    "INIT_RC": "0", "DRIVER": '"590.48.01"', "CUDA": "13010", "COUNT": "1",
    "NAME": '"NVIDIA H100 80GB HBM3"', "UUID_PREFIX": MASKED_UUID,
    "TOTAL": "81559ULL", "RESERVED": "479ULL", "USED": "0ULL", "FREE": "81081ULL", "MIG": "0",
}  # fmt: skip
RTX4090_X2 = {  # table_2x-rtx4090_driver-550.90.07: 2 GPUs, 1 MiB / 24564 MiB (reserved not shown)
    "INIT_RC": "0", "DRIVER": '"550.90.07"', "CUDA": "12040", "COUNT": "2",
    "NAME": '"NVIDIA GeForce RTX 4090"', "UUID_PREFIX": MASKED_UUID,
    "TOTAL": "24564ULL", "RESERVED": "0ULL", "USED": "1ULL", "FREE": "24563ULL", "MIG": "-1",
}  # fmt: skip


def compile_double(directory: Path, file_name: str, source: str, defines: dict[str, str]) -> Path:
    """Build a shared library from ``source`` into ``directory/file_name``."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.fail("gcc is needed to build the NVML test double: apt-get install build-essential")
    directory.mkdir(parents=True, exist_ok=True)
    c_file = directory / (file_name + ".c")
    c_file.write_text(source)
    target = directory / file_name
    flags = [f"-D{key}={value}" for key, value in defines.items()]
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O1", "-Wall", "-Werror", *flags, "-o", str(target),
         str(c_file)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return target


def build_driver_doubles(directory: Path, defines: dict[str, str]) -> Path:
    """libnvidia-ml.so.1 + libcuda.so.1 doubles in ``directory`` (for LD_LIBRARY_PATH)."""
    compile_double(directory, "libnvidia-ml.so.1", NVML_DOUBLE_C, defines)
    compile_double(directory, "libcuda.so.1", LIBCUDA_DOUBLE_C, {"CUDA": defines["CUDA"]})
    return directory


def probe(tmp_path: Path, defines: dict[str, str]) -> object:
    library = compile_double(tmp_path, "libnvidia-ml.so.1", NVML_DOUBLE_C, defines)
    return gpu_nvml.probe_nvml(gpu_nvml.load_native_library(str(library)))


def test_h100_through_the_c_abi(tmp_path: Path) -> None:
    result = probe(tmp_path, H100)
    assert result.failure is None  # type: ignore[attr-defined]
    assert result.source == "nvml"  # type: ignore[attr-defined]
    assert result.versions.driver_version == "590.48.01"  # type: ignore[attr-defined]
    assert result.versions.cuda_version == "13.1"  # type: ignore[attr-defined]
    (device,) = result.gpus  # type: ignore[attr-defined]
    assert device.as_dict() == {
        "index": 0,
        "name": "NVIDIA H100 80GB HBM3",
        "uuid": "GPU-00000000-0000-0000-0000-000000000000",
        "memory_total_mib": 81559,
        "memory_used_mib": 0,
        "memory_free_mib": 81081,
        "mig_mode": "Disabled",
    }


def test_two_gpus_without_mig_through_the_c_abi(tmp_path: Path) -> None:
    result = probe(tmp_path, RTX4090_X2)
    rows = [(g.index, g.name, g.uuid[-1], g.memory_total_mib, g.memory_used_mib, g.mig_mode)
            for g in result.gpus]  # type: ignore[attr-defined]  # fmt: skip
    assert rows == [
        (0, "NVIDIA GeForce RTX 4090", "0", 24564, 1, None),
        (1, "NVIDIA GeForce RTX 4090", "1", 24564, 1, None),
    ]


@pytest.mark.parametrize(("rc", "kind"), [(18, "driver-mismatch"), (9, "no-driver")])
def test_init_failure_through_the_c_abi(tmp_path: Path, rc: int, kind: str) -> None:
    result = probe(tmp_path, {**H100, "INIT_RC": str(rc)})
    assert result.gpus == []  # type: ignore[attr-defined]
    assert result.failure.kind == kind  # type: ignore[attr-defined]
    expected = {18: "Driver/library version mismatch", 9: "Driver Not Loaded"}[rc]
    assert result.failure.detail == f"NVML error {rc}: {expected}"  # type: ignore[attr-defined]


def test_libcuda_version_through_the_c_abi(tmp_path: Path) -> None:
    library = compile_double(tmp_path, "libcuda.so.1", LIBCUDA_DOUBLE_C, {"CUDA": "12050"})
    assert gpu_nvml.libcuda_version(gpu_nvml.load_native_library(str(library))) == "12.5"
