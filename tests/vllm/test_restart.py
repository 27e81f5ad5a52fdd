"""vLLM killed with SIGKILL under the proxy, then started again on the same port.

This module runs last in the package (files run in name order) and kills the package's one
server; it restarts it whatever happens, so another order costs time, not correctness.
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from tests.proxy.conftest import Proxy, wait_until
from tests.vllm.conftest import SERVED_NAME, VllmServer, anthropic_error, message_text

pytestmark = pytest.mark.slow

CLAUDE = "claude-sonnet-4-5"
# a dead upstream must be answered within this, or the client gives up: no hang
DEAD_TIMEOUT = 30.0


@pytest.fixture
def killable(vllm: VllmServer) -> Iterator[VllmServer]:
    """The package's server, running again after the test, with what the killed one left
    behind gone."""
    try:
        yield vllm
    finally:
        vllm.kill_left_behind()
        if not vllm.running():
            vllm.stop()
            vllm.start()
            vllm.wait_ready()


def test_kill_9_mid_stream_then_dead_then_back(
    killable: VllmServer, proxy: Proxy, claude: anthropic.Anthropic, unique: str
) -> None:
    vllm = killable
    port = vllm.port
    assert message_text(
        claude.messages.create(
            model=CLAUDE, max_tokens=8, messages=[{"role": "user", "content": f"Hi {unique}"}]
        )
    ).strip()

    # killed while streaming: the text so far, then an Anthropic error event, not a hang
    with claude.messages.stream(
        model=CLAUDE,
        max_tokens=400,
        messages=[{"role": "user", "content": f"Write a long story about a dragon. {unique}"}],
    ) as stream:
        pieces = iter(stream.text_stream)
        assert next(pieces)
        vllm.kill9()
        with pytest.raises(anthropic.APIStatusError) as mid:
            list(pieces)
    err = anthropic_error(mid.value)
    assert err["type"] == "api_error"
    assert "broke off its stream" in err["message"], err

    # dead: every route answers a prompt, clear error in its own shape (503, not a 500)
    dead = claude.with_options(timeout=DEAD_TIMEOUT)
    with pytest.raises(anthropic.APIStatusError) as e:
        dead.messages.create(
            model=CLAUDE, max_tokens=8, messages=[{"role": "user", "content": f"Hi {unique}"}]
        )
    assert e.value.status_code == 503
    err = anthropic_error(e.value)
    assert err["type"] == "overloaded_error"
    assert "upstream vllm is unreachable" in err["message"], err

    with (
        pytest.raises(anthropic.APIStatusError) as e,
        dead.messages.stream(
            model=CLAUDE, max_tokens=8, messages=[{"role": "user", "content": f"Yo {unique}"}]
        ) as stream,
    ):
        list(stream.text_stream)
    assert e.value.status_code == 503
    assert anthropic_error(e.value)["type"] == "overloaded_error"

    oai = openai.OpenAI(
        base_url=proxy.url + "/v1", api_key="unused", max_retries=0, timeout=DEAD_TIMEOUT
    )
    with pytest.raises(openai.APIStatusError) as oe:
        oai.chat.completions.create(
            model=SERVED_NAME, max_tokens=8, messages=[{"role": "user", "content": "Hi"}]
        )
    assert oe.value.status_code == 503
    assert oe.value.type == "overloaded_error"

    wait_until(
        lambda: proxy.health()["status"] == "degraded", what="the proxy's /health saying degraded"
    )
    assert proxy.health()["upstreams"][0]["healthy"] is False

    # back on the same port: the proxy answers again, and reports healthy again. (A supervisor
    # that restarts only the killed process leaves the old engine core and worker running; on a
    # GPU host they hold its memory. Here they go first, to leave the 2 cores to the new start.)
    vllm.kill_left_behind()
    vllm.start()
    assert vllm.port == port
    vllm.wait_ready()
    msg = claude.messages.create(
        model=CLAUDE, max_tokens=8, messages=[{"role": "user", "content": f"Back? {unique}"}]
    )
    assert message_text(msg).strip()
    with claude.messages.stream(
        model=CLAUDE, max_tokens=8, messages=[{"role": "user", "content": f"Again? {unique}"}]
    ) as stream:
        assert "".join(stream.text_stream).strip()
    wait_until(lambda: proxy.health()["status"] == "ok", what="the proxy's /health saying ok")
