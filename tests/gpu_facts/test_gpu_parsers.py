"""nvidia-smi parsers and failure classification of the gpu_facts module_utils (gpu_smi_parsers,
gpu_model) over the recorded nvidia-smi outputs.

Fixtures: tests/fixtures/nvidia-smi (copied from /work/shared/fixtures/nvidia-smi; provenance in
its INDEX.md). Expected values are transcribed from the fixture files by hand, so a parser bug
cannot make its own expectation.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.gpu_facts.module_utils import GPU_MODULE_UTILS, MODULE_UTILS, load
from tests.support import FIXTURES, REPO

SMI = FIXTURES / "nvidia-smi"

gpu_model = load("gpu_model")
smi_parsers = load("gpu_smi_parsers")


def read(name: str) -> str:
    return (SMI / name).read_text(encoding="utf-8")


def memory(g: object) -> tuple[int | None, int | None, int | None]:
    return (g.memory_total_mib, g.memory_used_mib, g.memory_free_mib)  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24564 MiB", 24564),
        (" 81559 MiB ", 81559),
        ("16280", 16280),
        ("0 MiB", 0),
        ("[N/A]", None),
        ("N/A", None),
        ("[Not Supported]", None),
        ("Not Supported", None),
        ("[Requested functionality has been deprecated]", None),
        ("", None),
        (None, None),
        ("garbage", None),
    ],
)
def test_parse_mib(text: str | None, expected: int | None) -> None:
    assert gpu_model.parse_mib(text) == expected


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        (12040, "12.4"),
        (12050, "12.5"),
        (13010, "13.1"),
        (11060, "11.6"),
        (10010, "10.1"),
        (13030, "13.3"),
        (12080, "12.8"),
    ],
)
def test_cuda_version_from_int(encoded: int, expected: str) -> None:
    assert gpu_model.cuda_version_from_int(encoded) == expected


# ----------------------------------------------------------------------------------- CSV


def test_csv_h100_with_header_and_units_picks_columns_by_name() -> None:
    rows = smi_parsers.parse_query_csv(read("query-gpu-csv_1x-h100-80gb-hbm3_driver-590.48.01.csv"))
    assert len(rows) == 1
    assert len(rows[0]) == 212
    (g,) = smi_parsers.gpus_from_query_rows(rows)
    assert (g.index, g.name) == (0, "NVIDIA H100 80GB HBM3")
    assert g.uuid == "GPU-00000000-0000-0000-0000-000000000000"
    assert memory(g) == (81559, 0, 81081)
    assert g.mig_mode == "Disabled"
    assert rows[0]["driver_version"] == "590.48.01"
    assert rows[0]["display_mode"] is None  # [Requested functionality has been deprecated]


def test_csv_h100_mig_enabled() -> None:
    rows = smi_parsers.parse_query_csv(
        read("query-gpu-csv_1x-h100-mig-enabled_driver-590.48.01.csv")
    )
    (g,) = smi_parsers.gpus_from_query_rows(rows)
    assert memory(g) == (81559, 59, 81022)
    assert g.mig_mode == "Enabled"
    assert rows[0]["utilization.gpu"] is None  # [N/A] with MIG enabled


def test_csv_driver_610_has_driver_and_kmd_version() -> None:
    rows = smi_parsers.parse_query_csv(read("query-gpu-csv_1x-rtx2080super_driver-610.57.04.csv"))
    assert len(rows[0]) == 241
    assert rows[0]["driver_version"] == "610.57.04"
    assert rows[0]["kmd_version"] == "610.57.04"
    (g,) = smi_parsers.gpus_from_query_rows(rows)
    assert g.name == "NVIDIA GeForce RTX 2080 SUPER"
    assert memory(g) == (8192, 211, 7582)
    assert g.mig_mode is None  # [N/A]


def test_csv_nounits_without_memory_total_or_index() -> None:
    rows = smi_parsers.parse_query_csv(read("query-gpu-csv_1x-tesla-p100_netdata-fields.csv"))
    (g,) = smi_parsers.gpus_from_query_rows(rows)
    assert g.index == 0  # no index column: position
    assert g.name == "Tesla P100-PCIE-16GB"
    assert g.uuid == "GPU-ef1b2c9b-38d8-2090-2bd1-f567a3eb42a6"
    assert memory(g) == (None, 0, 16280)
    assert rows[0]["fan.speed"] is None


def test_csv_noheader_two_rtx4090() -> None:
    # The recording is diffusers-cli's "Accelerator" line: the "- Accelerator: " prefix on the
    # first row is diffusers', not nvidia-smi's, so it is removed here.
    text = read(
        "query-gpu-csv-noheader_2x-rtx4090_driver-550.90.07_as-printed-by-diffusers-cli.txt"
    )
    text = text.replace("- Accelerator: ", "", 1)
    rows = smi_parsers.parse_query_csv(text, fields=["name", "memory.total"])
    gpus = smi_parsers.gpus_from_query_rows(rows)
    assert [(g.index, g.name, g.memory_total_mib) for g in gpus] == [
        (0, "NVIDIA GeForce RTX 4090", 24564),
        (1, "NVIDIA GeForce RTX 4090", 24564),
    ]


def test_csv_gb10_memory_not_available() -> None:
    # CONSTRUCTED (no recorded file): INDEX.md fact 7 -- GB10 / DGX Spark answers [N/A] for
    # memory.total/used/free (unsloth PR #10703 quotes "0, NVIDIA GB10, [N/A], [N/A]").
    text = (
        "index, name, uuid, memory.total [MiB], memory.used [MiB], memory.free [MiB], "
        "driver_version\n"
        "0, NVIDIA GB10, GPU-00000000-0000-0000-0000-000000000000, [N/A], [N/A], [N/A], "
        "580.126.09\n"
    )
    (g,) = smi_parsers.gpus_from_query_rows(smi_parsers.parse_query_csv(text))
    assert g.name == "NVIDIA GB10"
    assert memory(g) == (None, None, None)


def test_csv_empty_output_has_no_rows() -> None:
    assert smi_parsers.parse_query_csv("") == []


# ----------------------------------------------------------------------------------- XML

# file -> (name, uuid, (total, used, free), driver, cuda, mig_mode), transcribed from the files
XML_EXPECTED = {
    "q-x_1x-a100-sxm4-40gb-mig_driver-510.47.03.xml": (
        "NVIDIA A100-SXM4-40GB", "GPU-27b94a00-ed54-5c24-b1fd-1054085de32a",
        (40960, 38, 40315), "510.47.03", "11.6", "Enabled"),
    "q-x_1x-a10g_driver-515.105.01.xml": (
        "NVIDIA A10G", "GPU-9a9a6c50-2a47-2f51-a902-b82c3b127e94",
        (23028, 22, 22569), "515.105.01", "11.7", None),
    "q-x_1x-gtx1660ti-graphics-device_driver-418.43.xml": (
        "Graphics Device", "GPU-304a277d-3545-63b8-3a36-dfde3c992989",
        (5912, 0, 5912), "418.43", "10.1", None),
    "q-x_1x-rtx-4000-sff-ada_driver-595.84.xml": (
        "NVIDIA RTX 4000 SFF Ada Generation", "GPU-37037c3f-65c8-ec4d-24a9-420204ad8026",
        (20475, 3534, 16482), "595.84", "13.2", None),
    "q-x_1x-rtx2080-windows-wddm_driver-516.59.xml": (
        "NVIDIA GeForce RTX 2080", "GPU-fbd55ed4-1eec-4423-0a47-ad594b4333e3",
        (8192, 862, 7147), "516.59", "11.7", None),
    "q-x_1x-rtx3060_driver-570.124.04.xml": (
        "NVIDIA GeForce RTX 3060", "GPU-d6889ff6-2523-9142-ca3c-1ca3f396a625",
        (12288, 116, 11806), "570.124.04", "12.8", None),
    "q-x_1x-rtx3080_driver-595.58.03.xml": (
        "NVIDIA GeForce RTX 3080", "GPU-19d6d965-2acc-f646-00f8-4c76979aabb4",
        (10240, 9184, 660), "595.58.03", "13.2", None),
    "q-x_1x-rtx3090_driver-525.147.05.xml": (
        "NVIDIA GeForce RTX 3090", "GPU-12345678-aaaa-bbbb-cccc-0123456789ab",
        (24576, 1, 24258), "525.147.05", "12.0", None),
    "q-x_1x-rtx3090_driver-590.44.01.xml": (
        "NVIDIA GeForce RTX 3090", "GPU-12345678-aaaa-bbbb-cccc-0123456789ab",
        (24576, 7, 24120), "590.44.01", "13.1", None),
    "q-x_1x-rtx4090_driver-535.86.05.xml": (
        "NVIDIA GeForce RTX 4090", "GPU-71d1acc2-662d-2166-bf9f-65272d2fc437",
        (24564, 2, 24214), "535.86.05", "12.2", None),
    "q-x_1x-tesla-p100_driver-510.47.03.xml": (
        "Tesla P100-PCIE-16GB", "GPU-d3da8716-eaab-75db-efc1-60e88e1cd55e",
        (16384, 0, 16280), "510.47.03", "11.6", None),
    "q-x_1x-tesla-t4_driver-515.105.01.xml": (
        "Tesla T4", "GPU-d37e67a5-91dd-3774-a5cb-99096249601a",
        (15360, 1032, 13939), "515.105.01", "11.7", None),
}  # fmt: skip


def test_every_xml_fixture_is_covered() -> None:
    assert sorted(p.name for p in SMI.glob("q-x_*.xml")) == sorted(XML_EXPECTED)


@pytest.mark.parametrize("name", sorted(XML_EXPECTED))
def test_xml_fixture(name: str) -> None:
    gpu_name, uuid, mem, driver, cuda, mig = XML_EXPECTED[name]
    report = smi_parsers.parse_xml(read(name))
    assert report.attached_gpus == 1
    (g,) = report.gpus
    assert (g.index, g.name, g.uuid) == (0, gpu_name, uuid)
    assert memory(g) == mem
    assert g.mig_mode == mig
    assert (report.versions.driver_version, report.versions.cuda_version) == (driver, cuda)


def test_xml_mig_reports_the_whole_gpu_not_its_instances() -> None:
    text = read("q-x_1x-a100-sxm4-40gb-mig_driver-510.47.03.xml")
    assert text.count("<mig_device>") == 2  # two MIG instances with their own fb_memory_usage
    (g,) = smi_parsers.parse_xml(text).gpus
    assert g.memory_total_mib == 40960  # not an instance's 19968


def test_xml_attached_gpus_may_differ_from_gpu_elements() -> None:
    # CONSTRUCTED: INDEX.md fact 6 (q-x_4x-a100-sxm4-80gb-mig: attached_gpus 4, one <gpu>).
    text = read("q-x_1x-a100-sxm4-40gb-mig_driver-510.47.03.xml").replace(
        "<attached_gpus>1</attached_gpus>", "<attached_gpus>4</attached_gpus>"
    )
    report = smi_parsers.parse_xml(text)
    assert report.attached_gpus == 4
    assert len(report.gpus) == 1


def test_xml_without_cuda_version_like_610() -> None:
    # CONSTRUCTED: INDEX.md fact 5 -- what 610 XML holds is unknown; <cuda_version> may be absent.
    text = re.sub(
        r"\s*<cuda_version>[^<]*</cuda_version>", "", read("q-x_1x-rtx3080_driver-595.58.03.xml")
    )
    report = smi_parsers.parse_xml(text)
    assert report.versions.cuda_version is None
    assert report.versions.driver_version == "595.58.03"
    assert report.gpus[0].memory_total_mib == 10240


def test_xml_with_encoding_declaration() -> None:
    text = read("q-x_1x-tesla-t4_driver-515.105.01.xml").replace(
        '<?xml version="1.0" ?>', '<?xml version="1.0" encoding="UTF-8"?>'
    )
    assert smi_parsers.parse_xml(text).gpus[0].name == "Tesla T4"


@pytest.mark.parametrize("text", ["", "No devices were found", "<html></html>", "<a><b></a>"])
def test_xml_rejects_other_output(text: str) -> None:
    with pytest.raises(ValueError, match=r"not XML|unexpected XML root"):
        smi_parsers.parse_xml(text)


# ----------------------------------------------------------------------------------- -q text


def test_q_text_590_old_keys() -> None:
    versions = smi_parsers.parse_q_text(read("q-text_1x-h100-80gb-hbm3_driver-590.48.01.txt"))
    assert (versions.driver_version, versions.cuda_version) == ("590.48.01", "13.1")


def test_q_text_610_prefers_kmd_and_umd_keys() -> None:
    versions = smi_parsers.parse_q_text(read("q-text_1x-rtx2080super_driver-610.57.04.txt"))
    assert (versions.driver_version, versions.cuda_version) == ("610.57.04", "13.3")


def test_q_text_610_deprecated_keys_alone_give_the_first_token() -> None:
    # CONSTRUCTED from the 610 file: without the KMD / CUDA UMD lines only the deprecated keys
    # with their "[Deprecated; ...]" suffix remain (INDEX.md fact 2).
    text = "\n".join(
        line
        for line in read("q-text_1x-rtx2080super_driver-610.57.04.txt").splitlines()
        if not line.startswith(("KMD Version", "CUDA UMD Version"))
    )
    assert "[Deprecated;" in text
    versions = smi_parsers.parse_q_text(text)
    assert (versions.driver_version, versions.cuda_version) == ("610.57.04", "13.3")


def test_q_text_ignores_indented_keys() -> None:
    # "GSP Firmware Version : 610.57.04" and friends are per-GPU, indented
    versions = smi_parsers.parse_q_text("    CUDA Version : 99.9\nDriver Version : 1.2\n")
    assert (versions.driver_version, versions.cuda_version) == ("1.2", None)


# ----------------------------------------------------------------------------------- --version


def test_version_590() -> None:
    versions = smi_parsers.parse_version_output(read("version_driver-590.48.01.txt"))
    assert versions.driver_version == "590.48.01"
    assert versions.cuda_version == "13.1"
    assert versions.nvidia_smi_version == "590.48.01"


def test_version_610_deprecated_lines_carry_no_number() -> None:
    versions = smi_parsers.parse_version_output(read("version_driver-610.57.04.txt"))
    assert versions.driver_version == "610.57.04"
    assert versions.cuda_version == "13.3"


# ----------------------------------------------------------------------------------- table

# file -> (nvidia-smi version, driver, cuda, [(index, name, total, used)])
TABLE_EXPECTED = {
    "table_1x-h100-80gb-hbm3-mig-enabled_driver-590.48.01.txt": (
        "590.48.01", "590.48.01", "13.1", [(0, "NVIDIA H100 80GB HBM3", 81559, 59)]),
    "table_1x-h100-80gb-hbm3_driver-590.48.01.txt": (
        "590.48.01", "590.48.01", "13.1", [(0, "NVIDIA H100 80GB HBM3", 81559, 0)]),
    "table_1x-rtx-a5000-wsl2_nvsmi-555.42.03_driver-555.85.txt": (
        "555.42.03", "555.85", "12.5", [(0, "NVIDIA RTX A5000", 24564, 24196)]),
    "table_1x-rtx2080super-windows_driver-610.62_KMD-UMD-header.txt": (
        "610.62", "610.62", "13.3", [(0, "NVIDIA GeForce RTX 2080 ...", 8192, 797)]),
    "table_1x-rtx2080super_driver-610.57.04_KMD-UMD-header.txt": (
        "610.57.04", "610.57.04", "13.3", [(0, "NVIDIA GeForce RTX 2080 ...", 8192, 211)]),
    "table_2x-rtx4090_driver-550.90.07_partial-no-processes.txt": (
        "550.90.07", "550.90.07", "12.4",
        [(0, "NVIDIA GeForce RTX 4090", 24564, 1), (1, "NVIDIA GeForce RTX 4090", 24564, 1)]),
}  # fmt: skip


def test_every_table_fixture_is_covered() -> None:
    assert sorted(p.name for p in SMI.glob("table_*.txt")) == sorted(TABLE_EXPECTED)


def check_table(text: str, expected: tuple[str, str, str, list[tuple[int, str, int, int]]]) -> None:
    smi, driver, cuda, gpus = expected
    report = smi_parsers.parse_table(text)
    assert report.versions.nvidia_smi_version == smi
    assert report.versions.driver_version == driver
    assert report.versions.cuda_version == cuda
    assert [(g.index, g.name, g.memory_total_mib, g.memory_used_mib) for g in report.gpus] == gpus
    for g in report.gpus:
        assert g.memory_free_mib == g.memory_total_mib - g.memory_used_mib


@pytest.mark.parametrize("name", sorted(TABLE_EXPECTED))
def test_table_fixture(name: str) -> None:
    check_table(read(name), TABLE_EXPECTED[name])


# file -> the MIG M. cell of each GPU's third line, read off the file (N/A -> None)
TABLE_MIG_EXPECTED = {
    "table_1x-h100-80gb-hbm3-mig-enabled_driver-590.48.01.txt": ["Enabled"],
    "table_1x-h100-80gb-hbm3_driver-590.48.01.txt": ["Disabled"],
    "table_1x-rtx-a5000-wsl2_nvsmi-555.42.03_driver-555.85.txt": [None],
    "table_1x-rtx2080super-windows_driver-610.62_KMD-UMD-header.txt": [None],
    "table_1x-rtx2080super_driver-610.57.04_KMD-UMD-header.txt": [None],
    "table_2x-rtx4090_driver-550.90.07_partial-no-processes.txt": [None, None],
}


def test_every_table_fixture_has_its_mig_modes() -> None:
    assert sorted(TABLE_MIG_EXPECTED) == sorted(TABLE_EXPECTED)


@pytest.mark.parametrize("name", sorted(TABLE_MIG_EXPECTED))
def test_table_mig_mode(name: str) -> None:
    report = smi_parsers.parse_table(read(name))
    assert [g.mig_mode for g in report.gpus] == TABLE_MIG_EXPECTED[name]


def test_table_mig_mode_per_gpu() -> None:
    # CONSTRUCTED from the 2x RTX 4090 table: the second GPU's MIG M. cell set to Enabled
    lines = read("table_2x-rtx4090_driver-550.90.07_partial-no-processes.txt").splitlines()
    mig_rows = [i for i, line in enumerate(lines) if line.endswith("N/A |")]
    assert len(mig_rows) == 2
    lines[mig_rows[1]] = lines[mig_rows[1]].replace("    N/A |", "Enabled |")
    report = smi_parsers.parse_table("\n".join(lines))
    assert [(g.index, g.mig_mode, g.memory_total_mib) for g in report.gpus] == [
        (0, None, 24564),
        (1, "Enabled", 24564),
    ]


def test_table_without_mig_line_reads_no_mig_mode() -> None:
    # CONSTRUCTED: a two-line header (no "MIG M." line) and GPU blocks of two lines; the last
    # cell of the memory line is Compute M., not a MIG mode
    text = """\
