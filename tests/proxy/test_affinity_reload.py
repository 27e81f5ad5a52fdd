"""Two things a fleet behind one proxy needs, on real proxy processes and two Ollama doubles:
conversation affinity (the turns of one conversation go to the upstream that answered it while
that one is ready, so its prefix cache is reused; when it is not, the conversation moves) and
upstreams reloaded from the config file without a restart and without dropping streams in
flight."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.proxy.conftest import (
    MODEL,
    OllamaDouble,
    Proxy,
    upstream,
    wait_until,
    write_active_model,
)
from vastllm.proxy.neutral import ChatRequest
from vastllm.proxy.upstreams.affinity import Affinity, conversation_key

SYSTEM = "You are Claude Code, a coding agent."


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fleet")


@pytest.fixture
def hosts(tmp: Path) -> Iterator[list[OllamaDouble]]:
    ds = [OllamaDouble(tmp, [MODEL]), OllamaDouble(tmp, [MODEL])]
    yield ds
    for d in ds:
        d.kill()


def fleet_proxy(tmp: Path, hosts: list[OllamaDouble]) -> Proxy:
    return Proxy(
        tmp,
        upstreams=[upstream(f"host{i}", d) for i, d in enumerate(hosts)],
        active_model_file=str(write_active_model(tmp / "active.json", 32768)),
        redis_url="",
    )


def turn(proxy: Proxy, first: str, *later: str, **extra: Any) -> httpx.Response:
    """One turn of a conversation: its first user message, then the later exchange."""
    messages: list[dict[str, str]] = [{"role": "user", "content": first}]
    for text in later:
        messages += [{"role": "assistant", "content": "ok"}, {"role": "user", "content": text}]
    return httpx.post(
        proxy.url + "/v1/messages",
        json={
            "model": "claude-opus-4-8",
            "max_tokens": 20,
            "system": SYSTEM,
            "messages": messages,
            **extra,
        },
        timeout=30,
    )


def affinity(proxy: Proxy) -> dict[str, float]:
    out = {}
    for line in httpx.get(proxy.url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("vastllm_proxy_affinity_total{"):
            out[line.split('"')[1]] = float(line.split()[-1])
    return out


def test_a_conversation_stays_on_its_host_and_moves_when_that_host_dies(
    tmp: Path, hosts: list[OllamaDouble]
) -> None:
    proxy = fleet_proxy(tmp, hosts)
    try:
        first = turn(proxy, "fix the bug")
        home = first.headers["x-vastllm-upstream"]
        # four more turns of the same conversation, with other conversations in between that
        # would rotate a plain least-outstanding choice
        for i in range(4):
            assert turn(proxy, f"another conversation {i}").status_code == 200
            again = turn(proxy, "fix the bug", *[f"step {j}" for j in range(i + 1)])
            assert again.headers["x-vastllm-upstream"] == home
        assert affinity(proxy) == {"kept": 4, "moved": 0, "new": 5}

        hosts[int(home[-1])].kill()
        moved = turn(proxy, "fix the bug", "after the crash")
        assert moved.status_code == 200
        new_home = moved.headers["x-vastllm-upstream"]
        assert new_home != home
        assert affinity(proxy)["moved"] == 1
        assert turn(proxy, "fix the bug", "later").headers["x-vastllm-upstream"] == new_home
        assert affinity(proxy)["kept"] == 5
    finally:
        proxy.stop()


def test_parallel_requests_of_one_conversation_spread_past_the_imbalance(
    tmp: Path, hosts: list[OllamaDouble]
) -> None:
    """A conversation keeps its host only while that host has at most affinity_max_imbalance
    more requests in flight than the least busy one: eight parallel requests of one
    conversation (sub-agents, tool calls) do not all queue on one host."""
    for d in hosts:
        d.config(first_token_delay=1.0)
    proxy = Proxy(
        tmp,
        upstreams=[upstream(f"host{i}", d) for i, d in enumerate(hosts)],
        active_model_file=str(write_active_model(tmp / "active.json", 32768)),
        redis_url="",
        affinity_max_imbalance=2,
    )
    try:
        home = turn(proxy, "one conversation", stream=True).headers["x-vastllm-upstream"]
        served: list[str] = []
        threads = [
            threading.Thread(
                target=lambda n=n: served.append(
                    turn(proxy, "one conversation", f"part {n}", stream=True).headers[
                        "x-vastllm-upstream"
                    ]
                )
            )
            for n in range(8)
        ]
        for t in threads:
            t.start()
            time.sleep(0.05)  # one after another, each while the earlier ones are in flight
        for t in threads:
            t.join(timeout=30)
        assert len(served) == 8
        # each stays on the conversation's host until that one is 3 ahead of the other
        assert served.count(home) < 8, served
        assert len(served) - served.count(home) >= 2, served
        assert affinity(proxy)["moved"] >= 2
    finally:
        proxy.stop()


def test_the_conversation_key_is_the_system_prompt_and_the_first_user_message() -> None:
    def req(*messages: tuple[str, str]) -> ChatRequest:
        return ChatRequest(model="m", messages=[{"role": r, "content": c} for r, c in messages])

    one = conversation_key(req(("system", "s"), ("user", "a")))
    assert one == conversation_key(
        req(("system", "s"), ("user", "a"), ("assistant", "x"), ("user", "b"))
    )
    assert one != conversation_key(req(("system", "t"), ("user", "a")))
    assert one != conversation_key(req(("system", "s"), ("user", "b")))
    assert conversation_key(req(("system", "s"))) is None
    bounded = Affinity(max_conversations=2)
    for key in ("k1", "k2", "k3"):
        bounded.answered(key, "h")
    assert len(bounded) == 2
    assert bounded.preferred("k1") is None  # the oldest went out


def stream_into(proxy: Proxy, text: str, out: dict[str, Any]) -> None:
    """Stream an answer in a thread: ``out["upstream"]`` as soon as the headers are in (the
    test's signal that the stream has started), ``out["events"]`` at its end."""
    with httpx.stream(
        "POST",
        proxy.url + "/v1/messages",
        json={
            "model": "claude-opus-4-8",
            "max_tokens": 20,
            "stream": True,
            "messages": [{"role": "user", "content": text}],
        },
        timeout=60,
    ) as r:
        out["upstream"] = r.headers["x-vastllm-upstream"]
        out["events"] = [
            json.loads(line[5:]) for line in r.iter_lines() if line.startswith("data:")
        ]


def test_upstreams_reload_from_the_config_file_and_streams_in_flight_finish(
    tmp: Path, hosts: list[OllamaDouble]
) -> None:
    old, new = hosts
    proxy = fleet_proxy(tmp, [old])
    try:
        old.config(token_delay=0.3)  # a stream of ~6 words takes about 2 s
        streamed: dict[str, Any] = {}
        t = threading.Thread(target=stream_into, args=(proxy, "a long answer please", streamed))
        t.start()
        wait_until(lambda: "upstream" in streamed, what="the stream's first byte")

        cfg = json.loads(proxy.config.read_text())
        cfg["upstreams"] = [upstream("host1", new)]
        proxy.config.write_text(json.dumps(cfg))
        wait_until(
            lambda: [u["name"] for u in proxy.health()["upstreams"]] == ["host1"],
            what="the reloaded upstreams",
        )
        assert turn(proxy, "after the reload").headers["x-vastllm-upstream"] == "host1"

        t.join(30)
        assert streamed["upstream"] == "host0"
        assert streamed["events"][-1]["type"] == "message_stop"  # finished on the old host
        text = "".join(
            e["delta"]["text"] for e in streamed["events"] if e["type"] == "content_block_delta"
        )
        assert text == "You said: a long answer please"

        # a file that does not load changes nothing, and says why without quoting it
        proxy.config.write_text(
            '{"upstreams": [{"name": "x", "kind": "nope", "base_url": "sk-secret"}]}'
        )
        time.sleep(1.5)
        assert [u["name"] for u in proxy.health()["upstreams"]] == ["host1"]
        log = proxy.log.read_text()
        assert "upstreams reloaded" in log
        assert "changed but was not applied" in log
        assert "sk-secret" not in log
    finally:
        old.config(token_delay=0)
        proxy.stop()
