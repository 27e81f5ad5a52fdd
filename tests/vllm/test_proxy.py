"""The caching proxy in front of real vLLM, through the official Anthropic and OpenAI SDKs."""

from __future__ import annotations

import asyncio

import anthropic
import openai
import pytest

from tests.proxy.conftest import Proxy
from tests.vllm.conftest import (
    CLIENT_TIMEOUT,
    MAX_MODEL_LEN,
    SERVED_NAME,
    anthropic_error,
    message_text,
)

pytestmark = pytest.mark.slow

CLAUDE = "claude-sonnet-4-5"  # the proxy's claude-* alias: the active model, vLLM's smollm2


def test_anthropic_messages_create(claude: anthropic.Anthropic, unique: str) -> None:
    msg = claude.messages.create(
        model=CLAUDE,
        max_tokens=16,
        messages=[{"role": "user", "content": f"Say hello. {unique}"}],
    )
    assert msg.type == "message"
    assert msg.model == CLAUDE
    assert message_text(msg).strip()
    assert msg.stop_reason in {"end_turn", "max_tokens"}
    assert msg.usage.input_tokens > 0
    assert 0 < msg.usage.output_tokens <= 16


def test_anthropic_messages_stream(claude: anthropic.Anthropic, unique: str) -> None:
    with claude.messages.stream(
        model=CLAUDE,
        max_tokens=24,
        system="You are terse.",
        messages=[{"role": "user", "content": f"Name three colours. {unique}"}],
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1
    assert "".join(pieces).strip()
    assert final.stop_reason in {"end_turn", "max_tokens"}
    assert final.usage.output_tokens > 0


def test_claude_codes_max_tokens_is_clamped_to_what_the_context_leaves(
    claude: anthropic.Anthropic, unique: str
) -> None:
    """Claude Code asks for 32,000 tokens; vLLM answers 400 to a max_tokens over its 8192, so the
    proxy sends what the context leaves after the prompt (the stop sequences keep it short)."""
    msg = claude.messages.create(
        model=CLAUDE,
        max_tokens=32000,
        stop_sequences=[".", "!", "?", "\n"],
        messages=[{"role": "user", "content": f"Say hello. {unique}"}],
    )
    assert message_text(msg).strip()


def test_a_repeated_deterministic_request_comes_from_the_cache(
    claude: anthropic.Anthropic, unique: str
) -> None:
    def ask() -> tuple[str, str]:
        raw = claude.messages.with_raw_response.create(
            model=CLAUDE,
            max_tokens=12,
            extra_body={"temperature": 0},  # this SDK has no temperature argument any more
            messages=[{"role": "user", "content": f"Count to three. {unique}"}],
        )
        msg = raw.parse()
        return raw.headers["x-vastllm-cache"], message_text(msg)

    first, second = ask(), ask()
    assert first[0] == "miss"
    assert second == ("hit", first[1])
    assert first[1].strip()


def test_openai_sdk_through_the_proxy(proxied_openai: openai.OpenAI, unique: str) -> None:
    r = proxied_openai.chat.completions.create(
        model=SERVED_NAME,
        messages=[{"role": "user", "content": f"Say hello. {unique}"}],
        max_tokens=16,
    )
    assert r.choices[0].message.content
    assert r.usage is not None
    assert r.usage.completion_tokens > 0
    stream = proxied_openai.chat.completions.create(
        model=SERVED_NAME,
        messages=[{"role": "user", "content": f"Name three colours. {unique}"}],
        max_tokens=24,
        stream=True,
    )
    texts: list[str] = []
    reasons: list[str] = []
    for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                texts.append(choice.delta.content)
            if choice.finish_reason:
                reasons.append(choice.finish_reason)
    assert len(texts) > 1
    assert "".join(texts).strip()
    assert reasons in (["stop"], ["length"])


async def test_eight_concurrent_requests_all_get_text(proxy: Proxy, unique: str) -> None:
    """Eight Claude-style requests at once through the proxy (vLLM batches them), each its own
    prompt so that the proxy neither coalesces nor answers them from its cache."""
    client = anthropic.AsyncAnthropic(
        base_url=proxy.url, api_key="unused", max_retries=0, timeout=CLIENT_TIMEOUT
    )

    async def one(i: int) -> str:
        msg = await client.messages.create(
            model=CLAUDE,
            max_tokens=16,
            messages=[{"role": "user", "content": f"Request {i}: say hello. {unique}"}],
        )
        return message_text(msg)

    async with client:
        texts = await asyncio.gather(*(one(i) for i in range(8)))
    assert len(texts) == 8
    assert all(t.strip() for t in texts), texts


def test_a_prompt_the_proxy_counts_over_the_context_is_its_own_anthropic_400(
    claude: anthropic.Anthropic,
) -> None:
    """6 bytes a token: the proxy's estimate (4 bytes a token) refuses it before vLLM sees it."""
    with pytest.raises(anthropic.BadRequestError) as e:
        claude.messages.create(
            model=CLAUDE, max_tokens=8, messages=[{"role": "user", "content": "hello " * 9000}]
        )
    err = anthropic_error(e.value)
    assert err["type"] == "invalid_request_error"
    assert "prompt is too long" in err["message"]


# "7 " is one token per 2 bytes: the proxy estimates 2,500 tokens, vLLM counts 10,000
DENSE_PROMPT = "7 " * 5000


def test_vllms_context_400_reaches_claude_in_anthropic_shape(
    claude: anthropic.Anthropic,
) -> None:
    with pytest.raises(anthropic.BadRequestError) as e:
        claude.messages.create(
            model=CLAUDE, max_tokens=8, messages=[{"role": "user", "content": DENSE_PROMPT}]
        )
    err = anthropic_error(e.value)
    assert err["type"] == "invalid_request_error"
    assert f"maximum context length is {MAX_MODEL_LEN} tokens" in err["message"]


def test_vllms_context_400_reaches_openai_clients_in_openai_shape(
    proxied_openai: openai.OpenAI,
) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        proxied_openai.chat.completions.create(
            model=SERVED_NAME,
            messages=[{"role": "user", "content": DENSE_PROMPT}],
            max_tokens=8,
        )
    assert e.value.type == "invalid_request_error"
    assert f"maximum context length is {MAX_MODEL_LEN} tokens" in e.value.message
