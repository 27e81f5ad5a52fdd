"""The Ollama test double keeps to the recorded wire shapes (and to Ollama's documented Anthropic
compatibility), and its CLI talks to its server."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
import yaml

from tests.proxy.conftest import DOUBLE, OllamaDouble
from tests.support import FIXTURES, REPO


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / "ollama-api" / name).read_text())


@pytest.fixture
def fresh(workdir: Path) -> Iterator[OllamaDouble]:
    d = OllamaDouble(workdir, ["llama3.2"])
    yield d
    d.kill()


def cli(double: OllamaDouble, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DOUBLE), *args],
        env=double.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def call_body(tools: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "model": "llama3.2",
        "tools": tools,
        "messages": [{"role": "user", "content": "What is the weather? use get_weather Tokyo"}],
    }


def same_keys(got: dict[str, Any], recorded: dict[str, Any]) -> None:
    assert set(got) == set(recorded), (sorted(got), sorted(recorded))


def test_native_shapes_match_the_recordings(fresh: OllamaDouble) -> None:
    url = fresh.url
    assert httpx.get(url + "/").text == "Ollama is running"
    assert httpx.head(url + "/").status_code == 200
    assert set(httpx.get(url + "/api/version").json()) == {"version"}
    tags = httpx.get(url + "/api/tags").json()["models"]
    same_keys(tags[0], fixture("tags_docs-api-md.json")["models"][0])
    same_keys(tags[0]["details"], fixture("tags_docs-api-md.json")["models"][0]["details"])

    chat = {"model": "llama3.2", "messages": [{"role": "user", "content": "hello"}]}
    one = httpx.post(url + "/api/chat", json={**chat, "stream": False}).json()
    recorded = fixture("chat_nonstream_docs-api-md.json")
    same_keys(one, {**recorded, "done_reason": "stop"})
    assert one["message"] == {"role": "assistant", "content": "You said: hello"}

    r = httpx.post(url + "/api/chat", json=chat)
    assert r.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(x) for x in r.text.splitlines()]
    same_keys(
        lines[0], {k: v for k, v in fixture("chat_stream_first-chunk_docs-api-md.json").items()}
    )
    same_keys(
        lines[-1], {**fixture("chat_stream_final-chunk_docs-api-md.json"), "done_reason": "stop"}
    )
    assert [x["done"] for x in lines] == [False] * (len(lines) - 1) + [True]

    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    call = httpx.post(
        url + "/api/chat",
        json={
            "model": "llama3.2",
            "stream": False,
            "tools": tools,
            "messages": [{"role": "user", "content": "What is the weather? use get_weather Tokyo"}],
        },
    ).json()
    same_keys(call, fixture("chat_nonstream_tools_docs-api-md.json"))
    assert call["message"]["tool_calls"] == [
        {"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}
    ]

    r = httpx.post(url + "/api/chat", json={**call_body(tools), "stream": True})
    lines = [json.loads(x) for x in r.text.splitlines()]
    same_keys(lines[-2], fixture("chat_stream_tools_tool-call-chunk_docs-api-md.json"))
    same_keys(lines[-1], fixture("chat_stream_tools_final-chunk_docs-api-md.json"))
    assert lines[-2]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"

    gen = httpx.post(
        url + "/api/generate", json={"model": "llama3.2", "prompt": "sky", "stream": False}
    ).json()
    same_keys(gen, {**fixture("generate_nonstream_docs-api-md.json"), "done_reason": "stop"})
    assert gen["response"] == "You said: sky"
    assert gen["done_reason"] == "stop"
    assert (
        httpx.post(url + "/api/generate", json={"model": "llama3.2"}).json()["done_reason"]
        == "load"
    )
    ps = httpx.get(url + "/api/ps").json()["models"][0]
    same_keys(ps, {**fixture("ps_full-gpu_docs-api-md.json")["models"][0], "context_length": 4096})
    assert ps["size_vram"] == ps["size"]
    fresh.config(vram_bytes=1000)
    assert httpx.get(url + "/api/ps").json()["models"][0]["size_vram"] == 1000
    unload = {"model": "llama3.2", "keep_alive": 0}
    assert httpx.post(url + "/api/generate", json=unload).json()["done_reason"] == "unload"
    assert httpx.get(url + "/api/ps").json()["models"] == []

    show = httpx.post(url + "/api/show", json={"model": "llama3.2"}).json()
    assert show["model_info"]["llama.context_length"] == 32768
    assert {"details", "model_info", "capabilities", "parameters", "template"} <= set(show)


def test_errors_and_openai_compat(fresh: OllamaDouble) -> None:
    url = fresh.url
    r = httpx.post(url + "/api/chat", json={"model": "ghost", "messages": []})
    assert (r.status_code, r.json()) == (404, {"error": "model 'ghost' not found"})
    assert httpx.post(url + "/api/chat", content=b"{").status_code == 400
    assert httpx.get(url + "/api/chat").status_code == 405
    assert httpx.get(url + "/nope").text == "404 page not found"
    r = httpx.post(
        url + "/v1/chat/completions",
        json={"model": "ghost", "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "not_found_error"
    assert r.json()["error"]["message"] == 'model "ghost" not found, try pulling it first'

    body = {
        "model": "llama3.2",
        "messages": [{"role": "user", "content": "one two three"}],
        "max_tokens": 2,
    }
    out = httpx.post(url + "/v1/chat/completions", json=body).json()
    recorded = fixture("v1-chat-completions_nonstream_finish-length_curl-jq_ollama-pr-5312.json")
    assert list(out) == list(recorded)  # same wire field order
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["choices"][0]["message"]["content"] == "You said:"
    models = httpx.get(url + "/v1/models").json()
    assert models["data"][0]["id"] == "llama3.2:latest"

    fresh.config(fail_status=500)
    r = httpx.post(url + "/api/chat", json={"model": "llama3.2", "messages": []})
    assert (r.status_code, r.json()) == (500, {"error": "the model failed to generate a response"})


def test_cli_pull_list_ps_create_version(fresh: OllamaDouble, tmp_path: Path) -> None:
    out = cli(fresh, "pull", "qwen2.5:0.5b")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "pulling manifest"
    assert lines[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    assert any(line.startswith("pulling ") and "100%" in line for line in lines)
    listing = cli(fresh, "list").stdout
    assert listing.splitlines()[0].split() == ["NAME", "ID", "SIZE", "MODIFIED"]
    assert "qwen2.5:0.5b" in listing
    assert "llama3.2:latest" in listing
    # the pull is on disk in Ollama's layout
    assert (fresh.models_dir / "manifests/registry.ollama.ai/library/qwen2.5/0.5b").is_file()

    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + bytes(range(256)) * 4)
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(
        "FROM ./tiny.gguf\n"
        "PARAMETER num_ctx 16384\n"
        'PARAMETER stop "<|end|>"\n'
        'SYSTEM """Be\nbrief."""\n'
    )
    out = cli(fresh, "create", "tiny", "-f", str(modelfile))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "success"
    digest = hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert (fresh.models_dir / "blobs" / f"sha256-{digest}").read_bytes() == gguf.read_bytes()
    show = httpx.post(fresh.url + "/api/show", json={"model": "tiny"}).json()
    assert "num_ctx" in show["parameters"]
    assert show["system"] == "Be\nbrief."

    httpx.post(
        fresh.url + "/api/chat",
        json={"model": "tiny", "messages": [], "options": {"num_ctx": 16384}},
    )
    ps = cli(fresh, "ps").stdout.splitlines()
    assert ps[0].split() == ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
    assert "tiny:latest" in ps[1]
    assert "100% GPU" in ps[1]
    assert "16384" in ps[1]

    version = cli(fresh, "--version")
    assert version.stdout.startswith("ollama version is ")
    fresh.kill()
    down = cli(fresh, "--version").stdout
    assert "could not connect to a running Ollama instance" in down
    failed = cli(fresh, "list")
    assert failed.returncode == 1
    assert failed.stderr.startswith("Error: could not connect")


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"pull_fail": "no_space"}, "no space left on device"),
        ({"pull_fail": "network"}, "max retries exceeded: EOF"),
        ({"pull_fail": "dns"}, "no such host"),
        ({"pull_fail": "stream"}, "200: stream error: stream ID 3; NO_ERROR; received from peer"),
        ({"pullable": ["llama3.2"]}, "pull model manifest: file does not exist"),
    ],
)
def test_pull_failures(fresh: OllamaDouble, knobs: dict[str, Any], message: str) -> None:
    fresh.config(**knobs)
    out = cli(fresh, "pull", "mistral:7b")
    assert out.returncode == 1
    assert out.stderr.startswith("Error: ")
    assert message in out.stderr
    # streaming: status 200 with an error line; stream false: a 500 with the error
    r = httpx.post(fresh.url + "/api/pull", json={"model": "mistral:7b"})
    assert r.status_code == 200
    assert message in json.loads(r.text.splitlines()[-1])["error"]
    r = httpx.post(fresh.url + "/api/pull", json={"model": "mistral:7b", "stream": False})
    assert r.status_code == 500
    assert message in r.json()["error"]
    assert "mistral:7b" not in cli(fresh, "list").stdout


def test_pull_stream_progress_shape(fresh: OllamaDouble) -> None:
    r = httpx.post(fresh.url + "/api/pull", json={"model": "phi3"})
    lines = [json.loads(x) for x in r.text.splitlines()]
    recorded = [
        json.loads(x)
        for x in (
            FIXTURES / "ollama-api" / "pull_stream_curl_TAIL-EXCERPT_ollama-issue-4417.ndjson"
        )
        .read_text()
        .splitlines()
    ]
    assert lines[0] == {"status": "pulling manifest"}
    layer = [x for x in lines if "digest" in x]
    assert set(layer[0]) == set(recorded[0])  # first report of a layer: total, no completed
    assert set(layer[1]) == set(recorded[4])
    assert layer[0]["status"] == "pulling " + layer[0]["digest"][7:19]
    assert lines[-1] == {"status": "success"}
    again = httpx.post(fresh.url + "/api/pull", json={"model": "phi3", "stream": False})
    assert again.json() == {"status": "success"}


# -- Anthropic compatibility (POST /v1/messages, Ollama >= 0.14.0) ---------------------------

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather of a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(event, data) pairs of an SSE body; each data's ``type`` must name its event."""
    events = []
    for frame in text.split("\n\n"):
        if not frame.strip():
            continue
        lines = dict(line.split(": ", 1) for line in frame.splitlines())
        data = json.loads(lines["data"])
        assert data["type"] == lines["event"], frame
        events.append((lines["event"], data))
    return events


