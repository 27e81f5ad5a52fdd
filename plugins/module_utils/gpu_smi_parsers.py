"""Parsers of nvidia-smi's outputs: ``--query-gpu`` CSV, ``-q -x`` XML, ``-q`` text,
``--version`` and the default table.

Runs on the target host (Debian/Ubuntu, Python >= 3.8): pure standard library, 3.8 syntax.
"""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from ansible.module_utils.gpu_model import (
    Gpu,
    SmiReport,
    Versions,
    clean_value,
    first_version_token,
    parse_mib,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence


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
