"""Start-up and failure modes: loading state, load errors, busy port, bad settings."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.model_api.conftest import server_env
from tests.support import REPO, free_port

QUESTION = {
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
    "max_tokens": 2,
    "temperature": 0,
}


def run_entry_point(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the server entry point with only ``env``'s VASTLLM_MODEL_API_* settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("VASTLLM_MODEL_API_")}
    return subprocess.run(
        [sys.executable, "-m", "vastllm.model_api"],
        cwd=REPO,
        env={**base, "HF_HUB_OFFLINE": "1", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_health_says_loading_until_the_model_is_ready(
    test_model_dir: Path, start_server: Any
) -> None:
    srv = start_server(server_env(test_model_dir))
    # The first answer comes while the loader thread still imports torch and reads weights.
    deadline = time.monotonic() + 30
    first = srv.health()
    while first is None and time.monotonic() < deadline:
        time.sleep(0.01)
        first = srv.health()
    assert first is not None, srv.log()
    code, body = first
    assert (code, body["status"], body["healthy"]) == (503, "loading", False)
    assert body["model"] == test_model_dir.name  # default served id: the directory's name
    assert body["device"] is None
    assert body["queue"]["active"] == 0
    early = httpx.post(f"{srv.url}/v1/chat/completions", json=QUESTION, timeout=30)
    ready = srv.wait_health("ready")
    # the early request was either refused as "loading" or (if loading won the race) served
    if early.status_code == 503:
        assert early.headers["retry-after"] == "5"
        assert early.json()["error"]["code"] == "model_loading"
    else:
        assert early.status_code == 200, early.text
    assert ready["device"] == "cpu"
    assert ready["context_length"] == 8192  # from the model's config.json
    models = httpx.get(f"{srv.url}/v1/models").json()
    assert models["data"][0]["id"] == test_model_dir.name


def test_load_failure_is_reported(tmp_path: Path, start_server: Any) -> None:
    missing = tmp_path / "no-such-model"
    srv = start_server(server_env(missing))
    body = srv.wait_health("error")
    assert str(missing) in body["reason"]
    code, _ = srv.health() or (0, {})
    assert code == 503
    r = httpx.post(f"{srv.url}/v1/chat/completions", json=QUESTION, timeout=30)
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "model_load_failed"
    assert str(missing) in r.json()["error"]["message"]


def test_busy_port_fails_fast_with_a_clear_message(test_model_dir: Path) -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = run_entry_point(server_env(test_model_dir) | {"VASTLLM_MODEL_API_PORT": str(port)})
    assert done.returncode == 2, done.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_model_path_is_a_usage_error() -> None:
    done = run_entry_point({})
    assert done.returncode == 2
    assert "VASTLLM_MODEL_API_MODEL_PATH" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_config_file_is_a_usage_error(tmp_path: Path) -> None:
    cfg = tmp_path / "model-api.yaml"
    cfg.write_text("model_path: [unclosed\n")
    done = run_entry_point({"VASTLLM_MODEL_API_CONFIG": str(cfg)})
    assert done.returncode == 2
    assert f"cannot parse config file {cfg}" in done.stderr
