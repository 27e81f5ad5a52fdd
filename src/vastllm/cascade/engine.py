"""What the cascade needs from an engine (Ollama, vastllm's transformers model API, vLLM)."""

from __future__ import annotations

from typing import Protocol

from vastllm.cascade.candidates import Candidate
from vastllm.cascade.clients import ChatClient
from vastllm.cascade.progress import ProgressFn


class EngineAdapter(Protocol):
    name: str  # the candidates' ``engine`` (vastllm_engine): ollama, transformers, vllm
    served_by: str  # the server, as the active-model file names it: ollama, model_api, vllm
    wire: str  # the protocol the proxy speaks to it, the active-model file's ``engine``
    base_url: str  # written to the active-model file: where clients reach the model

    def is_present(self, candidate: Candidate) -> bool:
        """The model is on the host already (no download needed)."""
        ...

    def ensure(self, candidate: Candidate, progress: ProgressFn) -> bool:
        """Make the model present; True when something was downloaded. Raises EngineError."""
        ...

    def chat_client(self) -> ChatClient:
        """The client the smoke tests use."""
        ...

    def sends_num_ctx(self) -> bool:
        """Whether the chat client can ask for the candidate's context size per request."""
        ...

    def reclaimable_vram_bytes(self) -> int:
        """VRAM held by models this engine has loaded (freed when it switches models)."""
        ...

    def residency_problem(self, candidate: Candidate) -> str | None:
        """Why the loaded model does not sit in VRAM as it should, or None."""
        ...

    def native_context(self, candidate: Candidate) -> int | None:
        """The longest context the model supports, when the engine can tell."""
        ...

    def release(self, candidate: Candidate) -> None:
        """Unload a candidate that failed, so it does not hold memory (best effort)."""
        ...
