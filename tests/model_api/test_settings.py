"""Settings: defaults, VASTLLM_MODEL_API_* variables, the JSON/YAML config file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from vastllm.config_file import ConfigFileError
from vastllm.model_api.settings import ModelApiSettings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("VASTLLM_MODEL_API_"):
            monkeypatch.delenv(key)


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VASTLLM_MODEL_API_MODEL_PATH", str(tmp_path / "mistral-ft"))
    s = ModelApiSettings()
    assert (s.host, s.port, s.dtype, s.device) == ("127.0.0.1", 8081, "auto", "auto")
    assert s.max_concurrent is None
    assert s.context_length is None
    assert s.served_model_id == "mistral-ft"


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VASTLLM_MODEL_API_MODEL_PATH", "/models/x")
    monkeypatch.setenv("VASTLLM_MODEL_API_MODEL_ID", "served")
    monkeypatch.setenv("VASTLLM_MODEL_API_PORT", "9000")
    monkeypatch.setenv("VASTLLM_MODEL_API_DTYPE", "float16")
    monkeypatch.setenv("VASTLLM_MODEL_API_MAX_QUEUE", "0")
    monkeypatch.setenv("VASTLLM_MODEL_API_LOG_LEVEL", "DEBUG")
    s = ModelApiSettings()
    assert (s.served_model_id, s.port, s.dtype, s.max_queue) == ("served", 9000, "float16", 0)
    assert s.log_level == "debug"


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_config_file_under_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, suffix: str
) -> None:
    data = {"model_path": "/models/from-file", "port": 8500, "max_concurrent": 3}
    cfg = tmp_path / f"model-api{suffix}"
    cfg.write_text(
        json.dumps(data)
        if suffix == ".json"
        else "model_path: /models/from-file\nport: 8500\nmax_concurrent: 3\n"
    )
    monkeypatch.setenv("VASTLLM_MODEL_API_CONFIG", str(cfg))
    monkeypatch.setenv("VASTLLM_MODEL_API_PORT", "8600")
    s = ModelApiSettings()
    assert s.model_path == Path("/models/from-file")
    assert s.port == 8600  # the environment wins over the file
    assert s.max_concurrent == 3


def test_unreadable_and_wrong_config_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VASTLLM_MODEL_API_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigFileError, match="cannot read config file"):
        ModelApiSettings()
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    monkeypatch.setenv("VASTLLM_MODEL_API_CONFIG", str(listed))
    with pytest.raises(ConfigFileError, match="must hold a mapping"):
        ModelApiSettings()


@pytest.mark.parametrize(
    ("key", "value"),
    [("DTYPE", "int8"), ("PORT", "0"), ("MAX_CONCURRENT", "0"), ("MODEL_PATH", " ")],
)
def test_invalid_values(monkeypatch: pytest.MonkeyPatch, key: str, value: str) -> None:
    monkeypatch.setenv("VASTLLM_MODEL_API_MODEL_PATH", "/models/x")
    monkeypatch.setenv(f"VASTLLM_MODEL_API_{key}", value)
    with pytest.raises(ValidationError):
        ModelApiSettings()
