"""The Ollama test double keeps to the recorded wire shapes, and its CLI talks to its server."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.proxy.conftest import DOUBLE, OllamaDouble
from tests.support import FIXTURES


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
