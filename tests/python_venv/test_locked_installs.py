"""Locked installs (requirements/*.txt, scripts/lock.sh): every virtualenv installs exact
versions with their sha256 hashes (pip --require-hashes), and an extra index reaches only the
package that needs it (torch's flavour index, roles/model_api/tasks/runtime.yml).

pip runs for real in temporary venvs against the controller's wheelhouse (.venv/wheelhouse-path,
filled from the locks by scripts/venv.sh) with no index; the role task files run in
ansible-playbook on this machine (connection local), with a stand-in pip that records its
arguments where the test is about them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.markers import Marker, default_environment
from packaging.utils import canonicalize_name, parse_wheel_filename

from tests.support import REPO

PLAYBOOK_BIN = REPO / ".venv/bin/ansible-playbook"
LOCKS = REPO / "requirements"
HASH_ERROR = "THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE"
# what a stand-in pip and python print; the pip records each argv as one JSON line
FAKE_PIP = """#!{python}
import json, sys
with open({log!r}, "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
print("Successfully installed something")
"""
FAKE_PYTHON = """#!/bin/sh
echo '{"version": "2.13.0", "cuda": true}'
"""


def wheelhouse() -> Path:
    path = REPO / ".venv" / "wheelhouse-path"
    if not path.exists():
        pytest.fail(".venv/wheelhouse-path is missing: run scripts/venv.sh (make setup)")
    return Path(path.read_text().strip())


def tampered(lock: Path, dest: Path) -> Path:
    """The lock with every hash of its first package replaced by a wrong one."""
    text = lock.read_text()
    first = re.search(
        r"^[a-z0-9][^\n]*==[^\n]*\\\n(?:    --hash=sha256:[0-9a-f]{64}[ \\]*\n)+", text, re.M
    )
    assert first is not None, f"no locked package in {lock}"
    block = re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, first.group(0))
    dest.write_text(text.replace(first.group(0), block))
    return dest


def run_play(
    tmp: Path, tasks: list[dict[str, Any]], extra: dict[str, Any], *options: str
) -> tuple[int, str]:
    playbook = tmp / "play.yml"
    playbook.write_text(yaml.safe_dump(
        [{"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": tasks}]
    ))
    env = {**os.environ, "ANSIBLE_CACHE_PLUGIN": "memory", "ANSIBLE_NOCOLOR": "1"}
    # the lock files and the project's wheel go below tmp, not to /opt/vastllm of this machine
    extra = {"ansible_python_interpreter": sys.executable,
             "_python_venv_lock_dest": str(tmp / "locks" / "lock.txt"),
             "_python_venv_wheel": str(tmp / "dist" / "vastllm-0.1.0-py3-none-any.whl"), **extra}
    result = subprocess.run(
        [str(PLAYBOOK_BIN), "-i", "localhost,", str(playbook), "-e", json.dumps(extra), *options],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    return result.returncode, result.stdout + result.stderr


# -- the lock files --------------------------------------------------------------------------


def test_the_lock_files_are_up_to_date_with_pyproject() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts/lock.py"), "--check"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", ["dev", "proxy", "fetch", "cascade", "model-api", "vllm-cpu"])
def test_every_venv_has_a_lock_with_a_hash_for_each_pinned_package(name: str) -> None:
    text = (LOCKS / f"{name}.txt").read_text().replace("\\\n", " ")
    requirements = [line for line in text.splitlines() if line and not line.startswith(("#", " "))]
    assert requirements
    for line in requirements:
        assert re.match(r"^[A-Za-z0-9._-]+==\S+", line), line
        assert "--hash=sha256:" in line, line


def test_the_runtime_lock_leaves_torch_and_its_cuda_stack_to_the_flavour_index() -> None:
    names = re.findall(r"^([a-z0-9._-]+)==", (LOCKS / "model-api.txt").read_text(), re.M)
    assert "transformers" in names
    assert "sympy" in names  # torch's own pure-Python dependencies are locked
    assert not [n for n in names if re.match(r"^(torch|triton|nvidia-.*|cuda-.*)$", n)]


def test_torch_is_pinned_to_the_cpu_wheel_hash_on_the_controller_and_exactly_on_hosts() -> None:
    defaults = yaml.safe_load((REPO / "roles/model_api/defaults/main.yml").read_text())
    assert defaults["torch_runtime_torch_spec"] == "torch==2.13.0"
    dev = (LOCKS / "dev.txt").read_text()
    assert re.search(r"^torch==2\.13\.0\+cpu \\\n    --hash=sha256:[0-9a-f]{64}$", dev, re.M)


# -- pip's hash check --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    return venv / "bin" / "pip"


def pip_install(pip: Path, lock: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(pip), "install", "--require-hashes", "--no-deps", "--no-index",
         "--find-links", str(wheelhouse()), "--disable-pip-version-check", "-r", str(lock)],
        capture_output=True, text=True, check=False, timeout=300,
    )


def test_a_lock_with_a_wrong_hash_fails_the_install(pip: Path, tmp_path: Path) -> None:
    result = pip_install(pip, tampered(LOCKS / "cascade.txt", tmp_path / "cascade.txt"))
    assert result.returncode != 0
    assert HASH_ERROR in result.stdout + result.stderr


def test_the_lock_installs_from_the_wheelhouse_with_no_index(pip: Path) -> None:
    result = pip_install(pip, LOCKS / "proxy.txt")
    assert result.returncode == 0, (
        f"{result.stdout}{result.stderr}\nthe wheelhouse lacks a locked version: make setup"
    )
    # --no-deps resolved nothing: the lock itself must hold every dependency
    check = subprocess.run([str(pip), "check"], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout


def test_the_runtime_lock_and_torch_alone_make_a_complete_venv(tmp_path: Path) -> None:
    """What model_api installs on a CPU host: the lock, then torch at its pin (here from the
    wheelhouse, as on Molecule hosts); pip check finds nothing missing."""
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "v")], check=True)
    pip = tmp_path / "v" / "bin" / "pip"
    result = pip_install(pip, LOCKS / "model-api.txt")
    assert result.returncode == 0, result.stdout + result.stderr
    torch = subprocess.run(
        [str(pip), "install", "--no-index", "--find-links", str(wheelhouse()),
         "--disable-pip-version-check", "torch==2.13.0"],
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert torch.returncode == 0, torch.stdout + torch.stderr
    # torch took nothing but itself: its dependencies were all in the lock
    installed = re.findall(r"^Successfully installed (.*)$", torch.stdout, re.M)
    assert installed == ["torch-2.13.0+cpu"], torch.stdout
    check = subprocess.run([str(pip), "check"], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout


def test_the_role_installs_the_extras_lock_with_hashes_then_the_project_without_deps(
    tmp_path: Path,
) -> None:
    venv = tmp_path / "venv"
    tasks = [{"ansible.builtin.include_role": {"name": "python_venv"}}]
    # the cascade extra's lock is requirements/cascade.txt; offline, as Molecule hosts install
    extra = {"python_venv_path": str(venv), "python_venv_project_extras": ["cascade"],
             "vastllm_pip_find_links": [str(wheelhouse())], "vastllm_pip_no_index": True}
    rc, out = run_play(tmp_path, tasks, extra, "--check")
    assert rc == 0, out
    assert not venv.exists()

    rc, out = run_play(tmp_path, tasks, {**extra, "_python_venv_lock_src": str(
        tampered(LOCKS / "cascade.txt", tmp_path / "cascade.txt"))})
    assert rc != 0
    assert HASH_ERROR in out

    rc, out = run_play(tmp_path, tasks, extra)
    assert rc == 0, out
    subprocess.run([str(venv / "bin/python"), "-c", "import yaml, vastllm.cascade"], check=True)
    rc, out = run_play(tmp_path, tasks, extra)
    assert rc == 0, out
    assert re.search(r"changed=0\b", out), out


# -- which install the torch index reaches ------------------------------------------------------


def runtime_pip_calls(tmp: Path, **extra: Any) -> list[list[str]]:
    """Run roles/model_api/tasks/runtime.yml with a stand-in pip and python in the venv; return
    the argv of each pip call."""
    venv = tmp / "runtime"
    (venv / "bin").mkdir(parents=True)
    log = tmp / "pip.log"
    for name, text in (("pip", FAKE_PIP.format(python=sys.executable, log=str(log))),
                       ("python", FAKE_PYTHON)):
        (venv / "bin" / name).write_text(text)
        (venv / "bin" / name).chmod(0o755)
    gpu = {"mode": "gpu", "cuda_version": "12.8", "driver_version": "570.1", "gpu_count": 1}
    tasks = [{"ansible.builtin.include_role": {"name": "model_api", "tasks_from": "runtime"}}]
    rc, out = run_play(tmp, tasks, {"torch_runtime_venv": str(venv), "vastllm_gpu": gpu, **extra})
    assert rc == 0, out
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_only_torch_is_installed_from_the_flavour_index(tmp_path: Path) -> None:
    calls = runtime_pip_calls(tmp_path, torch_runtime_packages=["rich==14.0.0"])
    index = "https://download.pytorch.org/whl/cu128"
    with_index = [c for c in calls if any(index in a for a in c)]
    assert len(with_index) == 1, calls
    torch = with_index[0]
    # torch alone, at its exact pin, with that index as the only one (not an extra index)
    first_option = next(i for i, a in enumerate(torch) if a.startswith("-"))
    assert torch[1:first_option] == ["torch==2.13.0"]
    assert torch[torch.index("--index-url") + 1] == index
    assert not [a for c in calls for a in c if a.startswith("--extra-index-url")], calls
    # the lock first, hash-checked and resolving nothing, then the extra package, unlocked
    lock = calls[0]
    assert lock[:4] == ["install", "--require-hashes", "--no-deps", "-r"]
    assert calls.index(lock) < calls.index(torch)
    assert [c for c in calls if "rich==14.0.0" in c and not any(index in a for a in c)]


def test_a_cpu_host_takes_torch_from_the_cpu_index_and_the_rest_from_the_lock(
    tmp_path: Path,
) -> None:
    calls = runtime_pip_calls(tmp_path, torch_runtime_flavour="cpu")
    assert len(calls) == 2, calls
    assert calls[0][:4] == ["install", "--require-hashes", "--no-deps", "-r"]
    assert "download.pytorch.org" not in " ".join(calls[0])
    assert calls[1][calls[1].index("--index-url") + 1] == "https://download.pytorch.org/whl/cpu"


# -- the controller's venv and wheelhouse (scripts/venv.sh) ------------------------------------


def locked(name: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """name -> version of the lock's requirements whose marker holds in env (default: here)."""
    text = (LOCKS / f"{name}.txt").read_text().replace("\\\n", " ")
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9._-]+)==([^ ;]+)\s*(?:;\s*(.*?))?\s*--hash", line)
        if m and (not m.group(3) or Marker(m.group(3)).evaluate(env)):
            out[canonicalize_name(m.group(1))] = m.group(2)
    return out