def messages(url: str, **body: Any) -> httpx.Response:
    return httpx.post(
        url + "/v1/messages",
        json={"model": "llama3.2", "max_tokens": 64, **body},
        headers={"anthropic-version": "2023-06-01", "x-api-key": "ollama"},
    )


def test_anthropic_messages_json_with_the_chat_reply_logic(fresh: OllamaDouble) -> None:
    client = anthropic.Anthropic(base_url=fresh.url, api_key="ollama")
    msg = client.messages.create(
        model="llama3.2",
        max_tokens=64,
        system=[{"type": "text", "text": "Be brief. "}, {"type": "text", "text": "Be kind."}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "hello"}]}],
    )
    assert msg.content[0].type == "text"
    assert msg.content[0].text == "You said: hello"  # what /api/chat answers to the same turn
    assert (msg.model, msg.role, msg.stop_reason) == ("llama3.2", "assistant", "end_turn")
    assert msg.id.startswith("msg_")
    assert msg.usage.output_tokens > 0
    assert msg.usage.input_tokens > 0
    last = fresh.last_request()
    assert last["path"] == "/v1/messages"
    assert last["options"] == {"num_predict": 64}
    # no options on this API: the server's default context (OLLAMA_CONTEXT_LENGTH) applies
    assert last["num_ctx"] == fresh.defaults["context_length"]

    r = messages(fresh.url, messages=[{"role": "user", "content": "one two three"}], max_tokens=2)
    assert r.status_code == 200
    out = r.json()
    assert list(out) == ["id", "type", "role", "model", "content", "stop_reason", "usage"]
    assert out["content"] == [{"type": "text", "text": "You said:"}]
    assert out["stop_reason"] == "max_tokens"
    assert set(out["usage"]) == {"input_tokens", "output_tokens"}
    # stop_sequences is Ollama's stop, temperature etc. its options
    r = messages(
        fresh.url,
        messages=[{"role": "user", "content": "alpha beta gamma"}],
        stop_sequences=["beta"],
        temperature=0.2,
        top_k=5,
    )
    assert r.json()["content"][0]["text"] == "You said: alpha "
    assert fresh.last_request()["options"] == {
        "num_predict": 64,
        "temperature": 0.2,
        "top_k": 5,
        "stop": ["beta"],
    }


