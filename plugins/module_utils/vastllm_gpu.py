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
"""

from __future__ import annotations

import csv
import ctypes
import io
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

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

QUERY_FIELDS = (
    "index",
    "name",
    "uuid",
    "memory.total",
    "memory.used",
    "memory.free",
    "mig.mode.current",
    "driver_version",
)
# Driver >= 610 deprecates ``driver_version`` in favour of ``kmd_version``; used when a future
# driver refuses the old field.
QUERY_FIELDS_KMD = (*QUERY_FIELDS[:-1], "kmd_version")

NVML_LIBRARY = "libnvidia-ml.so.1"
CUDA_LIBRARY = "libcuda.so.1"
# WSL2 ships nvidia-smi outside PATH.
NVIDIA_SMI_EXTRA_DIRS = ("/usr/lib/wsl/lib",)
NVIDIA_SMI_TIMEOUT = 60.0

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
# nvidia-smi output parsers
# --------------------------------------------------------------------------------------------


def _header_name(header: str) -> str:
    """``"memory.total [MiB]"`` -> ``"memory.total"``."""
    return re.sub(r"\s*\[[^\]]*\]\s*$", "", header.strip())


def parse_query_csv(text: str, fields: Sequence[str] | None = None) -> list[dict[str, str | None]]:
    """Parse ``--query-gpu`` CSV output into one dict per GPU, keyed by field name.

    With a header line (``--format=csv``) the keys come from it, units removed; for
    ``noheader`` output pass the queried ``fields``. Non-values become None.
    """
    rows = [row for row in csv.reader(io.StringIO(text), skipinitialspace=True) if row]
    if not rows:
        return []
    if fields is None:
        names = [_header_name(h) for h in rows[0]]
        rows = rows[1:]
    else:
        names = list(fields)
    result = []
    for row in rows:
        entry: dict[str, str | None] = {}
        for position, name in enumerate(names):
            entry[name] = clean_value(row[position]) if position < len(row) else None
        result.append(entry)
    return result


def gpus_from_query_rows(rows: Iterable[dict[str, str | None]]) -> list[Gpu]:
    gpus = []
    for position, row in enumerate(rows):
        index_text = row.get("index")
        gpus.append(
            Gpu(
                index=int(index_text) if index_text and index_text.isdigit() else position,
                name=row.get("name") or row.get("gpu_name"),
                uuid=row.get("uuid") or row.get("gpu_uuid"),
                memory_total_mib=parse_mib(row.get("memory.total")),
                memory_used_mib=parse_mib(row.get("memory.used")),
                memory_free_mib=parse_mib(row.get("memory.free")),
                mig_mode=row.get("mig.mode.current"),
            )
        )
    return gpus


def _xml_text(element: ET.Element | None, path: str) -> str | None:
    if element is None:
        return None
    found = element.find(path)
    if found is None or found.text is None:
        return None
    return clean_value(found.text)


def parse_xml(text: str) -> SmiReport:
    """Parse ``nvidia-smi -q -x`` (DTD v11/v12/v13 or none). Raises ValueError if not that XML."""
    try:
        root = ET.fromstring(text.encode("utf-8"))  # noqa: S314 - local nvidia-smi output
    except ET.ParseError as exc:
        raise ValueError(f"not XML: {exc}") from exc
    if root.tag != "nvidia_smi_log":
        raise ValueError(f"unexpected XML root <{root.tag}>")
    versions = Versions(
        driver_version=first_version_token(_xml_text(root, "driver_version")),
        cuda_version=first_version_token(_xml_text(root, "cuda_version")),
    )
    attached_text = _xml_text(root, "attached_gpus")
    gpus = []
    for position, gpu in enumerate(root.findall("gpu")):
        # fb_memory_usage as a direct child: MIG instances carry their own inside <mig_devices>.
        gpus.append(
            Gpu(
                index=position,
                name=_xml_text(gpu, "product_name"),
                uuid=_xml_text(gpu, "uuid"),
                memory_total_mib=parse_mib(_xml_text(gpu, "fb_memory_usage/total")),
                memory_used_mib=parse_mib(_xml_text(gpu, "fb_memory_usage/used")),
                memory_free_mib=parse_mib(_xml_text(gpu, "fb_memory_usage/free")),
                mig_mode=_xml_text(gpu, "mig_mode/current_mig"),
            )
        )
    return SmiReport(
        versions=versions,
        gpus=gpus,
        attached_gpus=int(attached_text) if attached_text and attached_text.isdigit() else None,
    )


def _key_values(text: str, indented: bool) -> dict[str, str]:
    """``Key : value`` lines (top level only unless ``indented``), keys lower-cased."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if not indented and line[:1].isspace():
            continue
        match = re.match(r"^\s*([A-Za-z][A-Za-z0-9 .-]*?)\s*:\s*(.*?)\s*$", line)
        if match:
            values.setdefault(match.group(1).lower(), match.group(2))
    return values


