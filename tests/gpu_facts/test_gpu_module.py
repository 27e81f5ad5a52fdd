"""End to end: the real gpu_facts module and the gpu_facts role run by the real ``ansible``.

``ansible localhost`` runs with the repository's ansible.cfg (library, module_utils, roles_path)
and a PATH whose nvidia-smi is the TEST DOUBLE configured for a scenario; one test puts compiled
NVML/libcuda TEST DOUBLES on LD_LIBRARY_PATH instead. Needs: no real NVIDIA driver on this machine
(the tests check that first).
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.gpu_facts.test_gpu_nvml_abi import H100, build_driver_doubles
from tests.support import REPO

ANSIBLE = REPO / ".venv" / "bin" / "ansible"
DOUBLE = REPO / "tests" / "doubles" / "nvidia-smi-double"
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


@pytest.fixture(scope="module", autouse=True)
def no_real_nvidia_driver() -> None:
    for name in ("libnvidia-ml.so.1", "libcuda.so.1"):
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        pytest.fail(f"{name} loads on this machine: these tests need a host without NVIDIA driver")
    for directory in SYSTEM_PATH.split(":"):
        if (Path(directory) / "nvidia-smi").exists():
            pytest.fail(f"a real nvidia-smi is in {directory}: these tests need a host without one")


def ansible(
    tmp_path: Path,
    *args: str,
    scenario: str | None = None,
    double: bool = True,
    extra_env: dict[str, str] | None = None,
) -> tuple[subprocess.CompletedProcess[str], dict[str, dict[str, Any]]]:
    """Run ``ansible localhost ARGS`` with the json callback; return the process and the
    localhost result of each task by task name."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if double and not (bin_dir / "nvidia-smi").exists():
        (bin_dir / "nvidia-smi").symlink_to(DOUBLE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NVIDIA_SMI", "ANSIBLE_"))}
    env.update({
        "PATH": f"{bin_dir}:{SYSTEM_PATH}",
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
        # replaces the cfg's profile_tasks, which would print into the JSON
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.json",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp_path / "facts"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "NVIDIA_SMI_DOUBLE_SCENARIO_FILE": str(tmp_path / "no-scenario-file"),
    })  # fmt: skip
    if scenario is not None:
        env["NVIDIA_SMI_DOUBLE_SCENARIO"] = scenario
    env.update(extra_env or {})
    done = subprocess.run(
        [str(ANSIBLE), "localhost", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    try:
        output = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"ansible printed no JSON (rc {done.returncode}): {done.stdout}{done.stderr}")
    results = {
        task["task"]["name"]: task["hosts"]["localhost"] for task in output["plays"][0]["tasks"]
    }
    return done, results


def module_facts(tmp_path: Path, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The module's two facts: ``vastllm_gpu`` and ``vastllm_host``, and no other."""
    done, results = ansible(tmp_path, "-m", "gpu_facts", "-a", "model_dir=/tmp", **kwargs)
    assert done.returncode == 0, done.stdout + done.stderr
    (result,) = results.values()
    assert result["changed"] is False
    facts: dict[str, dict[str, Any]] = result["ansible_facts"]
    assert sorted(facts) == ["vastllm_gpu", "vastllm_host"]
    return facts["vastllm_gpu"], facts["vastllm_host"]


GPU_CASES = {
    # scenario -> (source, [(name, total, used, free)], driver, cuda, cuda source)
    "h100-80gb": ("nvidia-smi-csv", [("NVIDIA H100 80GB HBM3", 81559, 0, 81081)],
                  "590.48.01", "13.1", "nvidia-smi-xml"),
    "a5000-24gb": ("nvidia-smi-csv", [("NVIDIA RTX A5000", 24564, 24196, 368)],
                   "555.85", "12.5", "nvidia-smi-xml"),
    "rtx2080super-610": ("nvidia-smi-csv", [("NVIDIA GeForce RTX 2080 SUPER", 8192, 211, 7582)],
                         "610.57.04", "13.3", "nvidia-smi-q"),
    "2x-rtx4090": ("nvidia-smi-csv", [("NVIDIA GeForce RTX 4090", 24564, 1, 24563)] * 2,
                   "550.90.07", "12.4", "nvidia-smi-xml"),
    "custom:NVIDIA RTX A5000,24564,24064": (
        "nvidia-smi-csv", [("NVIDIA RTX A5000", 24564, 500, 24064)], "550.90.07", "12.4",
        "nvidia-smi-xml"),
}  # fmt: skip


@pytest.mark.parametrize("scenario", sorted(GPU_CASES))
def test_module_reports_gpus_from_the_double(tmp_path: Path, scenario: str) -> None:
    source, gpus, driver, cuda, cuda_source = GPU_CASES[scenario]
    facts, host = module_facts(tmp_path, scenario=scenario)
    assert (facts["mode"], facts["source"], facts["problem"]) == ("gpu", source, None)
    got = [(g["name"], g["memory_total_mib"], g["memory_used_mib"], g["memory_free_mib"])
           for g in facts["gpus"]]  # fmt: skip
    assert got == gpus
    assert facts["gpu_count"] == len(gpus)
    assert (facts["driver_version"], facts["cuda_version"]) == (driver, cuda)
    assert facts["cuda_version_source"] == cuda_source
    assert (host["model_dir"], host["disk_path"]) == ("/tmp", "/tmp")
    assert host["disk_free_bytes"] > 0
    assert host["summary"].startswith(f"GPU mode: {len(gpus)}x {gpus[0][0]} ")
    assert not {"disk_free_bytes", "cpu_count", "ram_total_bytes", "summary"} & set(facts)
    assert not {"mode", "gpus", "cuda_version"} & set(host)


@pytest.mark.parametrize(
    ("scenario", "kind", "advice"),
    [
        ("driver-mismatch", "driver-mismatch", "reboot the host"),
        ("no-devices", "no-devices", "--gpus all"),
        ("no-driver", "no-driver", "Install the NVIDIA driver"),
    ],
)
def test_module_reports_driver_problems(
    tmp_path: Path, scenario: str, kind: str, advice: str
) -> None:
    facts, _ = module_facts(tmp_path, scenario=scenario)
    assert (facts["mode"], facts["source"], facts["problem_kind"]) == ("cpu", "none", kind)
    assert advice in facts["problem"]
    assert facts["gpus"] == []


def test_module_without_nvidia_smi_is_cpu_mode(tmp_path: Path) -> None:
    facts, host = module_facts(tmp_path, double=False)
    assert (facts["mode"], facts["source"], facts["problem"]) == ("cpu", "none", None)
    assert host["cpu_count"] >= 1
    assert host["ram_total_bytes"] > 0
    assert host["summary"].startswith("CPU mode: no NVIDIA GPU or driver found -- ")


def test_module_uses_nvml_when_the_library_loads(tmp_path: Path) -> None:
    libs = build_driver_doubles(tmp_path / "lib", H100)
    facts, _ = module_facts(
        tmp_path, scenario="no-driver", extra_env={"LD_LIBRARY_PATH": str(libs)}
    )  # the nvidia-smi double would fail: NVML answers first
    assert (facts["mode"], facts["source"]) == ("gpu", "nvml")
    assert (facts["driver_version"], facts["cuda_version"]) == ("590.48.01", "13.1")
    assert facts["cuda_version_source"] == "nvml"
    assert facts["gpus"][0]["memory_free_mib"] == 81081


def test_module_documentation_renders(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "ansible-doc"), "gpu_facts"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "model_dir" in done.stdout
    assert "vastllm_gpu" in done.stdout
    assert "vastllm_host" in done.stdout


# ----------------------------------------------------------------------------------- role


ROLE_TASKS = (
    "gpu_facts : Gather GPU, driver, CUDA, RAM and disk facts",
    "gpu_facts : Record whether vastllm runs on GPU or CPU",
    "gpu_facts : Show what the host offers",
    "gpu_facts : Stop when a GPU is required but none is usable",
)


def role(
    tmp_path: Path, *extra: str, **kwargs: Any
) -> tuple[subprocess.CompletedProcess[str], dict[str, dict[str, Any]]]:
    return ansible(
        tmp_path, "-m", "ansible.builtin.include_role", "-a", "name=gpu_facts",
        "-e", f"vastllm_model_dir={tmp_path}/models", *extra, **kwargs,
    )  # fmt: skip


def test_role_prints_the_summary_and_sets_the_mode(tmp_path: Path) -> None:
    done, results = role(tmp_path, "-e", "vastllm_require_gpu=true", scenario="2x-rtx4090")
    assert done.returncode == 0, done.stdout + done.stderr
    gather, record, show, stop = (results[name] for name in ROLE_TASKS)
    assert gather["ansible_facts"]["vastllm_gpu"]["gpu_count"] == 2
    assert record["ansible_facts"] == {"vastllm_compute_mode": "gpu"}
    assert show["msg"].startswith(
        "GPU mode: 2x NVIDIA GeForce RTX 4090 (24564 MiB each); 48.0 GiB VRAM free; "
        "driver 550.90.07, CUDA 12.4; "
    )
    assert show["msg"].endswith(
        f"disk free on {tmp_path} (nearest existing parent of {tmp_path}/models): "
        f"{gather['ansible_facts']['vastllm_host']['disk_free_bytes'] / 1024**3:.1f} GiB"
    )
    assert stop["skipped"] is True


def test_role_fails_when_a_gpu_is_required_but_the_driver_is_broken(tmp_path: Path) -> None:
    done, results = role(tmp_path, "-e", "vastllm_require_gpu=true", scenario="driver-mismatch")
    assert done.returncode != 0
    stop = results[ROLE_TASKS[3]]
    assert stop["failed"] is True
    message = " ".join(stop["msg"].split())
    assert message.startswith(
        "vastllm_require_gpu is true but localhost has no usable NVIDIA GPU. "
        "Found: NVIDIA driver/library version mismatch: "
    )
    assert "(user-space NVML library 550.144)" in message
    assert message.endswith(
        "What to do: rent a GPU instance, or fix the NVIDIA driver as said above (check with "
        "nvidia-smi), or set vastllm_require_gpu: false to run on CPU."
    )


def test_role_fails_without_any_gpu_when_required(tmp_path: Path) -> None:
    done, results = role(tmp_path, "-e", "vastllm_require_gpu=true", double=False)
    assert done.returncode != 0
    message = " ".join(results[ROLE_TASKS[3]]["msg"].split())
    assert "Found: no NVIDIA GPU or driver (no libnvidia-ml.so.1, no nvidia-smi)" in message


def test_role_falls_back_to_cpu_in_check_mode(tmp_path: Path) -> None:
    done, results = role(tmp_path, "--check", scenario="no-devices")
    assert done.returncode == 0, done.stdout + done.stderr
    assert results[ROLE_TASKS[1]]["ansible_facts"] == {"vastllm_compute_mode": "cpu"}
    assert results[ROLE_TASKS[2]]["msg"].startswith(
        "CPU mode: The NVIDIA driver is loaded but reports no GPU ('No devices were found')"
    )
    assert results[ROLE_TASKS[3]]["skipped"] is True
