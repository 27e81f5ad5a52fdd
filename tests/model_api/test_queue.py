"""The bounded queue and cancellation, on a server with one slot and one waiting place; the
single generation turn on a server that admits two.

A "long" generation samples past end-of-sequence (``ignore_eos``) for thousands of tokens: it
would run for minutes, so only cancellation can free its slot during a test.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.model_api.conftest import Server, server_env

SHORT = {
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
    "max_tokens": 3,
    "temperature": 0,
}
LONG = {
    "messages": [{"role": "user", "content": "Write a long story."}],
    "max_tokens": 5000,
    "temperature": 0,
    "ignore_eos": True,
}


@pytest.fixture(scope="module")
def qserver(test_model_dir: Path, start_server: Any) -> Server:
    srv: Server = start_server(
        server_env(test_model_dir, model_id="q", max_concurrent=1, max_queue=1, retry_after_s=3)
    )
    srv.wait_health("ready")
    return srv


@pytest.fixture
def client(qserver: Server) -> OpenAI:
    return OpenAI(base_url=f"{qserver.url}/v1", api_key="x", max_retries=0, timeout=120)


@contextmanager
def long_stream(srv: Server) -> Iterator[httpx.Response]:
    """A long streamed generation that holds the only slot until the block exits (then the
    connection is closed, which must cancel it)."""
    with (
        httpx.Client(timeout=60) as http,
        http.stream("POST", f"{srv.url}/v1/chat/completions", json={**LONG, "stream": True}) as r,
    ):
        assert r.status_code == 200
        lines = r.iter_lines()
        assert next(line for line in lines if line).startswith("data: ")  # role chunk
        assert '"content"' in next(line for line in lines if line)  # generating
        yield r


def cancelled_count(srv: Server) -> int:
    return srv.log().count("generation cancelled")


def test_full_queue_answers_429_then_drains(qserver: Server, client: OpenAI) -> None:
    waiting_result: dict[str, Any] = {}

    def second() -> None:
        waiting_result["resp"] = client.chat.completions.create(model="q", **SHORT)

    with long_stream(qserver):
        qserver.wait_queue(active=1, waiting=0)
        t = threading.Thread(target=second)
        t.start()
        qserver.wait_queue(active=1, waiting=1)
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(model="q", **SHORT)
        err = info.value
        assert err.status_code == 429
        assert err.response.headers["retry-after"] == "3"
        assert err.code == "queue_full"
        assert set(err.response.json()["error"]) == {"message", "type", "param", "code"}
        # the raw route says the same
        r = httpx.post(f"{qserver.url}/generate", json={"prompt": "Hi", "max_tokens": 1})
        assert r.status_code == 429
        assert r.headers["retry-after"] == "3"
    # closing the long stream frees the slot: the waiting request runs and completes
    t.join(timeout=120)
    assert not t.is_alive()
    resp = waiting_result["resp"]
    assert resp.choices[0].message.content
    qserver.wait_queue(active=0, waiting=0)


def test_closed_stream_cancels_generation_and_releases_slot(
    qserver: Server, client: OpenAI
) -> None:
    before = cancelled_count(qserver)
    with long_stream(qserver):
        qserver.wait_queue(active=1, waiting=0)
    qserver.wait_queue(active=0, waiting=0)
    assert cancelled_count(qserver) == before + 1
    resp = client.chat.completions.create(model="q", **SHORT)
    assert resp.choices[0].finish_reason == "length"


def test_abandoned_non_stream_request_is_cancelled(qserver: Server) -> None:
    before = cancelled_count(qserver)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{qserver.url}/v1/chat/completions", json=LONG, timeout=3)
    qserver.wait_queue(active=0, waiting=0)
    assert cancelled_count(qserver) == before + 1


def test_abandoned_waiting_request_leaves_the_queue(qserver: Server) -> None:
    statuses: list[int] = []

    def wait_in_line() -> None:
        statuses.append(
            httpx.post(f"{qserver.url}/v1/chat/completions", json=SHORT, timeout=120).status_code
        )

    with long_stream(qserver):
        qserver.wait_queue(active=1, waiting=0)
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{qserver.url}/v1/chat/completions", json=SHORT, timeout=2)
        qserver.wait_queue(active=1, waiting=0)
        # its place is free again: the next request waits there instead of getting a 429
        t = threading.Thread(target=wait_in_line)
        t.start()
        qserver.wait_queue(active=1, waiting=1)
    t.join(timeout=120)
    assert statuses == [200]
    qserver.wait_queue(active=0, waiting=0)


# longer than the model's 8192-token context: refused once tokenized
TOO_LONG = {"messages": [{"role": "user", "content": "hello " * 9000}], "max_tokens": 1}


def test_a_full_queue_refuses_before_tokenizing(qserver: Server, client: OpenAI) -> None:
    """Admission comes first: with the line full, even a prompt too long for the context gets
    the 429 (it was never tokenized) rather than the 400 tokenizing it would give."""
    waiting: dict[str, Any] = {}

    def second() -> None:
        waiting["resp"] = client.chat.completions.create(model="q", **SHORT)

    with long_stream(qserver):
        qserver.wait_queue(active=1, waiting=0)
        t = threading.Thread(target=second)
        t.start()
        qserver.wait_queue(active=1, waiting=1)
        r = httpx.post(f"{qserver.url}/v1/chat/completions", json=TOO_LONG, timeout=30)
        assert r.status_code == 429, r.text
        assert r.json()["error"]["code"] == "queue_full"
    t.join(timeout=120)
    assert waiting["resp"].choices[0].message.content
    qserver.wait_queue(active=0, waiting=0)


def test_a_prompt_refused_while_waiting_leaves_the_line(qserver: Server) -> None:
    """A request waiting for the slot is tokenized meanwhile: a bad prompt gets its 400 without
    waiting for the running generation, and its place in line is free again."""
    with long_stream(qserver):
        qserver.wait_queue(active=1, waiting=0)
        r = httpx.post(f"{qserver.url}/v1/chat/completions", json=TOO_LONG, timeout=30)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "context_length_exceeded"
        qserver.wait_queue(active=1, waiting=0)
    qserver.wait_queue(active=0, waiting=0)


@pytest.fixture(scope="module")
def two_slots(test_model_dir: Path, start_server: Any) -> Server:
    srv: Server = start_server(
        server_env(test_model_dir, model_id="q2", max_concurrent=2, max_queue=0)
    )
    srv.wait_health("ready")
    return srv


def test_two_admitted_one_generating_and_health_says_so(two_slots: Server) -> None:
    """max_concurrent admits; generation runs one at a time: the second request holds a slot
    and waits for its turn, and /health tells the two apart."""
    result: dict[str, Any] = {}

    def second() -> None:
        result["r"] = httpx.post(f"{two_slots.url}/v1/chat/completions", json=SHORT, timeout=120)

    with long_stream(two_slots):
        two_slots.wait_queue(active=1, waiting=0, running=1)
        t = threading.Thread(target=second)
        t.start()
        two_slots.wait_queue(active=2, waiting=0, running=1)
        # no room left: both slots taken, max_queue=0
        r = httpx.post(f"{two_slots.url}/generate", json={"prompt": "Hi", "max_tokens": 1})
        assert r.status_code == 429
        assert (
            "2 request(s) admitted (max_concurrent=2, 1 generating)" in r.json()["error"]["message"]
        )
        assert "r" not in result  # still waiting for the long one's turn to end
    t.join(timeout=120)
    assert result["r"].status_code == 200
    two_slots.wait_queue(active=0, waiting=0, running=0)
