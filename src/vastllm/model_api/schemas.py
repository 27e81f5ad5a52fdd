"""Request and response bodies (pydantic). Unknown request fields are ignored, like OpenAI's
optional parameters we do not implement (``presence_penalty``, ``logit_bias``, ...)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Role = Literal["system", "developer", "user", "assistant", "tool"]
MAX_STOP_SEQUENCES = 16
# what torch.Generator.manual_seed accepts (a signed or unsigned 64-bit integer); past that it
# raises inside the generation, which would be a 500
SEED_MIN, SEED_END = -(2**63), 2**64


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """One message; ``content`` may be a string or a list of text parts (joined)."""

    model_config = ConfigDict(extra="ignore")
    role: Role
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)

    def for_template(self) -> dict[str, Any]:
        """The dict handed to the chat template (``developer`` is rendered as ``system``)."""
        out: dict[str, Any] = {
            "role": "system" if self.role == "developer" else self.role,
            "content": self.text(),
        }
        if self.name is not None:
            out["name"] = self.name
        if self.tool_calls:
            out["tool_calls"] = self.tool_calls
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        return out


def _stop_list(v: object) -> object:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    return v


class SamplingParams(BaseModel):
    """Parameters shared by every generation route."""

    model_config = ConfigDict(extra="ignore")
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    seed: Annotated[int, Field(ge=SEED_MIN, lt=SEED_END)] | None = None
    stop: Annotated[list[str], Field(max_length=MAX_STOP_SEQUENCES)] = []
    # vLLM-compatible extension: keep sampling past end-of-sequence (fixed-length benchmarks).
    ignore_eos: bool = False

    @field_validator("stop", mode="before")
    @classmethod
    def _stop(cls, v: object) -> object:
        return _stop_list(v)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatRequest(SamplingParams):
    """``POST /chat``: messages plus optional sampling parameters."""

    messages: Annotated[list[ChatMessage], Field(min_length=1)]


class ChatCompletionRequest(ChatRequest):
    """``POST /v1/chat/completions`` (the OpenAI subset we serve)."""

    model: str | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class GenerateRequest(SamplingParams):
    """``POST /generate``: a raw prompt, no chat template."""

    prompt: str


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


FinishReason = Literal["stop", "length"]


class GenerateResponse(BaseModel):
    text: str
    model: str
    usage: Usage
    finish_reason: FinishReason


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "vastllm"
    context_length: int | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class QueueStats(BaseModel):
    """``active``: requests admitted (holding one of ``max_concurrent`` slots), of which
    ``running`` (0 or 1) is generating; ``waiting``: in line for a slot (at most ``max``)."""

    active: int
    running: int
    waiting: int
    max: int
    max_concurrent: int


class Health(BaseModel):
    """Ours, plus the first seed's ``healthy``, ``gpu``, ``vram_used``, ``vram_total``
    (:mod:`vastllm.seed_health`)."""

    status: Literal["loading", "ready", "error"]
    healthy: bool
    reason: str | None = None
    model: str
    model_path: str
    device: str | None
    dtype: str | None
    gpu_name: str | None
    vram_used_mib: int | None
    vram_total_mib: int | None
    gpu: str | None
    vram_used: str | None
    vram_total: str | None
    uptime_s: float
    queue: QueueStats
    context_length: int | None
