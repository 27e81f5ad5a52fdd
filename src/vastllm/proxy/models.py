"""Which upstream model a client's model name means: alias table plus the active model file.

``aliases`` maps a client name (exact, or an ``fnmatch`` pattern such as ``claude-*``) to an
upstream model name, or to ``@active``: the model named in ``active_model_file`` (a JSON file
``{"name": ..., "engine": "ollama"|"openai"|"anthropic", "context_length": N, ...}``, re-read
whenever its mtime or size changes), else ``default_model``. ``engine`` is the wire protocol the
model is served over: requests for it go to upstreams of that kind. Names that match nothing
pass through unchanged, with ``context_length`` and ``default_engine`` (the workstation
gateway: ``anthropic``, so that everything passes through to the GPU hosts' own proxies).
"""

from __future__ import annotations

import fnmatch
import logging
import os
from pathlib import Path

import orjson

from vastllm.proxy.errors import NotFound
from vastllm.proxy.neutral import ModelTarget
from vastllm.proxy.settings import ProxySettings

log = logging.getLogger(__name__)

ACTIVE = "@active"
ENGINES = ("ollama", "openai", "anthropic")


class ModelCatalog:
    """Resolves client model names; cheap enough to call on every request."""

    def __init__(self, settings: ProxySettings) -> None:
        self._exact: dict[str, str] = {}
        self._patterns: list[tuple[str, str]] = []
        for name, target in settings.aliases.items():
            if any(c in name for c in "*?["):
                self._patterns.append((name, target))
            else:
                self._exact[name] = target
        self._file = Path(settings.active_model_file)
        self._default_ctx = settings.context_length
        self._default_engine = settings.default_engine
        self._default = (
            ModelTarget(settings.default_model, settings.default_engine, settings.context_length)
            if settings.default_model
            else None
        )
        self._file_sig: tuple[int, int] | None = None
        self._file_model: ModelTarget | None = None

    def active(self) -> ModelTarget | None:
        """The active model: from the file when it is valid, else the default model."""
        try:
            st = os.stat(self._file)
        except OSError:
            self._file_sig, self._file_model = None, None
            return self._default
        sig = (st.st_mtime_ns, st.st_size)
        if sig != self._file_sig:
            self._file_sig = sig
            self._file_model = self._read_file()
        return self._file_model or self._default

    def _read_file(self) -> ModelTarget | None:
        try:
            data = orjson.loads(self._file.read_bytes())
            name = data["name"]
            engine = data.get("engine")
            ctx = data.get("context_length") or self._default_ctx
            if not isinstance(name, str) or not name:
                raise ValueError("'name' must be a non-empty string")
            if engine is not None and engine not in ENGINES:
                raise ValueError(f"'engine' must be one of {ENGINES}")
            if not isinstance(ctx, int) or ctx < 1:
                raise ValueError("'context_length' must be a positive integer")
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("ignoring active model file %s: %s", self._file, e)
            return None
        return ModelTarget(name, engine, ctx)

    def resolve(self, requested: str) -> ModelTarget:
        target = self._exact.get(requested)
        if target is None:
            for pattern, t in self._patterns:
                if fnmatch.fnmatchcase(requested, pattern):
                    target = t
                    break
        active = self.active()
        if target is None:
            if not requested:
                target = ACTIVE
            elif active is not None and requested == active.name:
                return active
            else:
                return ModelTarget(requested, self._default_engine, self._default_ctx)
        if target == ACTIVE:
            if active is None:
                raise NotFound(
                    f"model '{requested or '(none)'}' maps to the active model, but none is "
                    f"active: write {self._file} or set VASTLLM_PROXY_DEFAULT_MODEL"
                )
            return active
        if active is not None and target == active.name:
            return active
        return ModelTarget(target, self._default_engine, self._default_ctx)

    def listed(self) -> list[str]:
        """Model ids worth listing in /v1/models: the active model and exact aliases."""
        names: list[str] = []
        active = self.active()
        if active is not None:
            names.append(active.name)
        names.extend(n for n in self._exact if n not in names)
        return names
