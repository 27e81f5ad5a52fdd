"""Settings files shared by the services: a JSON or YAML mapping named by an environment
variable, read as a pydantic-settings source below the environment itself."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource


class ConfigFileError(ValueError):
    """A settings file cannot be read or parsed, or holds no mapping."""


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a JSON (``.json``) or YAML mapping; raise ConfigFileError naming the path."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigFileError(f"cannot read config file {path}: {e.strerror}") from e
    data: object
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as e:
            raise ConfigFileError(f"cannot parse config file {path}: {e}") from e
    else:
        try:
            import yaml  # noqa: PLC0415 - optional dependency, only for YAML files
        except ImportError as e:
            raise ConfigFileError(
                f"config file {path} is YAML but PyYAML is not installed; use JSON or install it"
            ) from e
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigFileError(f"cannot parse config file {path}: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigFileError(f"config file {path} must hold a mapping, got {type(data).__name__}")
    return data


class ConfigFileSource(PydanticBaseSettingsSource):
    """Settings source reading the file named by the environment variable ``env_var``, if set."""

    def __init__(self, settings_cls: type[BaseSettings], env_var: str) -> None:
        super().__init__(settings_cls)
        raw = os.environ.get(env_var, "").strip()
        self._data = read_config_file(Path(raw)) if raw else {}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}
