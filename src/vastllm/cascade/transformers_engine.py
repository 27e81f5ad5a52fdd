"""Adapter for the torch path: model tarballs in S3 fetched by ``python -m vastllm.fetch`` into
``<models_dir>/<name>``, served by vastllm's model API at an OpenAI-compatible URL.

The model API serves one model directory, chosen when it starts; starting it on the chosen
directory is the role's job. The smoke tests therefore talk to whatever it serves at
``base_url`` under the candidate's name.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from vastllm.cascade.candidates import Candidate
from vastllm.cascade.chat import OpenAIChat
from vastllm.cascade.errors import EngineError
from vastllm.cascade.progress import ProgressFn, PullProgress
from vastllm.defaults import MODEL_API_PORT, MODELS_DIR

MARKER_NAME = ".vastllm-fetch.json"  # written by vastllm.fetch when a model is installed
DEFAULT_URL = f"http://127.0.0.1:{MODEL_API_PORT}"


def model_dir_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


class TransformersEngine:
    name = "transformers"

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        models_dir: str | Path = MODELS_DIR,
        *,
        api_key: str | None = None,
        fetch_command: Sequence[str] = (sys.executable, "-m", "vastllm.fetch"),
        fetch_timeout: float = 6 * 3600.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.models_dir = Path(models_dir)
        self.fetch_command = list(fetch_command)
        self.fetch_timeout = fetch_timeout
        self._api_key = api_key

    def dest(self, candidate: Candidate) -> Path:
        return self.models_dir / model_dir_name(candidate.name)

    def is_present(self, candidate: Candidate) -> bool:
        return (self.dest(candidate) / MARKER_NAME).is_file()

    def ensure(self, candidate: Candidate, progress: ProgressFn) -> bool:
        if self.is_present(candidate):
            return False
        command = [
            *self.fetch_command,
            "--url",
            candidate.source,
            "--dest",
            str(self.dest(candidate)),
            "--json",
        ]
        if candidate.sha256:
            command += ["--sha256", candidate.sha256]
        last_error = ""
        with subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        ) as proc:
            assert proc.stderr is not None  # noqa: S101 - PIPE above
            for raw in proc.stderr:
                line = raw.strip()
                if not line:
                    continue
                if line.startswith("error:"):
                    last_error = line[len("error:") :].strip()
                progress(PullProgress(candidate.name, line))
            try:
                stdout = proc.communicate(timeout=self.fetch_timeout)[0] or ""
            except subprocess.TimeoutExpired as exc:
                proc.kill()
                raise EngineError(
                    f"fetch failed: no result after {self.fetch_timeout:g} s"
                ) from exc
        if proc.returncode != 0:
            reason = last_error
            with contextlib.suppress(ValueError, AttributeError):
                reason = reason or str(json.loads(stdout).get("error") or "")
            raise EngineError(f"fetch failed: {reason or f'exit status {proc.returncode}'}")
        progress(PullProgress(candidate.name, "success"))
        return True

    def chat_client(self) -> OpenAIChat:
        return OpenAIChat(self.base_url, self._api_key)

    def sends_num_ctx(self) -> bool:
        return False

    def reclaimable_vram_bytes(self) -> int:
        return 0

    def residency_problem(self, candidate: Candidate) -> str | None:
        return None

    def native_context(self, candidate: Candidate) -> int | None:
        return None

    def release(self, candidate: Candidate) -> None:
        return None