def test_anthropic_stream_has_anthropics_event_sequence(fresh: OllamaDouble) -> None:
    r = messages(fresh.url, stream=True, messages=[{"role": "user", "content": "hi there"}])
    assert r.headers["content-type"] == "text/event-stream"
    events = sse_events(r.text)
    names = [e for e, _ in events]
    deltas = names.count("content_block_delta")
    assert deltas == 4  # one per token of "You said: hi there"
    assert names == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0][1]["message"]
    assert start["content"] == []
    assert start["usage"]["output_tokens"] == 0
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    text = "".join(d["delta"]["text"] for e, d in events if e == "content_block_delta")
    assert text == "You said: hi there"
    assert {d["delta"]["type"] for e, d in events if e == "content_block_delta"} == {"text_delta"}
    final = events[-2][1]
    assert final["delta"] == {"stop_reason": "end_turn"}
    assert final["usage"]["output_tokens"] == 4

    client = anthropic.Anthropic(base_url=fresh.url, api_key="ollama")
    with client.messages.stream(
        model="llama3.2", max_tokens=64, messages=[{"role": "user", "content": "count"}]
    ) as stream:
        assert "".join(stream.text_stream) == "You said: count"
        assert stream.get_final_message().stop_reason == "end_turn"

    # a failure mid-stream just ends it: no error event, no message_stop (Ollama's docs)
    fresh.config(fail_after_tokens=2)
    r = messages(fresh.url, stream=True, messages=[{"role": "user", "content": "a b c d"}])
    names = [e for e, _ in sse_events(r.text)]
    assert names == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
    ]


