"""The idle watcher reading a real proxy process (``python -m vastllm.proxy`` in front of the
Ollama double): a long stream through it keeps the host running, its end starts the idle time,
and requests in time keep it running too; then exactly one stop call to the Vast.ai API double."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.doubles.vastai_api_double import VastApiDouble
from tests.idle.test_watcher import Watcher, calls, keep, wait_for
from tests.proxy.conftest import MODEL, OllamaDouble, Proxy, upstream, write_active_model
from tests.support import free_port


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("idle-real-proxy")


@pytest.fixture(scope="module")
def ollama(tmp: Path) -> Iterator[OllamaDouble]:
    double = OllamaDouble(tmp, [MODEL])
    yield double
    double.kill()


@pytest.fixture(scope="module")
def proxy(tmp: Path, ollama: OllamaDouble) -> Iterator[Proxy]:
    p = Proxy(tmp, upstreams=[upstream("main", ollama)],
              active_model_file=str(write_active_model(tmp / "active.json", 32768)),
              redis_url="")
    yield p
    p.stop()


@pytest.fixture
def api() -> Iterator[VastApiDouble]:
    with VastApiDouble(free_port()) as double:
        yield double


@pytest.fixture
def watcher(tmp_path: Path, proxy: Proxy, api: VastApiDouble) -> Iterator[Watcher]:
    w = Watcher(tmp_path, proxy.url + "/metrics", api)
    yield w
    w.stop()


def _ask(proxy: Proxy, text: str, *, stream: bool = False) -> list[str]:
    body = {"model": "claude-opus-4-8", "max_tokens": 20, "stream": stream,
            "messages": [{"role": "user", "content": text}]}
    with httpx.stream("POST", proxy.url + "/v1/messages", json=body, timeout=60) as r:
        assert r.status_code == 200
        return list(r.iter_lines())


def test_a_long_stream_through_the_proxy_keeps_the_host_running(
    watcher: Watcher, api: VastApiDouble, proxy: Proxy, ollama: OllamaDouble
) -> None:
    ollama.config(token_delay=0.4)  # ~7 words: about 3 s, five idle periods
    try:
        done: dict[str, Any] = {}
        t = threading.Thread(target=lambda: done.update(lines=_ask(
            proxy, "a long answer please", stream=True)))
        t.start()
        t.join(30)
        assert any("message_stop" in line for line in done["lines"])
        assert calls(api) == []
    finally:
        ollama.config(token_delay=0)
    wait_for(lambda: calls(api))
    time.sleep(1.0)
    assert [c["body"] for c in calls(api)] == [{"state": "stopped"}]


def test_requests_in_time_through_the_proxy_keep_the_host_running(
    watcher: Watcher, api: VastApiDouble, proxy: Proxy
) -> None:
    keep(2.5, lambda: _ask(proxy, "hello"))
    assert calls(api) == []
    wait_for(lambda: calls(api))
    assert len(calls(api)) == 1
