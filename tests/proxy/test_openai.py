"""OpenAI routes and the seed's /chat and /generate, with the official SDK and raw HTTP."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.proxy.conftest import MODEL, OllamaDouble, Proxy

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a word up",
            "parameters": {
                "type": "object",
                "properties": {"word": {"type": "string"}},
                "required": ["word"],
            },
        },
    }
]


@pytest.fixture
def client(proxy: Proxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-test", max_retries=0)


def test_chat_completion(client: openai.OpenAI, knobs: OllamaDouble, unique: str) -> None:
    out = client.chat.completions.create(
        model="claude-opus-4-8",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": f"Hello {unique}"},
        ],
        max_tokens=50,
        seed=7,
    )
    assert out.choices[0].message.content == f"You said: Hello {unique}"
    assert out.choices[0].finish_reason == "stop"
    assert out.usage is not None
    assert out.usage.completion_tokens == 4
    sent = knobs.last_request()["body"]
    assert sent["model"] == MODEL
    assert sent["options"]["seed"] == 7
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}


def test_stream_with_usage(client: openai.OpenAI, unique: str) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": f"Count {unique}"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"You said: Count {unique}"
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4


def test_tool_calls_round_trip(client: openai.OpenAI, knobs: OllamaDouble, unique: str) -> None:
    question = f"please lookup banana{unique}"
    first = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": question}], tools=TOOLS
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "lookup"
    assert json.loads(call.function.arguments) == {"word": f"banana{unique}"}
    second = client.chat.completions.create(
        model=MODEL,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": question},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "name": "lookup", "content": "a fruit"},
        ],
    )
    assert second.choices[0].message.content == "Tool lookup returned: a fruit"


def test_streamed_tool_call(client: openai.OpenAI, unique: str) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"lookup kiwi{unique}"}],
            tools=TOOLS,
            stream=True,
        )
    )
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(calls) == 1
    assert calls[0].function.name == "lookup"
    assert json.loads(calls[0].function.arguments) == {"word": f"kiwi{unique}"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_models_list_both_sdks(client: openai.OpenAI, proxy: Proxy) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids[0] == MODEL
    import anthropic  # noqa: PLC0415 - the same route serves both SDKs

    a = anthropic.Anthropic(base_url=proxy.url, api_key="x", max_retries=0)
    assert [m.id for m in a.models.list()] == ids


def test_seed_chat_and_generate(proxy: Proxy, knobs: OllamaDouble, unique: str) -> None:
    r = httpx.post(
        proxy.url + "/chat",
        json={"messages": [{"role": "user", "content": f"seed chat {unique}"}], "max_tokens": 20},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == f"You said: seed chat {unique}"

    r = httpx.post(
        proxy.url + "/generate",
        json={
            "prompt": f"complete me {unique}",
            "max_tokens": 3,
            "temperature": 0,
            "stop": ["zzz"],
        },
    )
    assert r.status_code == 200
    body = r.json()
    assert body["text"] == "You said: complete"
    assert body["model"] == MODEL
    assert body["usage"]["completion_tokens"] == 3
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 3
    assert knobs.last_request()["options"]["stop"] == ["zzz"]