def test_the_controller_venv_holds_exactly_the_dev_lock() -> None:
    result = subprocess.run(
        [str(REPO / ".venv/bin/python"), "-c",
         "import importlib.metadata as m, json;"
         " print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"],
        capture_output=True, text=True, check=True,
    )
    installed = {canonicalize_name(k): v for k, v in json.loads(result.stdout).items()}
    installed.pop("vastllm")
    assert installed == locked("dev")
    check = subprocess.run([str(REPO / ".venv/bin/pip"), "check"], capture_output=True, text=True,
                           check=False)
    assert check.returncode == 0, check.stdout


def test_the_wheelhouse_holds_the_locked_files_of_every_venv_for_the_test_hosts_python() -> None:
    host = {**default_environment(), "python_full_version": "3.11.2", "python_version": "3.11"}
    files = {
        (canonicalize_name(parse_wheel_filename(p.name)[0]), str(parse_wheel_filename(p.name)[1]))
        for p in wheelhouse().glob("*.whl")
    }
    every: set[tuple[str, str]] = set()
    for name in ["dev", "proxy", "fetch", "cascade", "model-api"]:
        for env in (None, host):
            want = set(locked(name, env).items())
            assert want <= files, f"{name}: not in the wheelhouse: {sorted(want - files)}"
            every |= want
    assert files <= every, f"in the wheelhouse, in no lock: {sorted(files - every)}"
