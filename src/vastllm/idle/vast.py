"""The Vast.ai side of the watcher: which instance, which key, and the one call it makes.

The calls go through the shared client (plugins/module_utils/vastai_api.py, the one place for
the API; the role installs it next to the watcher and :attr:`IdleSettings.api_client` names it).

The key is the instance's own: Vast.ai sets ``CONTAINER_API_KEY`` (a per-instance key) and
``CONTAINER_ID`` in every instance (vast-ai/docs, guides/instances/docker-environment.mdx,
"Predefined Variables"). They are in the environment of the container's first process; a
service started over SSH does not inherit them, so they are read from this process's
environment, else from ``/proc/1/environ``; only then from ``api_key_file`` (0600, written by the
role). The key is never logged, printed or put in an error message.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType
from typing import Protocol

from vastllm.idle.settings import IdleSettings

KEY_VAR = "CONTAINER_API_KEY"
ID_VAR = "CONTAINER_ID"


class Unconfigured(Exception):
    """No instance id, no key or no client: the watcher cannot act (says which, never a key)."""


class InstanceActions(Protocol):
    def stop(self, instance_id: int) -> None: ...
    def destroy(self, instance_id: int) -> bool: ...


def init_environment(path: Path) -> dict[str, str]:
    """The NUL-separated ``KEY=value`` pairs of ``path`` (``/proc/1/environ``); {} if unreadable."""
    try:
        raw = path.read_bytes()
    except OSError:
        return {}
    pairs = (item.decode("utf-8", "replace").partition("=") for item in raw.split(b"\0") if item)
    return {k: v for k, _, v in pairs if k}


def _lookup(name: str, settings: IdleSettings) -> str:
    value = os.environ.get(name, "").strip()
    return value or init_environment(settings.init_environ).get(name, "").strip()


def instance_id(settings: IdleSettings) -> int:
    """``instance_id`` from the settings, else Vast.ai's ``CONTAINER_ID``."""
    if settings.instance_id is not None:
        return settings.instance_id
    value = _lookup(ID_VAR, settings)
    if not value.isdigit():
        raise Unconfigured(
            f"no instance id: set VASTLLM_IDLE_INSTANCE_ID ({ID_VAR} is not in the environment)"
        )
    return int(value)


def api_key(settings: IdleSettings) -> tuple[str, str]:
    """(key, where it came from): the instance's ``CONTAINER_API_KEY``, else the key file."""
    key = os.environ.get(KEY_VAR, "").strip()
    if key:
        return key, KEY_VAR
    key = init_environment(settings.init_environ).get(KEY_VAR, "").strip()
    if key:
        return key, f"{KEY_VAR} of {settings.init_environ}"
    if settings.api_key_file is not None:
        try:
            key = settings.api_key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise Unconfigured(
                f"cannot read the key file {settings.api_key_file}: {exc.strerror}") from None
        if key:
            return key, str(settings.api_key_file)
    raise Unconfigured(f"no API key: {KEY_VAR} is not set and no key file was given")


def load_client_module(path: Path) -> ModuleType:
    """The shared client, loaded by its path (it is not part of this package)."""
    spec = importlib.util.spec_from_file_location("vastai_api", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise Unconfigured(f"no Vast.ai client at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def client(settings: IdleSettings) -> tuple[InstanceActions, ModuleType]:
    """A client for the instance's key, and the module (for its error classes)."""
    module = load_client_module(settings.api_client)
    key, _ = api_key(settings)
    actions: InstanceActions = module.Client(settings.api_url, key, user_agent="vastllm-idle")
    return actions, module