def _pick_versions(values: dict[str, str]) -> Versions:
    """Prefer the 610+ keys (KMD / CUDA UMD), else the first token of the old ones."""
    return Versions(
        driver_version=first_version_token(values.get("kmd version"))
        or first_version_token(values.get("driver version")),
        cuda_version=first_version_token(values.get("cuda umd version"))
        or first_version_token(values.get("cuda version")),
        nvidia_smi_version=first_version_token(values.get("nvidia-smi version")),
    )


def parse_q_text(text: str) -> Versions:
    """Driver and CUDA version from ``nvidia-smi -q`` text (its top-level lines)."""
    return _pick_versions(_key_values(text, indented=False))


def parse_version_output(text: str) -> Versions:
    """``nvidia-smi --version``; 610 prints ``Deprecated, see ...`` on the old lines."""
    return _pick_versions(_key_values(text, indented=True))


_TABLE_HEADER = re.compile(
    r"NVIDIA-SMI\s+(?P<smi>\S+)\s+(?:Driver|KMD)\s+Version:\s*(?P<driver>\S+)"
    r"\s+CUDA\s+(?:UMD\s+)?Version:\s*(?P<cuda>\S+)"
)
_TABLE_GPU_CELL = re.compile(
    r"^\s*(?P<index>\d+)\s+(?P<name>.*?)\s+(?:On|Off|WDDM|TCC|MCDM|N/A)\s*$"
)
_TABLE_MEMORY_CELL = re.compile(r"(?P<used>\d+)\s*MiB\s*/\s*(?P<total>\d+)\s*MiB")


def parse_table(text: str) -> SmiReport:
    """Parse the default ``nvidia-smi`` table: header versions and the GPU section.

    Handles the <= 460 79-column layout, 550/555 (``|---`` under the header), 580+ (``+---``),
    Windows (``Driver-Model``/``WDDM``) and 610's ``KMD Version``/``CUDA UMD Version`` header.
    The table shows no reserved memory, so ``free`` here is total minus used. Names may be
    truncated with ``...``. When the header has a third line ``MIG M.``, the last cell of each
    GPU's third line is its MIG mode (``Enabled``/``Disabled``; ``N/A`` is None).
    """
    versions = Versions()
    header = _TABLE_HEADER.search(text)
    if header:
        versions = Versions(
            driver_version=first_version_token(header.group("driver")),
            cuda_version=first_version_token(header.group("cuda")),
            nvidia_smi_version=first_version_token(header.group("smi")),
        )
    gpus: list[Gpu] = []
    block: list[str] = []  # header lines since the last rule line
    in_section = False
    has_mig_line = False
    current: Gpu | None = None
    row = 0  # line of the current GPU's block: 1 name, 2 memory, 3 MIG mode
    for line in text.splitlines():
        stripped = line.strip()
        if not in_section:
            if stripped.startswith("|="):
                joined = " ".join(block)
                in_section = "Name" in joined and "Memory-Usage" in joined
                has_mig_line = "MIG M." in joined
            elif stripped.startswith("+") or stripped.startswith("|-"):
                block = []
            else:
                block.append(stripped)
            continue
        # The GPU section ends at the first blank line (the MIG and process tables follow).
        if not stripped or stripped[0] not in "|+":
            break
        cells = stripped.strip("|").split("|")
        if stripped.startswith("+") or len(cells) != 3:
            current = None
            continue
        match = _TABLE_GPU_CELL.match(cells[0])
        if match and current is None:
            current = Gpu(index=int(match.group("index")), name=match.group("name").strip())
            gpus.append(current)
            row = 1
            continue
        if current is None:
            continue
        row += 1
        if row == 2:
            _read_table_memory(current, cells[1])
        if row == 3 and has_mig_line:
            current.mig_mode = clean_value(cells[2])
        if row >= 3 or not has_mig_line:
            current = None
    return SmiReport(versions=versions, gpus=gpus)


def _read_table_memory(gpu: Gpu, cell: str) -> None:
    """``59MiB /  81559MiB``; "Not Supported" / "N/A" leave the memory None."""
    memory = _TABLE_MEMORY_CELL.search(cell)
    if memory:
        used, total = int(memory.group("used")), int(memory.group("total"))
        gpu.memory_used_mib = used
        gpu.memory_total_mib = total
        gpu.memory_free_mib = max(total - used, 0)


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
    if "No devices were found" in text:
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
    NVML_ERROR_NOT_FOUND: "No devices were found",
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
        failure = classify_failure(_NVML_MESSAGES[NVML_ERROR_NOT_FOUND])
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


