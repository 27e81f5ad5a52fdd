"""NVML (``libnvidia-ml.so.1``) and libcuda (``cuDriverGetVersion``) through ctypes.

Runs on the target host (Debian/Ubuntu, Python >= 3.8): pure standard library, 3.8 syntax. The
library loader is injectable (``load_library``) so a test may pass a fake library.
"""

from __future__ import annotations

import ctypes
from typing import Any, Protocol

from ansible.module_utils.gpu_model import (
    KIND_NVML_ERROR,
    NO_DEVICES_MESSAGE,
    SOURCE_NONE,
    SOURCE_NVML,
    Failure,
    Gpu,
    GpuProbe,
    classify_failure,
    cuda_version_from_int,
    first_version_token,
)

NVML_LIBRARY = "libnvidia-ml.so.1"
CUDA_LIBRARY = "libcuda.so.1"


# NVML return codes (nvml.h nvmlReturn_t) that have a known meaning here.
NVML_SUCCESS = 0
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_UNKNOWN = 999

# What nvidia-smi prints for the same NVML errors, to share one classification.
_NVML_MESSAGES = {
    NVML_ERROR_LIB_RM_VERSION_MISMATCH: (
        "Failed to initialize NVML: Driver/library version mismatch"
    ),
    NVML_ERROR_DRIVER_NOT_LOADED: (
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
    ),
    NVML_ERROR_NOT_FOUND: NO_DEVICES_MESSAGE,
    NVML_ERROR_UNKNOWN: "Failed to initialize NVML: Unknown Error",
    NVML_ERROR_NO_PERMISSION: "Failed to initialize NVML: Insufficient Permissions",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
}


def classify_nvml_error(code: int, message: str) -> Failure:
    known = _NVML_MESSAGES.get(code)
    failure = classify_failure(known) if known else None
    if failure is not None:
        failure.detail = f"NVML error {code}: {message}"
        return failure
    return Failure(
        KIND_NVML_ERROR,
        f"NVML error {code}: {message}",
        f"NVML failed ({message}, code {code}). Check the NVIDIA driver installation "
        "(nvidia-smi, dmesg).",
    )


# --------------------------------------------------------------------------------------------
# NVML / libcuda through ctypes
# --------------------------------------------------------------------------------------------


class NvmlError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"NVML error {code}: {message}")
        self.code = code
        self.message = message


class NvmlMemory(ctypes.Structure):
    """nvmlMemory_t (v1): total, free, used in bytes."""

    _fields_ = [
        ("total", ctypes.c_ulonglong),
        ("free", ctypes.c_ulonglong),
        ("used", ctypes.c_ulonglong),
    ]


class NvmlMemoryV2(ctypes.Structure):
    """nvmlMemory_v2_t: ``used`` excludes the driver-reserved memory, as nvidia-smi shows it."""

    _fields_ = [
        ("version", ctypes.c_uint),
        ("total", ctypes.c_ulonglong),
        ("reserved", ctypes.c_ulonglong),
        ("free", ctypes.c_ulonglong),
        ("used", ctypes.c_ulonglong),
    ]


NVML_MEMORY_V2_VERSION = ctypes.sizeof(NvmlMemoryV2) | (2 << 24)
_BUFFER_SIZE = 96  # NVML_DEVICE_NAME_V2_BUFFER_SIZE / NVML_DEVICE_UUID_V2_BUFFER_SIZE
_MIB = 1024 * 1024


class LibraryLoader(Protocol):
    def __call__(self, name: str) -> Any: ...


def load_native_library(name: str) -> Any:
    """ctypes.CDLL; raises OSError when the library is not installed."""
    return ctypes.CDLL(name)


