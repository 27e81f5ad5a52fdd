"""The engine in-process, on the real test model: templates, tools, cancellation, EOS."""

from __future__ import annotations

import copy
import threading
from pathlib import Path

import pytest

from vastllm.model_api.engine import Engine
from vastllm.model_api.generation import ChatTemplateError, EngineLoadError, GenerationParams
from vastllm.model_api.settings import ModelApiSettings

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
TOOLS_TEMPLATE = (
    "{% if tools %}<|im_start|>system\nTools:{% for t in tools %} {{ t.function.name }}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
STRICT_TEMPLATE = (
    "{% for m in messages %}{% if m.role == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}{{ m.content }}{% endfor %}"
)
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]


@pytest.fixture(scope="module")
def engine(test_model_dir: Path) -> Engine:
    return Engine.load(ModelApiSettings(model_path=test_model_dir, cpu_threads=1))


def with_template(engine: Engine, template: str) -> Engine:
    tok = copy.deepcopy(engine.tokenizer)
    tok.chat_template = template
    return Engine(
        engine.model,
        tok,
        device=engine.device,
        dtype=engine.dtype,
        context_length=engine.context_length,
    )


def test_load_reads_the_model_directory(engine: Engine, test_model_dir: Path) -> None:
    assert engine.device == "cpu"
    assert engine.context_length == 8192
    assert 2 in engine.eos_ids  # <|im_end|>
    assert engine.chat_template is not None
    assert not engine.supports_tools  # SmolLM2's ChatML template has no tools


def test_load_of_a_directory_without_weights_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(EngineLoadError, match=str(tmp_path)):
        Engine.load(ModelApiSettings(model_path=tmp_path))


def test_tools_are_ignored_without_template_support(engine: Engine) -> None:
    assert engine.encode_chat(QUESTION, TOOLS) == engine.encode_chat(QUESTION)


def test_tools_reach_a_template_that_uses_them(engine: Engine) -> None:
    tooled = with_template(engine, TOOLS_TEMPLATE)
    assert tooled.supports_tools
    text = tooled.tokenizer.decode(tooled.encode_chat(QUESTION, TOOLS))
    assert "Tools: get_weather" in text
    assert "Tools:" not in tooled.tokenizer.decode(tooled.encode_chat(QUESTION))


def test_template_refusal_is_a_chat_template_error(engine: Engine) -> None:
    strict = with_template(engine, STRICT_TEMPLATE)
    with pytest.raises(ChatTemplateError, match="System role not supported"):
        strict.encode_chat([{"role": "system", "content": "x"}, *QUESTION])


def test_greedy_answer_and_streamed_pieces(engine: Engine) -> None:
    pieces: list[str] = []
    result = engine.generate(
        engine.encode_chat(QUESTION),
        GenerationParams(max_new_tokens=20, temperature=0),
        threading.Event(),
        pieces.append,
    )
    assert result.text == "The capital of France is Paris."
    assert "".join(pieces) == result.text
    assert result.finish_reason == "stop"
    # the EOS token that ended it was sampled too
    assert result.completion_tokens == len(engine.tokenizer(result.text)["input_ids"]) + 1


def test_ignore_eos_runs_to_max_tokens(engine: Engine) -> None:
    result = engine.generate(
        engine.encode_chat(QUESTION),
        GenerationParams(max_new_tokens=12, temperature=0, ignore_eos=True),
        threading.Event(),
    )
    assert (result.finish_reason, result.completion_tokens) == ("length", 12)
    assert result.text.startswith("The capital of France is Paris.")


def test_cancel_flag_stops_between_tokens(engine: Engine) -> None:
    cancel = threading.Event()
    seen: list[str] = []

    def on_text(piece: str) -> None:
        seen.append(piece)
        if len(seen) == 2:
            cancel.set()

    result = engine.generate(
        engine.encode_chat(QUESTION),
        GenerationParams(max_new_tokens=50, temperature=0, ignore_eos=True),
        cancel,
        on_text,
    )
    assert result.finish_reason == "cancelled"
    assert result.completion_tokens == 2
    assert len(seen) == 2
