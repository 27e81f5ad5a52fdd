"""The OpenAI-compatible routes, driven by the official ``openai`` SDK against a real server."""

from __future__ import annotations

import json
import re

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletion

from tests.model_api.conftest import MAIN_CONTEXT, Server

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def client(server: Server) -> OpenAI:
    return OpenAI(base_url=f"{server.url}/v1", api_key="not-needed", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def paris(client: OpenAI) -> ChatCompletion:
    """The greedy answer to QUESTION, the reference for several tests."""
    return client.chat.completions.create(
        model="smollm2", messages=QUESTION, temperature=0, max_tokens=20
    )


def test_chat_completion_answers_paris(paris: ChatCompletion) -> None:
    resp = paris
    choice = resp.choices[0]
    assert "Paris" in (choice.message.content or "")
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    assert resp.model == "smollm2"
    assert resp.object == "chat.completion"
    assert resp.id.startswith("chatcmpl-")
    usage = resp.usage
    assert usage is not None
    assert usage.prompt_tokens > 5
    assert 0 < usage.completion_tokens <= 20
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_stream_matches_non_stream_and_reports_usage(client: OpenAI, paris: ChatCompletion) -> None:
    whole = paris
    stream = client.chat.completions.create(
        model="smollm2",
        messages=QUESTION,
        temperature=0,
        max_tokens=20,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)  # the SDK ends the iteration on ``data: [DONE]``
    assert chunks[0].choices[0].delta.role == "assistant"
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) > 1, "the answer must arrive in pieces"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert [f for f in finishes if f] == ["stop"]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert whole.usage is not None
    assert last.usage.completion_tokens == whole.usage.completion_tokens
    assert last.usage.prompt_tokens == whole.usage.prompt_tokens


def test_raw_sse_stream_without_usage_ends_with_done(server: Server) -> None:
    body = {
        "model": "smollm2",
        "messages": QUESTION,
        "temperature": 0,
        "max_tokens": 4,
        "stream": True,
    }
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in r.iter_lines() if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all("usage" not in c for c in chunks)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert len({c["id"] for c in chunks}) == 1


def test_max_tokens_ends_with_length(client: OpenAI) -> None:
    resp = client.chat.completions.create(
        model="smollm2", messages=QUESTION, temperature=0, max_tokens=3
    )
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage is not None
    assert resp.usage.completion_tokens == 3


def test_max_completion_tokens_is_honoured(client: OpenAI) -> None:
    resp = client.chat.completions.create(
        model="smollm2",
        messages=QUESTION,
        temperature=0,
        max_completion_tokens=2,
    )
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage is not None
    assert resp.usage.completion_tokens == 2


def test_max_tokens_is_capped_by_the_context_window(client: OpenAI) -> None:
    resp = client.chat.completions.create(
        model="smollm2",
        messages=QUESTION,
        temperature=0,
        max_tokens=1000,
        extra_body={"ignore_eos": True},
    )
    assert resp.usage is not None
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage.total_tokens == MAIN_CONTEXT


def test_stop_sequence_cuts_the_answer(client: OpenAI, paris: ChatCompletion) -> None:
    full = paris.choices[0].message.content or ""
    assert "Paris" in full
    cut = client.chat.completions.create(
        model="smollm2",
        messages=QUESTION,
        temperature=0,
        max_tokens=20,
        stop=["Paris", "never-appears"],
    )
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == full[: full.index("Paris")]


def test_stop_sequence_in_stream_is_never_sent(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="smollm2",
        messages=QUESTION,
        temperature=0,
        max_tokens=20,
        stop="Paris",
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Paris" not in text
    assert text.startswith("The capital of France is")
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_seed_makes_sampling_reproducible(client: OpenAI) -> None:
    def sample(seed: int) -> str:
        resp = client.chat.completions.create(
            model="smollm2",
            messages=[{"role": "user", "content": "Tell me a word."}],
            temperature=1.5,
            top_p=0.95,
            seed=seed,
            max_tokens=8,
        )
        return resp.choices[0].message.content or ""

    assert sample(1234) == sample(1234)


def test_tools_are_accepted(client: OpenAI) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    resp = client.chat.completions.create(
        model="smollm2",
        messages=QUESTION,
        temperature=0,
        max_tokens=10,
        tools=tools,
    )
    assert resp.choices[0].message.content


def test_text_parts_are_joined(client: OpenAI, paris: ChatCompletion) -> None:
    parts = client.chat.completions.create(
        model="smollm2",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is the capital "},
                    {"type": "text", "text": "of France?"},
                ],
            }
        ],
        temperature=0,
        max_tokens=20,
    )
    plain = paris
    assert parts.usage == plain.usage
    assert parts.choices[0].message.content == plain.choices[0].message.content


def test_developer_role_is_rendered_as_system(client: OpenAI) -> None:
    def prompt_tokens(role: str) -> int:
        resp = client.chat.completions.create(
            model="smollm2",
            messages=[{"role": role, "content": "Answer in one word."}, *QUESTION],
            temperature=0,
            max_tokens=1,
        )
        assert resp.usage is not None
        return resp.usage.prompt_tokens

    assert prompt_tokens("developer") == prompt_tokens("system")


def test_models_list_and_retrieve(client: OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == ["smollm2"]
    assert models.data[0].object == "model"
    assert client.models.retrieve("smollm2").id == "smollm2"
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("gpt-4")
    assert info.value.code == "model_not_found"


def test_n_other_than_one_is_rejected(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="smollm2", messages=QUESTION, n=2, max_tokens=2)
    assert info.value.param == "n"


def test_prompt_longer_than_context_names_both_numbers(client: OpenAI) -> None:
    long = "Paris is lovely in spring. " * 20
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="smollm2", messages=[{"role": "user", "content": long}], max_tokens=2
        )
    assert info.value.code == "context_length_exceeded"
    found = re.search(
        r"prompt is (\d+) tokens long .* context length is (\d+) tokens", info.value.message
    )
    assert found, info.value.message
    assert int(found.group(1)) > MAIN_CONTEXT
    assert int(found.group(2)) == MAIN_CONTEXT


def test_unknown_role_via_sdk_is_a_bad_request(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="smollm2",
            messages=[{"role": "wizard", "content": "hi"}],
            max_tokens=2,
        )
    assert info.value.param == "messages.0.role"
    assert info.value.type == "invalid_request_error"