class Nvml:
    """Thin NVML wrapper over a ``ctypes.CDLL``-like object (a test may pass a fake one).

    Output arguments are passed as ``ctypes.pointer(...)`` objects and strings as
    ``ctypes.create_string_buffer`` buffers, the C ABI of nvml.h.
    """

    def __init__(self, lib: Any) -> None:
        self._lib = lib

    def _function(self, *names: str) -> Any:
        for name in names:
            function = getattr(self._lib, name, None)
            if function is not None:
                return function
        raise NvmlError(NVML_ERROR_FUNCTION_NOT_FOUND, f"{names[0]} not found")

    def _error_string(self, code: int) -> str:
        function = getattr(self._lib, "nvmlErrorString", None)
        if function is None:
            return f"error {code}"
        function.restype = ctypes.c_char_p
        text = function(code)
        if isinstance(text, bytes):
            return text.decode("utf-8", "replace")
        return str(text) if text else f"error {code}"

    def _check(self, code: int) -> None:
        if code != NVML_SUCCESS:
            raise NvmlError(code, self._error_string(code))

    def _string(self, function: Any, *args: Any) -> str:
        buffer = ctypes.create_string_buffer(_BUFFER_SIZE)
        self._check(function(*args, buffer, _BUFFER_SIZE))
        return buffer.value.decode("utf-8", "replace")

    def init(self) -> None:
        self._check(self._function("nvmlInit_v2", "nvmlInit")())

    def shutdown(self) -> None:
        function = getattr(self._lib, "nvmlShutdown", None)
        if function is not None:
            function()

    def driver_version(self) -> str:
        return self._string(self._function("nvmlSystemGetDriverVersion"))

    def cuda_driver_version(self) -> int:
        value = ctypes.c_int()
        function = self._function(
            "nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"
        )
        self._check(function(ctypes.pointer(value)))
        return value.value

    def device_count(self) -> int:
        value = ctypes.c_uint()
        self._check(
            self._function("nvmlDeviceGetCount_v2", "nvmlDeviceGetCount")(ctypes.pointer(value))
        )
        return value.value

    def device(self, index: int) -> Gpu:
        handle = ctypes.c_void_p()
        function = self._function("nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex")
        self._check(function(index, ctypes.pointer(handle)))
        name = self._string(self._function("nvmlDeviceGetName"), handle)
        try:
            uuid: str | None = self._string(self._function("nvmlDeviceGetUUID"), handle)
        except NvmlError:
            uuid = None
        total, used, free = self._memory(handle)
        return Gpu(
            index=index,
            name=name,
            uuid=uuid or None,
            memory_total_mib=total,
            memory_used_mib=used,
            memory_free_mib=free,
            mig_mode=self._mig_mode(handle),
        )

    def _mig_mode(self, handle: Any) -> str | None:
        """``Enabled``/``Disabled``; None where MIG does not exist (NOT_SUPPORTED)."""
        function = getattr(self._lib, "nvmlDeviceGetMigMode", None)
        if function is None:
            return None
        current, pending = ctypes.c_uint(), ctypes.c_uint()
        if function(handle, ctypes.pointer(current), ctypes.pointer(pending)) != NVML_SUCCESS:
            return None
        return "Enabled" if current.value == 1 else "Disabled"

    def _memory(self, handle: Any) -> tuple[int | None, int | None, int | None]:
        """(total, used, free) in MiB; all None when the device has no memory figures (GB10)."""
        function_v2 = getattr(self._lib, "nvmlDeviceGetMemoryInfo_v2", None)
        if function_v2 is not None:
            memory_v2 = NvmlMemoryV2()
            memory_v2.version = NVML_MEMORY_V2_VERSION
            code = function_v2(handle, ctypes.pointer(memory_v2))
            if code == NVML_SUCCESS:
                return _mib(memory_v2.total), _mib(memory_v2.used), _mib(memory_v2.free)
            if code == NVML_ERROR_NOT_SUPPORTED:
                return None, None, None
        memory = NvmlMemory()
        code = self._function("nvmlDeviceGetMemoryInfo")(handle, ctypes.pointer(memory))
        if code == NVML_ERROR_NOT_SUPPORTED:
            return None, None, None
        self._check(code)
        return _mib(memory.total), _mib(memory.used), _mib(memory.free)


def _mib(value: int) -> int:
    return int(value // _MIB)


def probe_nvml(lib: Any) -> GpuProbe:
    """Ask NVML; a probe with ``failure`` set when NVML loads but does not work."""
    nvml = Nvml(lib)
    try:
        nvml.init()
    except NvmlError as exc:
        return GpuProbe(SOURCE_NONE, failure=classify_nvml_error(exc.code, exc.message))
    probe = GpuProbe(SOURCE_NVML)
    try:
        probe.versions.driver_version = first_version_token(nvml.driver_version())
        try:
            probe.versions.cuda_version = cuda_version_from_int(nvml.cuda_driver_version())
            probe.cuda_version_source = SOURCE_NVML
        except NvmlError as exc:
            probe.warnings.append(f"NVML did not report the CUDA version: {exc}")
        count = nvml.device_count()
        for index in range(count):
            try:
                probe.gpus.append(nvml.device(index))
            except NvmlError as exc:
                probe.warnings.append(f"GPU {index} is not usable: {exc}")
    except NvmlError as exc:
        return GpuProbe(SOURCE_NONE, failure=classify_nvml_error(exc.code, exc.message))
    finally:
        nvml.shutdown()
    if not probe.gpus:
        failure = classify_failure(NO_DEVICES_MESSAGE)
        return GpuProbe(
            SOURCE_NONE, versions=probe.versions, failure=failure, warnings=probe.warnings
        )
    return probe


def libcuda_version(lib: Any) -> str | None:
    """CUDA version the installed libcuda supports (``cuDriverGetVersion``), or None."""
    function = getattr(lib, "cuDriverGetVersion", None)
    if function is None:
        return None
    value = ctypes.c_int()
    if function(ctypes.pointer(value)) != 0 or value.value <= 0:
        return None
    return cuda_version_from_int(value.value)


def try_load(load_library: LibraryLoader, name: str) -> Any:
    """The library, or None when it is not installed."""
    try:
        return load_library(name)
    except OSError:
        return None


def load_libcuda_version(load_library: LibraryLoader) -> str | None:
    """CUDA version of the installed libcuda, or None when there is none."""
    cuda_lib = try_load(load_library, CUDA_LIBRARY)
    return libcuda_version(cuda_lib) if cuda_lib is not None else None
