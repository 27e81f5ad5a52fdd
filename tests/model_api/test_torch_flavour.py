"""model_api's runtime (roles/model_api/tasks/flavour.yml) picks torch's build from the driver's
CUDA version (gpu_facts), run by Ansible."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

PLAY = """
- hosts: localhost
  gather_facts: false
  vars:
    torch_runtime_flavour: {forced}
  tasks:
    - ansible.builtin.set_fact:
        vastllm_gpu: {gpu}
    - ansible.builtin.include_role:
        name: model_api
        tasks_from: flavour.yml
    - ansible.builtin.debug:
        msg: "FLAVOUR={{{{ _model_api_torch_flavour }}}}"
"""


def _pick(
    tmp_path: Path, gpu: dict[str, object], forced: str = "auto"
) -> subprocess.CompletedProcess[str]:
    play = tmp_path / "play.yml"
    play.write_text(PLAY.format(gpu=json.dumps(gpu), forced=forced))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0")
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
         str(play)],
        capture_output=True, text=True, cwd=REPO, env=env, check=False,
    )


@pytest.mark.parametrize(
    ("gpu", "expected"),
    [
        ({"mode": "cpu", "cuda_version": None}, "cpu"),
        ({"mode": "gpu", "cuda_version": "12.4", "driver_version": "550.90.07"}, "cu124"),
        ({"mode": "gpu", "cuda_version": "12.5", "driver_version": "555.85"}, "cu124"),
        ({"mode": "gpu", "cuda_version": "13.1", "driver_version": "590.48.01"}, "cu130"),
        ({"mode": "gpu", "cuda_version": "13.3", "driver_version": "610.57.04"}, "cu130"),
        ({"mode": "gpu", "cuda_version": "11.8", "driver_version": "520.61.05"}, "cu118"),
    ],
    ids=["cpu-mode", "cuda-12.4", "cuda-12.5-wsl2", "cuda-13.1", "cuda-13.3-driver-610",
         "cuda-11.8"],
)
def test_flavour_follows_the_drivers_cuda_version(tmp_path, gpu, expected):
    result = _pick(tmp_path, gpu)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"FLAVOUR={expected}" in result.stdout


def test_forced_flavour_wins(tmp_path):
    result = _pick(tmp_path, {"mode": "gpu", "cuda_version": "12.4"}, forced="cpu")
    assert "FLAVOUR=cpu" in result.stdout


def test_driver_older_than_every_build_is_a_clear_failure(tmp_path):
    result = _pick(tmp_path, {"mode": "gpu", "cuda_version": "11.2", "driver_version": "460.32.03"})
    assert result.returncode != 0
    assert "supports CUDA 11.2, older than the oldest torch build" in result.stdout
