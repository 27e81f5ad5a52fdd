"""Ollama adapter: ``/api/tags`` (present?), ``/api/pull`` (NDJSON progress), ``/api/show``
(native context), ``/api/ps`` (resident in VRAM?) and ``/api/chat`` for the smoke tests."""

from __future__ import annotations

import contextlib
from typing import Any

from vastllm.busy import busy
from vastllm.cascade.candidates import Candidate, ollama_name
from vastllm.cascade.clients import OllamaChat
from vastllm.cascade.errors import EngineError
from vastllm.cascade.http import ndjson_lines, request_json
from vastllm.cascade.progress import ProgressFn, PullProgress
from vastllm.cascade.units import gb
from vastllm.defaults import OLLAMA_PORT

DEFAULT_URL = f"http://127.0.0.1:{OLLAMA_PORT}"
# "pull model manifest: 200: stream error: stream ID 3; NO_ERROR; received from peer": an HTTP/2
# stream to the registry cut by something in between, typically a corporate proxy (ollama#4981)
STREAM_CUT_HINT = (
    "the registry connection was cut mid-stream, typical behind a corporate proxy: check the "
    "proxy settings (HTTPS_PROXY / NO_PROXY of the ollama service, ollama_extra_env) and retry"
)


def pull_error_reason(message: str) -> str:
    """A short reason for a pull error line, with the cause people search for up front."""
    lowered = message.lower()
    if "no space left on device" in lowered:
        return f"pull failed: no space left on device ({message})"
    if "stream error" in lowered:
        return f"pull failed: network error ({message}): {STREAM_CUT_HINT}"
    if "file does not exist" in lowered or "not found" in lowered:
        return f"pull failed: the registry has no such model ({message})"
    if "no such host" in lowered or "dial tcp" in lowered or "max retries" in lowered:
        return f"pull failed: network error ({message})"
    return f"pull failed: {message}"


class OllamaEngine:
    name = "ollama"
    served_by = "ollama"
    wire = "ollama"

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        timeout: float = 30.0,
        pull_stall_timeout: float = 300.0,
        allow_cpu_offload: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.pull_stall_timeout = pull_stall_timeout
        self.allow_cpu_offload = allow_cpu_offload

    # -- inventory -------------------------------------------------------------------------
    def installed(self) -> set[str]:
        data = request_json("GET", self.base_url + "/api/tags", timeout=self.timeout)
        names = set()
        for model in data.get("models") or []:
            if isinstance(model, dict):
                for key in ("name", "model"):
                    if isinstance(model.get(key), str):
                        names.add(ollama_name(model[key]))
        return names

    def is_present(self, candidate: Candidate) -> bool:
        return ollama_name(candidate.tag) in self.installed()

    def running(self) -> list[dict[str, Any]]:
        data = request_json("GET", self.base_url + "/api/ps", timeout=self.timeout)
        return [m for m in data.get("models") or [] if isinstance(m, dict)]

    def reclaimable_vram_bytes(self) -> int:
        return sum(int(m.get("size_vram") or 0) for m in self.running())

    def native_context(self, candidate: Candidate) -> int | None:
        """The model's trained context length from ``/api/show`` (``<arch>.context_length``)."""
        data = request_json(
            "POST", self.base_url + "/api/show", {"model": candidate.tag}, self.timeout
        )
        info = data.get("model_info") if isinstance(data, dict) else None
        if isinstance(info, dict):
            for key, value in info.items():
                if key.endswith(".context_length") and isinstance(value, int):
                    return value
        return None

    # -- pull ------------------------------------------------------------------------------
    def ensure(self, candidate: Candidate, progress: ProgressFn) -> bool:
        if self.is_present(candidate):
            return False
        self.pull(candidate.tag, progress)
        return True

    def pull(self, tag: str, progress: ProgressFn) -> None:
        """Stream ``/api/pull``; an ``{"error": ...}`` line or a stream without ``success``
        raises EngineError with a readable reason. The host is marked busy meanwhile."""
        with busy("ollama-pull"):
            self._pull(tag, progress)

    def _pull(self, tag: str, progress: ProgressFn) -> None:
        succeeded = False
        try:
            for line in ndjson_lines(
                "POST",
                self.base_url + "/api/pull",
                {"model": tag, "stream": True},
                self.pull_stall_timeout,
            ):
                if "error" in line:
                    raise EngineError(pull_error_reason(str(line["error"])))
                status = str(line.get("status") or "")
                completed, total = line.get("completed"), line.get("total")
                progress(
                    PullProgress(
                        tag,
                        status,
                        completed if isinstance(completed, int) else None,
                        total if isinstance(total, int) else None,
                    )
                )
                succeeded = succeeded or status == "success"
        except EngineError as exc:
            text = str(exc)
            raise EngineError(
                text if text.startswith("pull failed") else f"pull failed: {text}"
            ) from exc
        if not succeeded:
            raise EngineError("pull failed: the stream ended without 'success'")

    # -- chat and residency -------------------------------------------------------------------
    def chat_client(self) -> OllamaChat:
        return OllamaChat(self.base_url)

    def sends_num_ctx(self) -> bool:
        return True

    def release(self, candidate: Candidate) -> None:
        """``/api/generate`` with an empty prompt and ``keep_alive: 0`` unloads the model."""
        with contextlib.suppress(EngineError):
            request_json(
                "POST",
                self.base_url + "/api/generate",
                {"model": candidate.tag, "keep_alive": 0},
                self.timeout,
            )

    def residency_problem(self, candidate: Candidate) -> str | None:
        """``size_vram < size`` in ``/api/ps`` means layers run on the CPU: not fitting."""
        wanted = ollama_name(candidate.tag)
        for model in self.running():
            if ollama_name(str(model.get("name") or model.get("model") or "")) != wanted:
                continue
            size, vram = int(model.get("size") or 0), int(model.get("size_vram") or 0)
            if size and vram < size:
                share = 100.0 * vram / size
                detail = f"partly offloaded to CPU: {gb(vram)} of {gb(size)} in VRAM ({share:.0f}%)"
                if self.allow_cpu_offload:
                    return None
                return detail + " (use --allow-cpu-offload to accept)"
            return None
        return None
