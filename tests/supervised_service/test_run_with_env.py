"""supervised_service's launcher for supervisord (roles/supervised_service/files/run-with-env).

It starts a program with its env file and first kills what an earlier start of the same
service left behind (children that outlived a killed main process, as vLLM's engine core does
under supervisord), found by the VASTLLM_SERVICE marker; other services' processes stay.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support import REPO

LAUNCHER = REPO / "roles/supervised_service/files/run-with-env"


@pytest.fixture(autouse=True)
def _private_run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the launcher records process groups: not this machine's /run/vastllm."""
    monkeypatch.setenv("VASTLLM_RUN_DIR", str(tmp_path / "run"))


def _env_file(tmp_path: Path, service: str, **extra: str) -> Path:
    lines = [f'VASTLLM_SERVICE="{service}"'] + [f'{k}="{v}"' for k, v in extra.items()]
    path = tmp_path / f"{service}.env"
    path.write_text("\n".join(lines) + "\n")
    return path


def _sleeper(service: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "300"], env=dict(os.environ, VASTLLM_SERVICE=service))


def test_leftovers_of_the_same_service_are_killed_before_it_starts(tmp_path: Path) -> None:
    service = f"vastllm-test-{uuid.uuid4().hex[:8]}"
    other = f"vastllm-test-{uuid.uuid4().hex[:8]}"
    orphan, neighbour = _sleeper(service), _sleeper(other)
    try:
        result = subprocess.run(
            [sys.executable, str(LAUNCHER), str(_env_file(tmp_path, service, GREETING="hi")),
             "sh", "-c", 'echo "$GREETING from $VASTLLM_SERVICE"'],
            capture_output=True, text=True, timeout=30, check=True,
        )
        assert result.stdout.strip() == f"hi from {service}"
        assert f"killing 1 process(es) an earlier start of {service} left behind" in result.stderr
        assert orphan.wait(timeout=10) == -9
        assert neighbour.poll() is None  # another service's process is left alone
    finally:
        for proc in (orphan, neighbour):
            proc.kill()
            proc.wait()


def test_a_first_start_kills_nothing(tmp_path: Path) -> None:
    service = f"vastllm-test-{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        [sys.executable, str(LAUNCHER), str(_env_file(tmp_path, service)), "true"],
        capture_output=True, text=True, timeout=30, check=True,
    )
    assert result.stderr == ""


def test_children_without_the_marker_are_found_by_the_group_of_the_last_start(
    tmp_path: Path,
) -> None:
    """vLLM's engine core renames itself with setproctitle, which wipes its environment as /proc
    shows it: the process group recorded by the earlier start finds it."""
    service = f"vastllm-test-{uuid.uuid4().hex[:8]}"
    env_file = _env_file(tmp_path, service)
    run_env = dict(os.environ, VASTLLM_RUN_DIR=str(tmp_path / "run"))
    pid_file = tmp_path / "child.pid"
    # the first start leaves a child behind that carries no marker (env -i)
    subprocess.run(
        [sys.executable, str(LAUNCHER), str(env_file), "sh", "-c",
         f"env -i sleep 300 & echo $! > {pid_file}"],
        env=run_env, timeout=30, check=True,
    )
    child = int(pid_file.read_text())
    try:
        assert Path(f"/proc/{child}").exists()
        assert (tmp_path / "run" / f"{service}.pgid").is_file()
        result = subprocess.run(
            [sys.executable, str(LAUNCHER), str(env_file), "true"],
            env=run_env, capture_output=True, text=True, timeout=30, check=True,
        )
        assert f"left behind: {child}" in result.stderr
        for _ in range(100):
            if not Path(f"/proc/{child}").exists():
                break
            time.sleep(0.1)
        stat = Path(f"/proc/{child}/stat")
        assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, 9)


def test_settings_the_daemon_inherited_never_reach_the_service(tmp_path: Path) -> None:
    """A VASTLLM_* variable in supervisord's own environment (the shell that first started it
    held a demo's key) is dropped: the service gets its env file's settings and no other."""
    service = f"vastllm-test-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, VASTLLM_PROXY_API_KEYS="inherited-key", VASTLLM_PROXY_PORT="1")
    env_file = _env_file(tmp_path, service, VASTLLM_PROXY_PORT="8082")
    result = subprocess.run(
        [sys.executable, str(LAUNCHER), str(env_file),
         "sh", "-c", 'echo "keys=${VASTLLM_PROXY_API_KEYS:-none} port=$VASTLLM_PROXY_PORT"'],
        capture_output=True, text=True, timeout=30, check=True, env=env,
    )
    assert result.stdout.strip() == "keys=none port=8082"


def test_the_daemon_is_started_without_the_callers_secrets() -> None:
    """`supervisor env` is the environment `supervisor start` gives supervisord: the caller's
    without VASTLLM_* and secret-looking names, with the rest (HOME, LANG) kept."""
    door = REPO / "roles/supervised_service/files/supervisor"
    caller = {
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "VASTLLM_PROXY_API_KEYS": "k1",
        "VAST_API_KEY": "k2",
        "AWS_SECRET_ACCESS_KEY": "k3",
        "GITHUB_TOKEN": "k4",
        "REDIS_PASSWORD": "k5",
        "TRICKY": "line\nVASTLLM_FAKE=1",
        "CUDA_VISIBLE_DEVICES": "0",
    }
    result = subprocess.run(
        ["sh", str(door), "env"], capture_output=True, text=True, timeout=30, check=True, env=caller
    )
    names = {line.partition("=")[0] for line in result.stdout.splitlines()}
    assert {"HOME", "LANG", "CUDA_VISIBLE_DEVICES", "TRICKY", "PATH"} <= names
    assert not any(f"k{n}" in result.stdout for n in range(1, 6)), result.stdout
    assert "VASTLLM_PROXY_API_KEYS" not in names