def test_anthropic_tool_use_json_stream_and_round_trip(fresh: OllamaDouble) -> None:
    ask = [{"role": "user", "content": "What is the weather? use get_weather Tokyo"}]
    out = messages(fresh.url, tools=[WEATHER_TOOL], messages=ask).json()
    assert out["stop_reason"] == "tool_use"
    assert len(out["content"]) == 1
    call = out["content"][0]
    assert call["type"] == "tool_use"
    assert call["id"].startswith("call_")
    assert (call["name"], call["input"]) == ("get_weather", {"city": "Tokyo"})

    events = sse_events(messages(fresh.url, tools=[WEATHER_TOOL], messages=ask, stream=True).text)
    assert [e for e, _ in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    block = events[1][1]["content_block"]
    assert block == {"type": "tool_use", "id": call["id"], "name": "get_weather", "input": {}}
    delta = events[2][1]["delta"]
    assert delta["type"] == "input_json_delta"
    assert json.loads(delta["partial_json"]) == {"city": "Tokyo"}
    assert events[4][1]["delta"]["stop_reason"] == "tool_use"

    client = anthropic.Anthropic(base_url=fresh.url, api_key="ollama")
    with client.messages.stream(
        model="llama3.2",
        max_tokens=64,
        tools=[WEATHER_TOOL],
        messages=ask,
    ) as stream:
        final = stream.get_final_message()
    used = final.content[0]
    assert used.type == "tool_use"
    assert used.input == {"city": "Tokyo"}

    # tool_use -> tool_result: the tool message Ollama makes of it names the tool
    turn = [
        *ask,
        {"role": "assistant", "content": [call]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": call["id"],
                    "content": [{"type": "text", "text": "18 C, clear"}],
                },
            ],
        },
    ]
    out = messages(fresh.url, tools=[WEATHER_TOOL], messages=turn).json()
    assert out["content"] == [{"type": "text", "text": "Tool get_weather returned: 18 C, clear"}]
    assert out["stop_reason"] == "end_turn"