# --------------------------------------------------------------------------------------------
# nvidia-smi
# --------------------------------------------------------------------------------------------


class Runner(Protocol):
    """Runs a command: argv -> (exit code, stdout, stderr)."""

    def __call__(self, argv: list[str]) -> tuple[int, str, str]: ...


def subprocess_runner(timeout: float = NVIDIA_SMI_TIMEOUT) -> Runner:
    """A Runner over subprocess with a timeout (exit code 124 on timeout, like timeout(1))."""

    def run(argv: list[str]) -> tuple[int, str, str]:
        env = dict(os.environ, LC_ALL="C")
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, env=env, check=False
            )
        except subprocess.TimeoutExpired:
            return 124, "", f"{argv[0]} timed out after {timeout:.0f} s"
        except OSError as exc:
            return 127, "", str(exc)
        return done.returncode, done.stdout, done.stderr

    return run


def find_nvidia_smi(path: str | None = None) -> str | None:
    """nvidia-smi on PATH (or the given search path), else in the WSL2 directory."""
    found = shutil.which("nvidia-smi", path=path)
    if found:
        return found
    for directory in NVIDIA_SMI_EXTRA_DIRS:
        candidate = os.path.join(directory, "nvidia-smi")
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _fill_versions(target: Versions, source: Versions) -> None:
    if target.driver_version is None:
        target.driver_version = source.driver_version
    if target.nvidia_smi_version is None:
        target.nvidia_smi_version = source.nvidia_smi_version


def probe_nvidia_smi(runner: Runner, nvidia_smi: str, cuda_version: str | None = None) -> GpuProbe:
    """Ask nvidia-smi (see the module docstring for the order). ``cuda_version`` from libcuda
    wins over nvidia-smi's when given."""
    probe = GpuProbe(SOURCE_NONE)
    if cuda_version:
        probe.versions.cuda_version = cuda_version
        probe.cuda_version_source = "libcuda"
    errors: list[str] = []

    def run(*args: str) -> str | None:
        code, out, err = runner([nvidia_smi, *args])
        if code == 0:
            return out
        combined = "\n".join(part for part in (out.strip(), err.strip()) if part)
        if probe.failure is None:
            probe.failure = classify_failure(combined)
            if probe.failure is None and code == 124 and "timed out" in combined:
                probe.failure = Failure(
                    KIND_TIMEOUT,
                    combined,
                    "nvidia-smi did not answer in time: a GPU may have fallen off the bus "
                    "(check 'dmesg' for Xid errors). Reboot the host; on a rented instance, rent "
                    "another one.",
                )
        errors.append(f"nvidia-smi {' '.join(args)} exited {code}: {combined or '(no output)'}")
        return None

    gpus: list[Gpu] | None = None
    for fields in (QUERY_FIELDS, QUERY_FIELDS_KMD):
        out = run(f"--query-gpu={','.join(fields)}", "--format=csv")
        if probe.failure is not None:
            return _failed(probe)
        if out is not None:
            rows = parse_query_csv(out)
            gpus = gpus_from_query_rows(rows)
            probe.source = SOURCE_CSV
            if rows:
                probe.versions.driver_version = first_version_token(
                    rows[0].get("driver_version") or rows[0].get("kmd_version")
                )
            break

    if probe.versions.cuda_version is None or gpus is None:
        out = run("-q", "-x")
        if out is not None:
            try:
                report: SmiReport | None = parse_xml(out)
            except ValueError as exc:
                errors.append(f"nvidia-smi -q -x: {exc}")
                report = None
            if report is not None:
                _fill_versions(probe.versions, report.versions)
                if probe.versions.cuda_version is None and report.versions.cuda_version:
                    probe.versions.cuda_version = report.versions.cuda_version
                    probe.cuda_version_source = SOURCE_XML
                if gpus is None:
                    gpus, probe.source = report.gpus, SOURCE_XML
                    probe.warnings.extend(_xml_count_warnings(report))

    for args, parser, label in (
        (("-q",), parse_q_text, "nvidia-smi-q"),
        (("--version",), parse_version_output, "nvidia-smi-version"),
    ):
        if probe.versions.cuda_version is not None and probe.versions.driver_version is not None:
            break
        out = run(*args)
        if out is not None:
            versions = parser(out)
            _fill_versions(probe.versions, versions)
            if probe.versions.cuda_version is None and versions.cuda_version:
                probe.versions.cuda_version = versions.cuda_version
                probe.cuda_version_source = label

    if gpus is None or probe.versions.cuda_version is None or probe.versions.driver_version is None:
        out = run()
        if out is not None:
            table = parse_table(out)
            _fill_versions(probe.versions, table.versions)
            if probe.versions.cuda_version is None and table.versions.cuda_version:
                probe.versions.cuda_version = table.versions.cuda_version
                probe.cuda_version_source = SOURCE_TABLE
            if gpus is None and table.gpus:
                gpus, probe.source = table.gpus, SOURCE_TABLE

    if probe.failure is not None and not gpus:
        return _failed(probe)
    if gpus is None:
        probe.failure = Failure(
            KIND_SMI_ERROR,
            "; ".join(errors),
            "nvidia-smi is installed but gave no GPU list ("
            + (errors[0] if errors else "no output")
            + "). Check the NVIDIA driver installation (nvidia-smi, dmesg).",
        )
        return _failed(probe)
    if not gpus:
        probe.failure = classify_failure(_NVML_MESSAGES[NVML_ERROR_NOT_FOUND])
        return _failed(probe)
    probe.failure = None
    probe.gpus = gpus
    return probe


