"""The proxy's neutral chat model: one request shape and one event stream for every API.

Front ends (Anthropic, OpenAI, the seed routes) translate into :class:`ChatRequest`; upstream
clients (Ollama, OpenAI-compatible) translate out of it. Answers travel as a short list of events
(:class:`TextDelta`, :class:`ToolCall`, :class:`Finish`); :class:`ChatResult` is the final message
that the cache stores and replays.

Neutral messages are plain dicts in OpenAI's chat layout, kept small on purpose:
``{"role": "system"|"user"|"assistant"|"tool", "content": str}`` plus, when present,
``"images": [data-URL, ...]`` (user), ``"tool_calls": [{"id", "name", "arguments"}]``
(assistant; ``arguments`` is a JSON string) and ``"tool_call_id"`` / ``"name"`` (tool).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

FinishReason = Literal["stop", "length", "tool_calls"]
Message = dict[str, Any]


@dataclass(slots=True, frozen=True)
class ModelTarget:
    """The upstream model a request resolves to."""

    name: str
    engine: str | None  # "ollama" | "openai" | "anthropic" | None (any upstream)
    context_length: int


@dataclass(slots=True)
class ChatRequest:
    """A chat request after translation, before it is sent upstream."""

    model: str  # the name the client asked for (echoed back in answers)
    messages: list[Message]
    tools: list[dict[str, Any]] = field(default_factory=list)  # OpenAI "function" tools
    tool_choice: str | dict[str, str] | None = None  # "auto"|"none"|"required"|{"name": ...}
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    # filled by the service once the model is resolved
    target: ModelTarget | None = None
    prompt_tokens: int = 0  # estimate, see tokens.py
    num_predict: int = 0  # max_tokens clamped to the context left

    def deterministic(self) -> bool:
        """True when sampling cannot vary between two identical requests."""
        return self.temperature == 0 or self.seed is not None or self.top_k == 1


@dataclass(slots=True)
class TextDelta:
    text: str


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text of the input object


@dataclass(slots=True)
class Finish:
    reason: FinishReason
    input_tokens: int
    output_tokens: int


Event = TextDelta | ToolCall | Finish


@dataclass(slots=True)
class ChatResult:
    """A complete assistant message: what the cache stores."""

    text: str
    tool_calls: list[ToolCall]
    finish: FinishReason
    input_tokens: int
    output_tokens: int

    def events(self) -> list[Event]:
        out: list[Event] = []
        if self.text:
            out.append(TextDelta(self.text))
        out.extend(self.tool_calls)
        out.append(Finish(self.finish, self.input_tokens, self.output_tokens))
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "v": 1,
                "text": self.text,
                "tool_calls": [[t.id, t.name, t.arguments] for t in self.tool_calls],
                "finish": self.finish,
                "in": self.input_tokens,
                "out": self.output_tokens,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> ChatResult:
        d = orjson.loads(raw)
        return cls(
            text=d["text"],
            tool_calls=[ToolCall(i, n, a) for i, n, a in d["tool_calls"]],
            finish=d["finish"],
            input_tokens=d["in"],
            output_tokens=d["out"],
        )


def accumulate(events: list[Event]) -> ChatResult:
    """Fold a complete event list into one message."""
    parts: list[str] = []
    calls: list[ToolCall] = []
    finish = Finish("stop", 0, 0)
    for ev in events:
        if isinstance(ev, TextDelta):
            parts.append(ev.text)
        elif isinstance(ev, ToolCall):
            calls.append(ev)
        else:
            finish = ev
    reason: FinishReason = finish.reason
    if calls and reason == "stop":
        reason = "tool_calls"
    return ChatResult("".join(parts), calls, reason, finish.input_tokens, finish.output_tokens)
