"""Running nvidia-smi and reading its GPU list, driver and CUDA version (see gpu_facts_collect
for where this stands among the sources).

Runs on the target host (Debian/Ubuntu, Python >= 3.8): pure standard library, 3.8 syntax. The
command runner is injectable (``Runner``) so the logic can be exercised without a GPU.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Protocol

from ansible.module_utils.gpu_model import (
    KIND_SMI_ERROR,
    KIND_TIMEOUT,
    NO_DEVICES_MESSAGE,
    SOURCE_CSV,
    SOURCE_NONE,
    SOURCE_TABLE,
    SOURCE_XML,
    Failure,
    Gpu,
    GpuProbe,
    SmiReport,
    Versions,
    classify_failure,
    first_version_token,
)
from ansible.module_utils.gpu_smi_parsers import (
    gpus_from_query_rows,
    parse_q_text,
    parse_query_csv,
    parse_table,
    parse_version_output,
    parse_xml,
)

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
# WSL2 ships nvidia-smi outside PATH.
NVIDIA_SMI_EXTRA_DIRS = ("/usr/lib/wsl/lib",)
NVIDIA_SMI_TIMEOUT = 60.0


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
        probe.failure = classify_failure(NO_DEVICES_MESSAGE)
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