+-----------------------------------------------------------------------------+
| NVIDIA-SMI 418.43       Driver Version: 418.43       CUDA Version: 10.1     |
|-------------------------------+----------------------+----------------------+
| GPU  Name        Persistence-M| Bus-Id        Disp.A | Volatile Uncorr. ECC |
| Fan  Temp  Perf  Pwr:Usage/Cap|         Memory-Usage | GPU-Util  Compute M. |
|===============================+======================+======================|
|   0  Graphics Device     Off  | 00000000:01:00.0 Off |                  N/A |
| 31%   34C    P8     9W / 120W |      0MiB /  5912MiB |      0%      Default |
+-------------------------------+----------------------+----------------------+
|   1  Graphics Device     Off  | 00000000:02:00.0 Off |                  N/A |
| 31%   34C    P8     9W / 120W |      5MiB /  5912MiB |      0%      Default |
+-------------------------------+----------------------+----------------------+
"""
    report = smi_parsers.parse_table(text)
    assert [(g.index, g.memory_used_mib, g.mig_mode) for g in report.gpus] == [
        (0, 0, None),
        (1, 5, None),
    ]


def test_table_wsl2_driver_differs_from_nvidia_smi() -> None:
    report = smi_parsers.parse_table(
        read("table_1x-rtx-a5000-wsl2_nvsmi-555.42.03_driver-555.85.txt")
    )
    assert report.versions.driver_version == "555.85"
    assert report.versions.nvidia_smi_version == "555.42.03"


def test_table_as_pasted_with_markdown_indent() -> None:
    # The A5000 source (a README) indents the table by 8 spaces; INDEX.md says the fixture has
    # the indent removed. Put it back: the parser must not care.
    name = "table_1x-rtx-a5000-wsl2_nvsmi-555.42.03_driver-555.85.txt"
    indented = "\n".join(" " * 8 + line for line in read(name).splitlines())
    check_table(indented, TABLE_EXPECTED[name])


def test_table_gb10_memory_not_supported() -> None:
    # CONSTRUCTED from the H100 table: INDEX.md fact 7 -- GB10 prints "Not Supported" in the
    # Memory-Usage cell.
    text = read("table_1x-h100-80gb-hbm3_driver-590.48.01.txt").replace(
        "|       0MiB /  81559MiB |", "|          Not Supported |"
    )
    (g,) = smi_parsers.parse_table(text).gpus
    assert g.name == "NVIDIA H100 80GB HBM3"
    assert memory(g) == (None, None, None)


def test_table_old_79_column_layout() -> None:
    # CONSTRUCTED: the <= 460 layout of INDEX.md fact 9 (no such file was copied), one Tesla T4.
    text = """\