def _xml_count_warnings(report: SmiReport) -> list[str]:
    """A warning when ``<attached_gpus>`` counts more GPUs than the XML describes."""
    described = len(report.gpus)
    if report.attached_gpus is None or report.attached_gpus <= described:
        return []
    return [
        f"nvidia-smi -q -x says {report.attached_gpus} GPUs are attached but describes "
        f"{described}; only the described ones are reported"
    ]


def _failed(probe: GpuProbe) -> GpuProbe:
    probe.source = SOURCE_NONE
    probe.gpus = []
    return probe


# --------------------------------------------------------------------------------------------
# host: disk, RAM, CPUs
# --------------------------------------------------------------------------------------------


def nearest_existing(path: str) -> str:
    """``path`` or its nearest existing parent directory."""
    current = os.path.abspath(path)
    while not os.path.exists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def _read(root: str, path: str) -> str | None:
    try:
        with open(os.path.join(root, path.lstrip("/")), encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo -> {key: bytes}."""
    values = {}
    for line in text.splitlines():
        match = re.match(r"^(\w+):\s+(\d+)(?:\s+kB)?", line)
        if match:
            values[match.group(1)] = int(match.group(2)) * 1024
    return values


def memory_facts(root: str = "/") -> dict[str, Any]:
    """Total/available RAM in bytes, lowered to the cgroup v2/v1 limit of a container."""
    info = parse_meminfo(_read(root, "/proc/meminfo") or "")
    total = info.get("MemTotal")
    available = info.get("MemAvailable", info.get("MemFree"))
    limit, usage = _cgroup_memory(root)
    limited = limit is not None and total is not None and limit < total
    if limited and limit is not None:
        total = limit
        if usage is not None:
            headroom = max(limit - usage, 0)
            available = headroom if available is None else min(available, headroom)
    return {
        "ram_total_bytes": total,
        "ram_available_bytes": available,
        "ram_limited_by_cgroup": limited,
    }


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    value = text.strip()
    return int(value) if value.isdigit() else None


def _cgroup_memory(root: str) -> tuple[int | None, int | None]:
    limit = _int_or_none(_read(root, "/sys/fs/cgroup/memory.max"))
    if limit is not None:
        return limit, _int_or_none(_read(root, "/sys/fs/cgroup/memory.current"))
    limit = _int_or_none(_read(root, "/sys/fs/cgroup/memory/memory.limit_in_bytes"))
    # cgroup v1 reports "no limit" as a huge number; the caller compares with MemTotal.
    return limit, _int_or_none(_read(root, "/sys/fs/cgroup/memory/memory.usage_in_bytes"))


def cpu_count(root: str = "/", affinity: int | None = None) -> int:
    """CPUs this process may use: affinity mask, lowered to the cgroup v2 ``cpu.max`` quota."""
    if affinity is None:
        try:
            affinity = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            affinity = os.cpu_count() or 1
    quota = (_read(root, "/sys/fs/cgroup/cpu.max") or "").split()
    if len(quota) == 2 and quota[0].isdigit() and quota[1].isdigit() and int(quota[1]) > 0:
        limit = -(-int(quota[0]) // int(quota[1]))
        return max(1, min(affinity, limit))
    return affinity


def disk_facts(model_dir: str) -> dict[str, Any]:
    path = nearest_existing(model_dir)
    stats = os.statvfs(path)
    return {
        "model_dir": model_dir,
        "disk_path": path,
        "disk_free_bytes": stats.f_bavail * stats.f_frsize,
        "disk_total_bytes": stats.f_blocks * stats.f_frsize,
    }


# --------------------------------------------------------------------------------------------
# all together
# --------------------------------------------------------------------------------------------


def _try_load(load_library: LibraryLoader, name: str) -> Any:
    try:
        return load_library(name)
    except OSError:
        return None


def probe_gpus(
    runner: Runner,
    load_library: LibraryLoader,
    nvidia_smi: str | None,
) -> GpuProbe:
    """NVML first, then nvidia-smi; the best-informed failure when neither lists a GPU."""
    nvml_lib = _try_load(load_library, NVML_LIBRARY)
    nvml_probe = probe_nvml(nvml_lib) if nvml_lib is not None else None
    if nvml_probe is not None and nvml_probe.failure is None:
        if nvml_probe.versions.cuda_version is None:
            nvml_probe.versions.cuda_version = _libcuda_version(load_library)
            if nvml_probe.versions.cuda_version:
                nvml_probe.cuda_version_source = "libcuda"
        return nvml_probe
    if nvidia_smi is None:
        return nvml_probe if nvml_probe is not None else GpuProbe(SOURCE_NONE)
    smi_probe = probe_nvidia_smi(runner, nvidia_smi, _libcuda_version(load_library))
    if smi_probe.failure is None or nvml_probe is None:
        return smi_probe
    # Both failed: nvidia-smi's message is the one people know, unless it is unrecognised.
    if smi_probe.failure.kind in (KIND_SMI_ERROR, KIND_TIMEOUT):
        return nvml_probe
    return smi_probe


def _libcuda_version(load_library: LibraryLoader) -> str | None:
    cuda_lib = _try_load(load_library, CUDA_LIBRARY)
    return libcuda_version(cuda_lib) if cuda_lib is not None else None


def _gib(number_of_bytes: float) -> str:
    return f"{number_of_bytes / 1024**3:.1f} GiB"


def summarize(facts: dict[str, Any]) -> str:
    """One readable line, e.g. ``GPU mode: 1x NVIDIA RTX A5000 (24564 MiB; 23.9 GiB free), ...``."""
    host = []
    if facts.get("cpu_count"):
        host.append(f"{facts['cpu_count']} CPUs")
    if facts.get("ram_available_bytes") is not None:
        host.append(f"{_gib(facts['ram_available_bytes'])} RAM available")
    disk = f"disk free on {facts['disk_path']}"
    if facts["disk_path"] != facts["model_dir"]:
        disk += f" (nearest existing parent of {facts['model_dir']})"
    host.append(f"{disk}: {_gib(facts['disk_free_bytes'])}")
    if facts["mode"] == "gpu":
        groups: dict[tuple[str, int | None, bool], int] = {}
        for gpu in facts["gpus"]:
            key = (
                gpu["name"] or "unnamed GPU",
                gpu["memory_total_mib"],
                gpu["mig_mode"] == "Enabled",
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
            f"{facts['vram_free_mib'] / 1024:.1f} GiB VRAM free"
            if facts["vram_free_mib"] is not None
            else "free VRAM not reported"
        )
        versions = (
            f"driver {facts['driver_version'] or 'unknown'}, "
            f"CUDA {facts['cuda_version'] or 'unknown'}"
        )
        return f"GPU mode: {' + '.join(parts)}; {vram}; {versions}; {'; '.join(host)}"
    reason = facts["problem"] or "no NVIDIA GPU or driver found"
    return f"CPU mode: {reason} -- {'; '.join(host)}"


def _sum_or_none(values: Iterable[int | None]) -> int | None:
    total = 0
    for value in values:
        if value is None:
            return None
        total += value
    return total


def collect(
    model_dir: str = "/workspace",
    runner: Runner | None = None,
    load_library: LibraryLoader = load_native_library,
    find_smi: Callable[[], str | None] = find_nvidia_smi,
    host_root: str = "/",
) -> dict[str, Any]:
    """All facts as one dict (the value of ``ansible_facts.vastllm_gpu``)."""
    probe = probe_gpus(runner or subprocess_runner(), load_library, find_smi())
    gpus = [gpu.as_dict() for gpu in probe.gpus]
    facts: dict[str, Any] = {
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
        "cpu_count": cpu_count(host_root),
    }
    facts.update(memory_facts(host_root))
    facts.update(disk_facts(model_dir))
    facts["summary"] = summarize(facts)
    return facts
