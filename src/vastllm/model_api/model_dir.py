"""Cheap checks of a model directory, done before torch is even imported."""

from __future__ import annotations

from pathlib import Path

from vastllm.model_api.generation import EngineLoadError


def check_model_dir(path: Path) -> None:
    """Raise EngineLoadError unless ``path`` looks like a transformers model directory."""
    if not path.is_dir():
        raise EngineLoadError(f"model_path {path} is not a directory")
    if not (path / "config.json").is_file():
        raise EngineLoadError(f"model_path {path} has no config.json")
