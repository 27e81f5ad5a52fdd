"""Fixtures: the real test model, and real model API servers on loopback ports.

A server is ``.venv/bin/python -m vastllm.model_api`` in a subprocess, configured through
``VASTLLM_MODEL_API_*`` variables, its output kept in a log file that tests may read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.model import ensure_test_model
from tests.support import REPO, free_port

# The main server has a deliberately small context window, so the max_tokens cap and the
# prompt-too-long error are cheap to reach; the model's own (8192) is checked elsewhere.
MAIN_CONTEXT = 64


class Server:
    """A model API server subprocess."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = int(env["VASTLLM_MODEL_API_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **env}
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vastllm.model_api"],
            cwd=REPO,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def health(self) -> tuple[int, dict[str, Any]] | None:
        """(status code, body) of GET /health, or None while nothing answers."""
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=5) as r:  # noqa: S310
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())
        except OSError:
            return None

    def wait_health(self, want: str, timeout: float = 90.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.log()}")
            last = self.health()
            if last is not None and last[1].get("status") == want:
                return last[1]
            time.sleep(0.05)
        raise AssertionError(f"/health never said {want!r} (last: {last}):\n{self.log()}")

    def wait_queue(
        self, *, active: int, waiting: int, running: int | None = None, timeout: float = 30.0
    ) -> None:
        """Until /health's queue says so (``running`` too when given)."""
        want = {"active": active, "waiting": waiting}
        if running is not None:
            want["running"] = running
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            got = self.health()
            if got is not None:
                last = got[1]["queue"]
                if all(last.get(k) == v for k, v in want.items()):
                    return
            time.sleep(0.05)
        raise AssertionError(f"queue never reached {want}: {last}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def server_env(model_dir: Path, **settings: object) -> dict[str, str]:
    env = {
        "VASTLLM_MODEL_API_MODEL_PATH": str(model_dir),
        "VASTLLM_MODEL_API_PORT": str(free_port()),
        "VASTLLM_MODEL_API_HOST": "127.0.0.1",
        # one torch thread: on a small shared CI box, two spinning threads fight the test
        # process and other servers (measured here: 1 tok/s with 2 threads vs 12 with 1)
        "VASTLLM_MODEL_API_CPU_THREADS": "1",
    }
    env.update({f"VASTLLM_MODEL_API_{k.upper()}": str(v) for k, v in settings.items()})
    return env


@pytest.fixture(scope="session")
def test_model_dir() -> Path:
    return ensure_test_model()


@pytest.fixture(scope="session")
def start_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Any]:
    """Factory: ``start_server(env) -> Server``; every server is stopped at session end."""
    started: list[Server] = []

    def start(env: dict[str, str]) -> Server:
        log = tmp_path_factory.mktemp("model-api") / "server.log"
        server = Server(env, log)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def server(test_model_dir: Path, start_server: Any) -> Server:
    """The main server: ready, model id ``smollm2``, context window MAIN_CONTEXT."""
    srv: Server = start_server(
        server_env(
            test_model_dir,
            model_id="smollm2",
            context_length=MAIN_CONTEXT,
            max_concurrent=1,
            max_queue=8,
        )
    )
    srv.wait_health("ready")
    return srv