def test_anthropic_errors_have_anthropics_shape(fresh: OllamaDouble) -> None:
    r = messages(fresh.url, model="ghost", messages=[{"role": "user", "content": "x"}])
    assert r.status_code == 404
    body = r.json()
    assert body["type"] == "error"
    assert body["error"] == {"type": "not_found_error", "message": "model 'ghost' not found"}
    assert body["request_id"].startswith("req_")
    for bad, message in (
        ({"max_tokens": 0}, "max_tokens is required and must be positive"),
        ({"model": ""}, "model is required"),
        ({"messages": []}, "messages is required"),
    ):
        r = messages(fresh.url, **{"messages": [{"role": "user", "content": "x"}], **bad})
        assert r.status_code == 400, bad
        assert r.json()["error"] == {"type": "invalid_request_error", "message": message}
    image = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    r = messages(fresh.url, messages=[{"role": "user", "content": [image]}])
    assert r.status_code == 400
    assert "Only base64 images are supported" in r.json()["error"]["message"]
    fresh.config(fail_status=503, fail_message="server busy")
    r = messages(fresh.url, messages=[{"role": "user", "content": "x"}])
    assert r.status_code == 503
    assert r.json()["error"] == {"type": "overloaded_error", "message": "server busy"}
    client = anthropic.Anthropic(base_url=fresh.url, api_key="ollama", max_retries=0)
    fresh.config(fail_status=0)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(
            model="ghost", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
    # not in Ollama's Anthropic API: count_tokens
    assert httpx.post(fresh.url + "/v1/messages/count_tokens", json={}).status_code == 404


def test_anthropic_messages_exist_from_ollama_0_14_0(fresh: OllamaDouble) -> None:
    # the double plays the release roles/ollama pins unless told otherwise
    pinned = yaml.safe_load((REPO / "roles/ollama/defaults/main.yml").read_text())
    assert httpx.get(fresh.url + "/api/version").json() == {"version": pinned["ollama_version"]}
    ask = {"messages": [{"role": "user", "content": "hi"}]}
    for version, status in (("0.12.6", 404), ("0.13.5", 404), ("0.14.0", 200), ("0.40.2", 200)):
        fresh.config(version=version)
        assert httpx.get(fresh.url + "/api/version").json() == {"version": version}
        r = messages(fresh.url, **ask)
        assert r.status_code == status, version
        if status == 404:
            assert r.text == "404 page not found"  # gin's answer to an unknown route
    fresh.config(version="0.14.0-rc2")
    assert messages(fresh.url, **ask).status_code == 200


def test_a_recorded_claude_code_request_is_answered(fresh: OllamaDouble) -> None:
    captured = json.loads((FIXTURES / "claude-code" / "request-1.json").read_text())
    body = {**captured["body"], "model": "llama3.2"}
    fresh.config(context_length=65536)  # OLLAMA_CONTEXT_LENGTH: what this API runs at
    r = httpx.post(
        fresh.url + captured["path"],
        json=body,
        headers={"anthropic-version": "2023-06-01", "anthropic-beta": "claude-code-20250219"},
        timeout=30,
    )
    assert r.status_code == 200, r.text[:500]
    events = sse_events(r.text)
    assert events[0][0] == "message_start"
    assert events[-1][0] == "message_stop"
    last = fresh.last_request()
    assert last["num_ctx"] == 65536
    assert not last["truncated"]
    assert last["prompt_tokens"] > 16000  # a first Claude Code turn is ~20k tokens
