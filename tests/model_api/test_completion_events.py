"""The SSE event sequence of a streamed chat completion, including failures mid-stream."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from vastllm.model_api.completion import chat_completion_events
from vastllm.model_api.generation import GenerationResult
from vastllm.model_api.service import Job


async def events(items: list[Any], include_usage: bool) -> list[Any]:
    job = Job(asyncio.get_running_loop())
    for item in items:
        job.push(item)
    await asyncio.sleep(0)
    out: list[Any] = []
    async for event in chat_completion_events(job, "m", include_usage):
        assert event.startswith("data: ")
        assert event.endswith("\n\n")
        data = event.removeprefix("data: ").strip()
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


def result(finish: str) -> GenerationResult:
    return GenerationResult(
        text="Hi there", finish_reason=finish, prompt_tokens=5, completion_tokens=2
    )


async def test_pieces_finish_usage_done() -> None:
    got = await events(["Hi", " there", result("length")], include_usage=True)
    assert got[-1] == "[DONE]"
    chunks = got[:-1]
    assert [c["choices"][0]["delta"] for c in chunks[:3]] == [
        {"role": "assistant", "content": ""},
        {"content": "Hi"},
        {"content": " there"},
    ]
    assert chunks[3]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "length",
    }
    assert chunks[4]["choices"] == []
    assert chunks[4]["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    assert all(c["usage"] is None for c in chunks[:4])
    assert len({c["id"] for c in chunks}) == 1


async def test_without_usage_no_usage_key() -> None:
    got = await events(["Hi", result("stop")], include_usage=False)
    assert got[-1] == "[DONE]"
    assert all("usage" not in c for c in got[:-1])
    assert got[-2]["choices"][0]["finish_reason"] == "stop"


async def test_worker_failure_becomes_an_error_event() -> None:
    got = await events(["Hi", RuntimeError("CUDA out of memory")], include_usage=True)
    assert got[1]["choices"][0]["delta"] == {"content": "Hi"}
    assert got[2]["error"]["type"] == "server_error"
    assert "RuntimeError" in got[2]["error"]["message"]
    assert got[3] == "[DONE]"


async def test_cancelled_by_shutdown_says_so() -> None:
    got = await events([result("cancelled")], include_usage=False)
    assert got[1]["error"]["code"] == "shutting_down"
    assert got[2] == "[DONE]"
