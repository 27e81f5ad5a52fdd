"""The model: loading (transformers, local files only) and a cancellable decode loop.

The loop is our own rather than ``model.generate``: one forward pass per token over the KV
cache, so that every step can check a cancel flag, stop sequences can cut the text, and each
new piece of text is handed to a callback as soon as it is complete.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import transformers
from jinja2.exceptions import TemplateError
from transformers import AutoModelForCausalLM, AutoTokenizer

from vastllm.model_api.generation import (
    ChatTemplateError,
    EngineLoadError,
    FinishReason,
    GenerationParams,
    GenerationResult,
)
from vastllm.model_api.hardware import GpuInfo, dtype_name, gpu_info, resolve_device, resolve_dtype
from vastllm.model_api.model_dir import check_model_dir
from vastllm.model_api.sampling import next_token
from vastllm.model_api.settings import ModelApiSettings
from vastllm.model_api.textstream import IncrementalDetokenizer, StopMatcher

log = logging.getLogger(__name__)

# config attributes that hold the context window, most common first
_CONTEXT_ATTRS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
_FALLBACK_CONTEXT = 4096


def _context_length(config: Any, tokenizer: Any) -> int:
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for attr in _CONTEXT_ATTRS:
        value = getattr(text_config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < 10_000_000:
        return tok_max
    log.warning("context length unknown; assuming %d (set context_length)", _FALLBACK_CONTEXT)
    return _FALLBACK_CONTEXT


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    gen_cfg = getattr(model, "generation_config", None)
    for value in (getattr(gen_cfg, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(v for v in value if isinstance(v, int))
    return frozenset(ids)


class Engine:
    """A loaded model + tokenizer. ``generate`` is blocking: call it from a worker thread."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        device: str,
        dtype: str,
        context_length: int,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = dtype
        self.context_length = context_length
        self.eos_ids = _eos_ids(model, tokenizer)
        template = getattr(tokenizer, "chat_template", None)
        self.chat_template: str | None = template if isinstance(template, str) else None
        # Templates that never mention ``tools`` would drop them silently; we say so instead.
        self.supports_tools = bool(self.chat_template and "tools" in self.chat_template)
        self._input_device = model.get_input_embeddings().weight.device
        self._logits_to_keep = "logits_to_keep" in inspect.signature(model.forward).parameters

    # -- loading ------------------------------------------------------------------------------

    @classmethod
    def load(cls, settings: ModelApiSettings) -> Engine:
        """Load from ``settings.model_path``; never reaches a hub (local files only)."""
        path = settings.model_path
        check_model_dir(path)
        if settings.cpu_threads is not None:
            torch.set_num_threads(settings.cpu_threads)
        device = resolve_device(settings.device)
        dtype = resolve_dtype(settings.dtype, device)
        started = time.monotonic()
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            # transformers renamed torch_dtype to dtype in 4.56
            major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
            dtype_kw = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
            kwargs: dict[str, Any] = {dtype_kw: dtype, "local_files_only": True}
            if device == "cuda":
                kwargs["device_map"] = "auto"
            model: Any = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        except (OSError, ValueError, ImportError, RuntimeError) as e:
            raise EngineLoadError(f"cannot load model from {path}: {e}") from e
        model.eval()
        context = settings.context_length or _context_length(model.config, tokenizer)
        engine = cls(
            model,
            tokenizer,
            device="cpu" if device == "cpu" else str(model.get_input_embeddings().weight.device),
            dtype=dtype_name(dtype),
            context_length=context,
        )
        log.info(
            "model loaded from %s in %.1fs: device=%s dtype=%s context=%d chat_template=%s",
            path,
            time.monotonic() - started,
            engine.device,
            engine.dtype,
            context,
            "yes" if engine.chat_template else "no",
        )
        return engine

    def gpu_info(self) -> GpuInfo | None:
        return gpu_info(self.device)

    # -- prompts ------------------------------------------------------------------------------

    def encode_chat(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> list[int]:
        """Render messages through the tokenizer's chat template and tokenize them.

        ``tools`` reach the template only when it uses them; otherwise they are ignored.
        """
        if self.chat_template is None:
            raise ChatTemplateError("the model has no chat template; use /generate with a prompt")
        kwargs: dict[str, Any] = {}
        if tools and self.supports_tools:
            kwargs["tools"] = tools
        try:
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True, **kwargs
            )
        except (TemplateError, TypeError) as e:  # raise_exception() in the template, or a
            # template that cannot handle what it was given
            raise ChatTemplateError(f"chat template rejected the messages: {e}") from e
        # the template already holds BOS and friends
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_prompt(self, prompt: str) -> list[int]:
        return list(self.tokenizer(prompt, add_special_tokens=True)["input_ids"])

    def _decode(self, ids: Sequence[int]) -> str:
        text = self.tokenizer.decode(
            list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        return str(text)

    # -- generation ---------------------------------------------------------------------------

    def generate(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        cancel: threading.Event,
        on_text: Callable[[str], None] | None = None,
    ) -> GenerationResult:
        """Decode up to ``params.max_new_tokens`` tokens; stop early on EOS, a stop sequence or
        ``cancel``. ``on_text`` receives each new piece of text (never a stop sequence)."""
        started = time.monotonic()
        detok = IncrementalDetokenizer(self._decode)
        stopper = StopMatcher(params.stop)
        deltas: list[str] = []

        def emit(piece: str) -> None:
            if piece:
                deltas.append(piece)
                if on_text is not None:
                    on_text(piece)

        generator = None
        if params.seed is not None:
            generator = torch.Generator(device=self._input_device).manual_seed(params.seed)
        extra: dict[str, Any] = {"logits_to_keep": 1} if self._logits_to_keep else {}
        finish: FinishReason = "length"
        produced = 0
        with torch.inference_mode():
            inputs = torch.tensor([list(prompt_ids)], dtype=torch.long, device=self._input_device)
            past: Any = None
            for _ in range(params.max_new_tokens):
                if cancel.is_set():
                    finish = "cancelled"
                    break
                out = self.model(input_ids=inputs, past_key_values=past, use_cache=True, **extra)
                past = out.past_key_values
                logits = out.logits[0, -1, :]
                token = next_token(logits, params.temperature, params.top_p, generator)
                produced += 1
                if token in self.eos_ids and not params.ignore_eos:
                    finish = "stop"
                    break
                emit(stopper.feed(detok.push(token)))
                if stopper.stopped:
                    finish = "stop"
                    break
                inputs = torch.tensor([[token]], dtype=torch.long, device=self._input_device)
            del past
        if finish != "cancelled":
            emit(stopper.feed(detok.flush()))
            emit(stopper.flush())
        return GenerationResult(
            text="".join(deltas),
            finish_reason=finish,
            prompt_tokens=len(prompt_ids),
            completion_tokens=produced,
            seconds=time.monotonic() - started,
        )
