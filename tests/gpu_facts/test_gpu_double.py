"""The nvidia-smi TEST DOUBLE (tests/doubles/nvidia-smi-double) keeps to the recorded outputs.

Its answers are checked against the recorded files with the production parsers, so a Molecule
scenario that runs the double sees what the recorded machine printed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gpu_facts.module_utils import load
from tests.gpu_facts.test_gpu_parsers import SMI
from tests.support import REPO

gpu_model = load("gpu_model")
smi_parsers = load("gpu_smi_parsers")
nvidia_smi = load("gpu_nvidia_smi")

DOUBLE = REPO / "tests" / "doubles" / "nvidia-smi-double"
DATA = REPO / "tests" / "doubles" / "nvidia_smi_double"
QUERY = [f"--query-gpu={','.join(nvidia_smi.QUERY_FIELDS)}", "--format=csv"]
GPU_SCENARIOS = ["a5000-24gb", "2x-rtx4090", "h100-80gb", "h100-80gb-mig", "rtx2080super-610"]
FAILURE_SCENARIOS = {  # scenario -> (recorded message file or text, exit code)
    "no-devices": ("fail_no-devices-were-found_open-gpu-kernel-modules-862.txt", 6),
    "driver-mismatch": (
        "fail_driver-library-mismatch_with-nvml-version-550.144_intel-llvm-17614.txt", 18),
    "no-driver": ("fail_no-driver_couldnt-communicate_shine-cluster-50.txt", 9),
    "nvml-unknown-error": ("Failed to initialize NVML: Unknown Error\n", 255),
}  # fmt: skip


def run_double(
    *args: str,
    scenario: str | None = None,
    extra_env: dict[str, str] | None = None,
    executable: Path = DOUBLE,
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NVIDIA_SMI_DOUBLE")}
    env["NVIDIA_SMI_DOUBLE_SCENARIO_FILE"] = "/nonexistent/scenario"  # ignore /etc on this box
    if scenario is not None:
        env["NVIDIA_SMI_DOUBLE_SCENARIO"] = scenario
    env.update(extra_env or {})
    # The repo's double runs on this interpreter (no PATH lookup of python3: pyenv shims are
    # slow); copies and links run through their shebang.
    command = (
        [sys.executable, "-I", "-S", str(DOUBLE)] if executable == DOUBLE else [str(executable)]
    )
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, check=False)


def answer(scenario: str, *args: str) -> str:
    done = run_double(*args, scenario=scenario)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout


def scenario_json(name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((DATA / "scenarios" / f"{name}.json").read_text())
    return data


def same_name(table_name: str | None, full_name: str) -> bool:
    """Tables truncate long names with '...'."""
    assert table_name is not None
    if table_name.endswith("..."):
        return full_name.startswith(table_name[:-3].rstrip())
    return table_name == full_name


# ----------------------------------------------------------------------------------- data


def test_double_is_an_executable_clearly_marked_test_double(tmp_path: Path) -> None:
    assert os.access(DOUBLE, os.X_OK)
    head = DOUBLE.read_text().splitlines()[:3]
    assert head[0] == "#!/usr/bin/env python3"
    assert "TEST DOUBLE" in head[1]
    copy = tmp_path / "nvidia-smi"
    shutil.copy2(DOUBLE, copy)  # run through its shebang
    done = run_double(
        "-L",
        scenario="a5000-24gb",
        executable=copy,
        extra_env={"NVIDIA_SMI_DOUBLE_DATA": str(DATA)},
    )
    assert (
        done.stdout == "GPU 0: NVIDIA RTX A5000 (UUID: GPU-00000000-0000-0000-0000-000000000000)\n"
    )


def test_the_double_replays_the_fixtures_themselves() -> None:
    """One copy of each recording: the double's recorded/ is a link to tests/fixtures/nvidia-smi
    (Molecule's copy follows it into the test hosts)."""
    recorded = DATA / "recorded"
    assert recorded.is_symlink()
    assert recorded.resolve() == SMI.resolve()
    assert len(list(recorded.iterdir())) > 10


def test_every_scenario_is_tested() -> None:
    names = sorted(p.stem for p in (DATA / "scenarios").glob("*.json"))
    assert names == sorted(GPU_SCENARIOS + list(FAILURE_SCENARIOS))


@pytest.mark.parametrize("name", GPU_SCENARIOS)
def test_scenario_state_matches_its_recordings(name: str) -> None:
    """The hand-written state of each scenario says what its recorded files say."""
    state = scenario_json(name)
    gpus = state["gpus"]
    assert isinstance(gpus, list)
    recorded = state["recorded"]
    assert isinstance(recorded, dict)
    for key, file_name in recorded.items():
        text = (SMI / file_name).read_text()
        if key == "table":
            report = smi_parsers.parse_table(text)
            assert report.versions.driver_version == state["driver_version"]
            assert report.versions.cuda_version == state["cuda_version"]
            smi_version = state.get("nvidia_smi_version", state["driver_version"])
            assert report.versions.nvidia_smi_version == smi_version
            assert len(report.gpus) == len(gpus)
            for parsed, wanted in zip(report.gpus, gpus, strict=True):
                assert same_name(parsed.name, wanted["name"])
                assert parsed.memory_total_mib == wanted["memory_total_mib"]
                assert parsed.memory_used_mib == wanted["memory_used_mib"]
        elif key == "csv":
            rows = smi_parsers.parse_query_csv(text)
            assert rows[0]["driver_version"] == state["driver_version"]
            for parsed, wanted in zip(smi_parsers.gpus_from_query_rows(rows), gpus, strict=True):
                assert (parsed.name, parsed.uuid) == (wanted["name"], wanted["uuid"])
                assert (
                    parsed.memory_total_mib,
                    parsed.memory_used_mib,
                    parsed.memory_free_mib,
                ) == (
                    wanted["memory_total_mib"],
                    wanted["memory_used_mib"],
                    wanted["memory_free_mib"],
                )
                assert (parsed.mig_mode or "N/A") == wanted["mig_mode"]
            reserved = [int(str(r["memory.reserved"]).split()[0]) for r in rows]
            assert reserved == [g["memory_reserved_mib"] for g in gpus]
        elif key in ("q", "version"):
            parse = smi_parsers.parse_q_text if key == "q" else smi_parsers.parse_version_output
            versions = parse(text)
            assert (versions.driver_version, versions.cuda_version) == (
                state["driver_version"],
                state["cuda_version"],
            )
        else:
            pytest.fail(f"unexpected recorded key {key}")


# ----------------------------------------------------------------------------------- answers


@pytest.mark.parametrize("name", GPU_SCENARIOS)
def test_recorded_outputs_are_replayed_verbatim(name: str) -> None:
    commands = {"table": [], "q": ["-q"], "version": ["--version"]}
    recorded = scenario_json(name)["recorded"]
    assert isinstance(recorded, dict)
    for key, file_name in recorded.items():
        if key in commands:
            assert answer(name, *commands[key]) == (SMI / file_name).read_text(), key


@pytest.mark.parametrize(
    "name",
    [*GPU_SCENARIOS, "custom:NVIDIA RTX A5000,24564,24064", "custom:NVIDIA GB10,N/A,N/A"],
)
def test_every_command_tells_the_same_story(name: str) -> None:
    """CSV, XML, -q, --version, the table and -L agree on GPUs and versions."""
    csv_gpus = smi_parsers.gpus_from_query_rows(smi_parsers.parse_query_csv(answer(name, *QUERY)))
    xml = smi_parsers.parse_xml(answer(name, "-q", "-x"))
    table = smi_parsers.parse_table(answer(name))
    q_versions = smi_parsers.parse_q_text(answer(name, "-q"))
    version = smi_parsers.parse_version_output(answer(name, "--version"))
    listing = answer(name, "-L").splitlines()

    assert len(csv_gpus) == len(xml.gpus) == len(table.gpus) == len(listing) >= 1
    assert xml.attached_gpus == len(csv_gpus)
    for index, (c, x, t) in enumerate(zip(csv_gpus, xml.gpus, table.gpus, strict=True)):
        assert c.index == x.index == t.index == index
        assert c.name == x.name
        assert same_name(t.name, c.name)
        assert listing[index] == f"GPU {index}: {c.name} (UUID: {c.uuid})"
        assert c.uuid == x.uuid
        assert (c.memory_total_mib, c.memory_used_mib, c.memory_free_mib) == (
            x.memory_total_mib, x.memory_used_mib, x.memory_free_mib)  # fmt: skip
        assert (t.memory_total_mib, t.memory_used_mib) == (c.memory_total_mib, c.memory_used_mib)
        assert c.mig_mode == x.mig_mode

    rows = smi_parsers.parse_query_csv(answer(name, *QUERY))
    driver = rows[0]["driver_version"]
    assert driver == xml.versions.driver_version == table.versions.driver_version
    assert driver == q_versions.driver_version == version.driver_version
    cuda = table.versions.cuda_version
    assert cuda == q_versions.cuda_version == version.cuda_version
    # 610 XML: no <cuda_version> (assumption, INDEX.md fact 5)
    assert xml.versions.cuda_version == (None if driver.startswith("610.") else cuda)


def test_noheader_query_matches_the_diffusers_recording() -> None:
    recorded = (
        SMI / "query-gpu-csv-noheader_2x-rtx4090_driver-550.90.07_as-printed-by-diffusers-cli.txt"
    ).read_text()
    expected = recorded.replace("- Accelerator: ", "", 1)  # diffusers' prefix, not nvidia-smi's
    got = answer("2x-rtx4090", "--query-gpu=gpu_name,memory.total", "--format=csv,noheader")
    assert got == expected


def test_query_columns_come_from_the_recorded_csv() -> None:
    got = answer("h100-80gb", "--query-gpu=timestamp,pstate,memory.reserved", "--format=csv")
    assert got == (
        "timestamp, pstate, memory.reserved [MiB]\n2026/07/14 08:12:38.696, P0, 479 MiB\n"
    )


def test_nounits_and_separate_arguments() -> None:
    got = answer("h100-80gb", "--query-gpu", "memory.total,memory.free", "--format", "csv,nounits")
    assert got == "memory.total [MiB], memory.free [MiB]\n81559, 81081\n"


def test_kmd_version_exists_only_from_610() -> None:
    assert answer("rtx2080super-610", "--query-gpu=kmd_version", "--format=csv,noheader") == (
        "610.57.04\n"
    )
    done = run_double("--query-gpu=kmd_version", "--format=csv", scenario="2x-rtx4090")
    assert done.returncode == 2
    assert 'Field "kmd_version" is not a valid field to query.' in done.stderr


@pytest.mark.parametrize("name", sorted(FAILURE_SCENARIOS))
@pytest.mark.parametrize("args", [QUERY, ["-q", "-x"], ["-q"], [], ["--version"]])
def test_failure_scenarios_print_the_recorded_message(name: str, args: list[str]) -> None:
    message, code = FAILURE_SCENARIOS[name]
    expected = (SMI / message).read_text() if message.endswith(".txt") else message
    done = run_double(*args, scenario=name)
    assert (done.returncode, done.stdout, done.stderr) == (code, expected, "")
    assert gpu_model.classify_failure(done.stdout) is not None


# ----------------------------------------------------------------------------------- choosing


def test_custom_scenarios() -> None:
    got = answer("custom:NVIDIA RTX A5000,24564,24064;NVIDIA RTX A4000,16376,8000", *QUERY)
    rows = smi_parsers.gpus_from_query_rows(smi_parsers.parse_query_csv(got))
    assert [(g.name, g.memory_total_mib, g.memory_used_mib, g.memory_free_mib) for g in rows] == [
        ("NVIDIA RTX A5000", 24564, 500, 24064),
        ("NVIDIA RTX A4000", 16376, 8376, 8000),
    ]
    gb10 = answer("custom:NVIDIA GB10,N/A,N/A", *QUERY)
    assert "NVIDIA GB10, GPU-00000000-0000-0000-0000-000000000000, [N/A], [N/A], [N/A]" in gb10


@pytest.mark.parametrize("spec", ["custom:", "custom:NVIDIA,12", "custom:X,a,b"])
def test_bad_custom_scenario(spec: str) -> None:
    done = run_double(*QUERY, scenario=spec)
    assert done.returncode == 2
    assert done.stderr.startswith("nvidia-smi-double: ")


def test_json_scenario_file(tmp_path: Path) -> None:
    path = tmp_path / "eight-gb.json"
    path.write_text(json.dumps({
        "driver_version": "535.183.01",
        "cuda_version": "12.2",
        "gpus": [{"name": "NVIDIA GeForce RTX 3070", "memory_total_mib": 8192,
                  "memory_used_mib": 300, "memory_reserved_mib": 250}],
    }))  # fmt: skip
    for scenario in (str(path), f"json:{path}"):
        (row,) = smi_parsers.parse_query_csv(answer(scenario, *QUERY))
        assert (row["name"], row["memory.free"], row["driver_version"]) == (
            "NVIDIA GeForce RTX 3070", "7642 MiB", "535.183.01")  # fmt: skip
    failing = tmp_path / "broken.json"
    failing.write_text(
        json.dumps({"failure": {"message": "No devices were found", "exit_code": 6}})
    )
    done = run_double(scenario=str(failing))
    assert (done.returncode, done.stdout) == (6, "No devices were found\n")


def test_scenario_file(tmp_path: Path) -> None:
    scenario_file = tmp_path / "scenario"
    scenario_file.write_text("h100-80gb\n")
    done = run_double(*QUERY, extra_env={"NVIDIA_SMI_DOUBLE_SCENARIO_FILE": str(scenario_file)})
    assert done.returncode == 0
    assert "NVIDIA H100 80GB HBM3" in done.stdout


@pytest.mark.parametrize(
    ("scenario", "args", "message"),
    [
        (None, [], "no scenario"),
        ("h200-141gb", [], "unknown scenario 'h200-141gb'"),
        ("../escape", [], "bad scenario name"),
        ("h100-80gb", ["--query-gpu=name,bogus.field", "--format=csv"], 'Field "bogus.field"'),
        ("h100-80gb", ["--query-gpu=name", "--format=json"], "--format=csv"),
        ("h100-80gb", ["-r"], "unsupported arguments: -r"),
    ],
)
def test_usage_errors(scenario: str | None, args: list[str], message: str) -> None:
    done = run_double(*args, scenario=scenario)
    assert done.returncode == 2
    assert done.stdout == ""
    assert message in done.stderr


def test_installed_like_in_a_container(tmp_path: Path) -> None:
    """Copied to <bin>/nvidia-smi with the data elsewhere (as Molecule installs it)."""
    binary = tmp_path / "bin" / "nvidia-smi"
    binary.parent.mkdir()
    shutil.copy2(DOUBLE, binary)
    shutil.copytree(DATA, tmp_path / "share" / "nvidia-smi-double")
    done = run_double(
        *QUERY,
        scenario="rtx2080super-610",
        extra_env={"NVIDIA_SMI_DOUBLE_DATA": str(tmp_path / "share" / "nvidia-smi-double")},
        executable=binary,
    )
    assert done.returncode == 0, done.stderr
    assert "NVIDIA GeForce RTX 2080 SUPER" in done.stdout
    # without the data next to it nor NVIDIA_SMI_DOUBLE_DATA it looks in /usr/local/share
    done = run_double(*QUERY, scenario="rtx2080super-610", executable=binary)
    if not Path("/usr/local/share/nvidia-smi-double/scenarios").is_dir():
        assert done.returncode == 2
        assert "/usr/local/share/nvidia-smi-double/scenarios" in done.stderr


def test_symlinked_double_finds_its_data(tmp_path: Path) -> None:
    link = tmp_path / "nvidia-smi"
    link.symlink_to(DOUBLE)
    done = run_double("-L", scenario="2x-rtx4090", executable=link)
    assert done.stdout.count("NVIDIA GeForce RTX 4090") == 2


def test_double_runs_without_the_venv() -> None:
    """The double only needs the system python3 (stdlib), like on a test container."""
    python3 = shutil.which("python3", path="/usr/bin:/bin")
    assert python3 is not None, "no system python3 in /usr/bin or /bin"
    done = subprocess.run(
        [python3, "-I", str(DOUBLE), "--version"],
        capture_output=True,
        text=True,
        env={"NVIDIA_SMI_DOUBLE_SCENARIO": "h100-80gb", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == (SMI / "version_driver-590.48.01.txt").read_text()