+-----------------------------------------------------------------------------+
| NVIDIA-SMI 460.32.03    Driver Version: 460.32.03    CUDA Version: 11.2     |
|-------------------------------+----------------------+----------------------+
| GPU  Name        Persistence-M| Bus-Id        Disp.A | Volatile Uncorr. ECC |
| Fan  Temp  Perf  Pwr:Usage/Cap|         Memory-Usage | GPU-Util  Compute M. |
|                               |                      |               MIG M. |
|===============================+======================+======================|
|   0  Tesla T4            Off  | 00000000:00:04.0 Off |                    0 |
| N/A   37C    P8     9W /  70W |      0MiB / 15109MiB |      0%      Default |
|                               |                      |                  N/A |
+-------------------------------+----------------------+----------------------+
"""
    check_table(text, ("460.32.03", "460.32.03", "11.2", [(0, "Tesla T4", 15109, 0)]))


def test_table_vgpu_host_cuda_not_available() -> None:
    # CONSTRUCTED: INDEX.md fact 9 -- "CUDA Version: N/A" on a vGPU host driver.
    text = read("table_1x-h100-80gb-hbm3_driver-590.48.01.txt").replace(
        "CUDA Version: 13.1  ", "CUDA Version: N/A   "
    )
    report = smi_parsers.parse_table(text)
    assert report.versions.cuda_version is None
    assert report.versions.driver_version == "590.48.01"


@pytest.mark.parametrize("name", sorted(p.name for p in SMI.glob("fail_*.txt")))
def test_table_parser_finds_nothing_in_failure_output(name: str) -> None:
    report = smi_parsers.parse_table(read(name))
    assert report.gpus == []
    assert report.versions.driver_version is None


# ----------------------------------------------------------------------------------- failures

FAILURE_EXPECTED = {
    "fail_driver-library-mismatch_single-line_shine-cluster-30.txt": (
        "driver-mismatch", ["reboot"], None),
    "fail_driver-library-mismatch_with-nvml-version-550.144_intel-llvm-17614.txt": (
        "driver-mismatch", ["reboot"], "550.144"),
    "fail_driver-library-mismatch_with-nvml-version-570.124_tinygrad-ogkm-47.txt": (
        "driver-mismatch", ["reboot"], "570.124"),
    "fail_no-devices-were-found_open-gpu-kernel-modules-862.txt": (
        "no-devices", ["No devices were found", "--gpus all", "dmesg"], None),
    "fail_no-driver_couldnt-communicate_shine-cluster-50.txt": (
        "no-driver", ["couldn't communicate", "Install the NVIDIA driver", "--gpus all"], None),
}  # fmt: skip


def test_every_failure_fixture_is_covered() -> None:
    assert sorted(p.name for p in SMI.glob("fail_*.txt")) == sorted(FAILURE_EXPECTED)


@pytest.mark.parametrize("name", sorted(FAILURE_EXPECTED))
def test_failure_fixture(name: str) -> None:
    kind, phrases, nvml_version = FAILURE_EXPECTED[name]
    failure = gpu_model.classify_failure(read(name))
    assert failure is not None
    assert failure.kind == kind
    for phrase in phrases:
        assert phrase in failure.problem
    if nvml_version:
        assert nvml_version in failure.problem
        assert nvml_version in failure.detail
    else:
        assert "NVML library" not in failure.problem


@pytest.mark.parametrize(
    ("message", "kind", "phrase"),
    [
        # CONSTRUCTED from the message quoted in INDEX.md fact 10
        ("Failed to initialize NVML: Unknown Error", "nvml-unknown-error", "Restart the container"),
        # CONSTRUCTED: nvidia-smi's wording for these NVML errors
        ("Failed to initialize NVML: Insufficient Permissions", "no-permission", "video"),
        ("Unable to determine the device handle for GPU0000:01:00.0: GPU is lost.  Reboot the "
         "system to recover this GPU", "gpu-lost", "reboot the host"),
    ],
)  # fmt: skip
def test_other_known_failures(message: str, kind: str, phrase: str) -> None:
    failure = gpu_model.classify_failure(message)
    assert failure is not None
    assert (failure.kind, phrase in failure.problem) == (kind, True)


@pytest.mark.parametrize(
    "text",
    ["", read("table_1x-h100-80gb-hbm3_driver-590.48.01.txt"), 'Field "x" is not a valid field'],
)
def test_unknown_output_is_not_classified(text: str) -> None:
    assert gpu_model.classify_failure(text) is None


# ----------------------------------------------------------------------------------- Python 3.8


def python38_problems(source: str, name: str) -> list[str]:
    """What in ``source`` needs Python > 3.8 at run time (a light check, not a full one)."""
    try:
        tree = ast.parse(source, feature_version=(3, 8))
    except SyntaxError as exc:
        return [f"{name}: not 3.8 syntax: {exc}"]
    problems = []
    if "from __future__ import annotations" not in source:
        problems.append(f"{name}: annotations need 'from __future__ import annotations'")
    builtin_types = {"str", "int", "float", "bytes", "bool", "list", "dict", "tuple", "set", "type"}
    newer_attributes = {"removeprefix", "removesuffix", "cache", "pairwise", "bit_count"}
    in_annotations: set[int] = set()
    for node in ast.walk(tree):
        annotations: list[ast.expr | None] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
            arguments += [a for a in (node.args.vararg, node.args.kwarg) if a is not None]
            annotations = [a.annotation for a in arguments] + [node.returns]
        elif isinstance(node, ast.AnnAssign):
            annotations = [node.annotation]
        for annotation in annotations:
            if annotation is not None:
                in_annotations.update(id(n) for n in ast.walk(annotation))
    for node in ast.walk(tree):
        if id(node) in in_annotations:
            continue  # strings at run time under "from __future__ import annotations"
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Attribute) and node.attr in newer_attributes:
            problems.append(f"{where}: .{node.attr} is 3.9+")
        is_zip = isinstance(node, ast.Call) and getattr(node.func, "id", None) == "zip"
        if is_zip and any(k.arg == "strict" for k in node.keywords):  # type: ignore[attr-defined]
            problems.append(f"{where}: zip(strict=) is 3.10+")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            for side in (node.left, node.right):
                is_none = isinstance(side, ast.Constant) and side.value is None
                if is_none or getattr(side, "id", None) in builtin_types:
                    problems.append(f"{where}: X | Y union at run time is 3.10+")
                    break
        if isinstance(node, ast.Subscript) and getattr(node.value, "id", None) in builtin_types:
            problems.append(f"{where}: builtin generic at run time is 3.9+")
    return problems


def test_python38_check_finds_newer_code() -> None:
    bad = (
        "from __future__ import annotations\n"
        "Alias = list[int]\n"
        "Optional = str | None\n"
        "def f(x: list[int] | None) -> dict[str, int] | None:\n"
        "    return zip(x, x, strict=True) or 'a'.removeprefix('b')\n"
    )
    problems = python38_problems(bad, "bad.py")
    assert len(problems) == 4, problems
    assert python38_problems("match x:\n    case 1:\n        pass\n", "m.py")[0].startswith(
        "m.py: not 3.8 syntax"
    )


@pytest.mark.parametrize(
    "path",
    [
        *(MODULE_UTILS / f"{name}.py" for name in GPU_MODULE_UTILS),
        REPO / "plugins" / "modules" / "gpu_facts.py",
        REPO / "tests" / "doubles" / "nvidia-smi-double",
    ],
    ids=lambda p: Path(p).name,
)
def test_host_side_code_is_python38(path: Path) -> None:
    """Runs on Vast.ai images with Python >= 3.8."""
    assert python38_problems(path.read_text(encoding="utf-8"), path.name) == []
