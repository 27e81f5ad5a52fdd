"""Adapters for the engines that serve a model directory: tarballs in S3 fetched by
``python -m vastllm.fetch`` into ``<models_dir>/<name>``, served at an OpenAI-compatible URL by
vastllm's transformers model API (``TransformersEngine``) or by vLLM (``VllmEngine``).

Each server serves one model directory, chosen when it starts; starting it on the chosen
directory is its role's job (``model_api``, ``vllm``). So the adapter checks that the server at
``base_url`` serves the candidate (``GET /v1/models`` lists its name) before the smoke tests,
and reads the context length the server settled on from that list (vLLM's ``max_model_len``,
the model API's ``context_length``).
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
from vastllm.cascade.clients import OpenAIChat
from vastllm.cascade.errors import EngineError
from vastllm.cascade.http import request_json
from vastllm.cascade.progress import ProgressFn, PullProgress
from vastllm.defaults import MODEL_API_PORT, MODELS_DIR, VLLM_PORT

MARKER_NAME = ".vastllm-fetch.json"  # written by vastllm.fetch when a model is installed
MODEL_API_URL = f"http://127.0.0.1:{MODEL_API_PORT}"
VLLM_URL = f"http://127.0.0.1:{VLLM_PORT}"


def model_dir_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


class FetchedModelEngine:
    """Fetch from S3, serve by the server at ``base_url`` (its role started it)."""

    name = ""
    served_by = ""
    wire = "openai"
    default_url = ""
    role_hint = ""  # how to make the server serve another model, for the skip reason

    def __init__(
        self,
        base_url: str = "",
        models_dir: str | Path = MODELS_DIR,
        *,
        api_key: str | None = None,
        fetch_command: Sequence[str] = (sys.executable, "-m", "vastllm.fetch"),
        fetch_timeout: float = 6 * 3600.0,
        wire: str | None = None,
    ) -> None:
        self.base_url = (base_url or self.default_url).rstrip("/")
        if wire is not None:
            self.wire = wire
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
        if candidate.allow_unverified:
            command.append("--allow-unverified")
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
        """The context length the server serves the candidate with; EngineError when the server
        serves another model (the smoke tests would test that one)."""
        cards = self._served(candidate)
        for card in cards:
            if card.get("id") == candidate.model_id:
                length = card.get("max_model_len") or card.get("context_length")
                return length if isinstance(length, int) and length > 0 else None
        served = ", ".join(str(c.get("id")) for c in cards) or "no model"
        raise EngineError(
            f"the {self.served_by} server at {self.base_url} serves {served}, not "
            f"{candidate.model_id}: "
            + self.role_hint.format(name=model_dir_name(candidate.name), source=candidate.source)
        )

    def _served(self, candidate: Candidate) -> list[dict[str, object]]:
        base = self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else None
        data = request_json("GET", base + "/v1/models", timeout=30.0, headers=headers)
        cards = data.get("data") if isinstance(data, dict) else None
        return [c for c in cards if isinstance(c, dict)] if isinstance(cards, list) else []

    def release(self, candidate: Candidate) -> None:
        return None


class TransformersEngine(FetchedModelEngine):
    name = "transformers"
    served_by = "model_api"
    default_url = MODEL_API_URL
    role_hint = (
        "serve it first (ansible-playbook site.yml -e vastllm_engine=transformers "
        "-e model_fetch_url={source} -e model_fetch_name={name})"
    )


class VllmEngine(FetchedModelEngine):
    """``wire``: the API the proxy speaks to vLLM (the vllm role's ``vllm_api``)."""

    name = "vllm"
    served_by = "vllm"
    wire = "anthropic"
    default_url = VLLM_URL
    role_hint = (
        "serve it first (ansible-playbook site.yml -e vastllm_engine=vllm "
        "-e model_fetch_url={source} -e model_fetch_name={name})"
    )
