"""Plain types of a generation, free of torch so the web side can import them cheaply."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

FinishReason = Literal["stop", "length", "cancelled"]


class EngineLoadError(RuntimeError):
    """The model directory cannot be loaded; the message is shown in /health."""


class ChatTemplateError(ValueError):
    """The chat template refused the messages (e.g. roles that must alternate)."""


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: Sequence[str] = ()
    ignore_eos: bool = False


@dataclass
class GenerationResult:
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    seconds: float = 0.0
