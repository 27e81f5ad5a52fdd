"""The official OpenAI SDK against vLLM itself: what the proxy and the vllm role rely on."""

from __future__ import annotations

import openai
import pytest

from tests.vllm.conftest import MAX_MODEL_LEN, SERVED_NAME

pytestmark = pytest.mark.slow


def test_chat_completion_has_text_and_usage(direct: openai.OpenAI) -> None:
    r = direct.chat.completions.create(
        model=SERVED_NAME,
        messages=[{"role": "user", "content": "Say hello in one short sentence."}],
        max_tokens=16,
        temperature=0,
    )
    assert r.model == SERVED_NAME
    assert r.choices[0].message.content
    assert r.choices[0].finish_reason in {"stop", "length"}
    assert r.usage is not None
    assert r.usage.prompt_tokens > 0
    assert 0 < r.usage.completion_tokens <= 16
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streaming_sends_several_chunks_then_a_finish_reason(direct: openai.OpenAI) -> None:
    stream = direct.chat.completions.create(
        model=SERVED_NAME,
        messages=[{"role": "user", "content": "Name three colours."}],
        max_tokens=24,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    texts: list[str] = []
    reasons: list[str] = []
    usage = None
    for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                texts.append(choice.delta.content)
            if choice.finish_reason:
                reasons.append(choice.finish_reason)
        usage = chunk.usage or usage
    assert len(texts) > 3
    assert "".join(texts).strip()
    assert reasons in (["stop"], ["length"])
    assert usage is not None
    assert usage.completion_tokens == 24 or reasons == ["stop"]


def test_models_lists_the_served_name_with_its_context_length(direct: openai.OpenAI) -> None:
    models = direct.models.list().data
    assert [m.id for m in models] == [SERVED_NAME]
    assert models[0].model_extra is not None
    assert models[0].model_extra["max_model_len"] == MAX_MODEL_LEN


def test_a_prompt_over_the_context_is_a_400(direct: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        direct.chat.completions.create(
            model=SERVED_NAME,
            messages=[{"role": "user", "content": "hello " * 9000}],  # 9,000+ tokens
            max_tokens=8,
        )
    assert e.value.status_code == 400
    assert f"maximum context length is {MAX_MODEL_LEN} tokens" in e.value.message
