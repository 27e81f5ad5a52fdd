"""The server's own routes: /ping, /health, /generate, /chat."""

from __future__ import annotations

import httpx

from tests.model_api.conftest import MAIN_CONTEXT, Server


def test_ping(server: Server) -> None:
    r = httpx.get(f"{server.url}/ping")
    assert r.status_code == 200
    assert r.json() == {"message": "pong"}


def test_health_when_ready(server: Server, test_model_dir: object) -> None:
    r = httpx.get(f"{server.url}/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready"
    assert body["reason"] is None
    assert body["model"] == "smollm2"
    assert body["model_path"] == str(test_model_dir)
    assert body["device"] == "cpu"
    assert body["dtype"] in {"bfloat16", "float32"}  # auto on CPU: bf16 when it works
    assert body["gpu_name"] is None
    assert body["vram_used_mib"] is None
    assert body["vram_total_mib"] is None
    # the first seed's fields beside ours: null GPU figures on a CPU host
    assert (body["healthy"], body["gpu"], body["vram_used"], body["vram_total"]) == (
        True, None, None, None)  # fmt: skip
    assert body["uptime_s"] > 0
    assert body["queue"] == {
        "active": 0, "running": 0, "waiting": 0, "max": 8, "max_concurrent": 1}  # fmt: skip
    assert body["context_length"] == MAIN_CONTEXT


def test_generate_raw_prompt(server: Server) -> None:
    r = httpx.post(
        f"{server.url}/generate",
        json={"prompt": "The capital of France is", "max_tokens": 6, "temperature": 0},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"text", "model", "usage", "finish_reason"}
    assert body["model"] == "smollm2"
    assert "Paris" in body["text"]
    assert not body["text"].startswith("The capital of France is")  # only the new tokens
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0
    assert 0 < usage["completion_tokens"] <= 6
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert body["finish_reason"] in {"stop", "length"}


def test_generate_with_stop(server: Server) -> None:
    r = httpx.post(
        f"{server.url}/generate",
        json={
            "prompt": "The capital of France is",
            "max_tokens": 6,
            "temperature": 0,
            "stop": "Paris",
        },
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert "Paris" not in r.json()["text"]
    assert r.json()["finish_reason"] == "stop"


def test_chat_route_has_chat_completion_shape(server: Server) -> None:
    r = httpx.post(
        f"{server.url}/chat",
        json={
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "max_tokens": 20,
            "temperature": 0,
        },
        timeout=60,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "smollm2"
    message = body["choices"][0]["message"]
    assert message["role"] == "assistant"
    assert "Paris" in message["content"]
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] > 0
