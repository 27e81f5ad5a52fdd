"""``vastllm chat`` against a real proxy on loopback (upstream: the Ollama test double, which
answers "You said: <last user message>"), and against a port nobody listens on."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import assert_clean, cli_process, invoke, start_proxy
from tests.proxy.conftest import OllamaDouble, Proxy
from tests.support import free_port

NO_KEYS: dict[str, str | None] = {"VASTLLM_PROXY_API_KEY": None, "ANTHROPIC_AUTH_TOKEN": None}
KEY = "sk-vastllm-cli-test-key"


@pytest.fixture(scope="module")
def proxy(cli_workdir: Path, double: OllamaDouble, active_model_file: Path) -> Iterator[Proxy]:
    p = start_proxy(cli_workdir, double, active_model_file)
    yield p
    p.stop()


@pytest.fixture(scope="module")
def keyed_proxy(
    cli_workdir: Path, double: OllamaDouble, active_model_file: Path
) -> Iterator[Proxy]:
    p = start_proxy(cli_workdir, double, active_model_file, api_keys=[KEY])
    yield p
    p.stop()


def test_streams_the_answer(proxy: Proxy) -> None:
    result = invoke("chat", "hello there", "--url", proxy.url, env=NO_KEYS)
    assert_clean(result)
    assert result.exit_code == 0, result.output
    assert result.stdout == "You said: hello there\n"
    assert result.stderr == ""


def test_text_is_written_while_the_answer_still_streams(knobs: OllamaDouble, proxy: Proxy) -> None:
    knobs.config(token_delay=0.3)
    words = "one two three four five six seven eight nine ten"
    proc = cli_process("chat", words, "--url", proxy.url)
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        first = proc.stdout.read(1)  # blocks until the first text arrives
        assert proc.poll() is None  # ten more tokens are still on their way
        rest = proc.stdout.read()  # to the end of the output
        err = proc.stderr.read()
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
    assert proc.returncode == 0, err
    assert first + rest == f"You said: {words}\n"


def test_no_stream_prints_the_whole_answer(proxy: Proxy) -> None:
    result = invoke("chat", "all at once", "--url", proxy.url, "--no-stream", env=NO_KEYS)
    assert_clean(result)
    assert result.exit_code == 0, result.output
    assert result.stdout == "You said: all at once\n"


def test_max_tokens_and_model_reach_the_model(double: OllamaDouble, proxy: Proxy) -> None:
    args = ["--url", proxy.url, "--max-tokens", "3", "--model", "claude-opus-4-1"]
    result = invoke("chat", "hello there friend", *args, env=NO_KEYS)
    assert result.exit_code == 0, result.output
    assert result.stdout == "You said: hello\n"  # three tokens: "You", " said:", " hello"
    last = double.last_request()
    assert last["model"] == "qwen2.5-coder:7b"  # claude-* is the active model


def test_closed_port_says_the_tunnel_is_not_up() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = invoke("chat", "anyone there?", "--url", url, env=NO_KEYS)
    assert_clean(result)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"cannot connect to {url}: the tunnel to the GPU host is not up" in result.stderr
    assert "vastllm tunnel" in result.stderr
    assert "vastllm status" in result.stderr


def test_key_from_the_environment_never_printed(keyed_proxy: Proxy) -> None:
    url = ["--url", keyed_proxy.url]
    missing = invoke("chat", "who am I", *url, env=NO_KEYS)
    assert_clean(missing)
    assert missing.exit_code == 1
    assert "the proxy answered HTTP 401: authentication_error" in missing.stderr
    assert "VASTLLM_PROXY_API_KEY" in missing.stderr

    wrong = invoke("chat", "who am I", *url, env={**NO_KEYS, "VASTLLM_PROXY_API_KEY": "sk-nope"})
    assert wrong.exit_code == 1
    assert "invalid API key" in wrong.stderr
    assert "sk-nope" not in wrong.output

    for name in ("VASTLLM_PROXY_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
        ok = invoke("chat", "who am I", *url, env={**NO_KEYS, name: KEY})
        assert ok.exit_code == 0, ok.output
        assert ok.stdout == "You said: who am I\n"
        assert KEY not in ok.output


def test_upstream_error_is_the_anthropic_error_message(knobs: OllamaDouble, proxy: Proxy) -> None:
    knobs.config(fail_status=500, fail_message="the GPU caught fire")
    for extra in ([], ["--no-stream"]):
        result = invoke("chat", "hello", "--url", proxy.url, *extra, env=NO_KEYS)
        assert_clean(result)
        assert result.exit_code == 1, result.output
        assert result.stdout == ""
        assert "the proxy answered HTTP 5" in result.stderr
        assert "the GPU caught fire" in result.stderr


def test_error_in_the_middle_of_the_stream(knobs: OllamaDouble, proxy: Proxy) -> None:
    knobs.config(fail_after_tokens=2)
    result = invoke("chat", "a b c d e f", "--url", proxy.url, env=NO_KEYS)
    assert_clean(result)
    assert result.exit_code == 1, result.output
    assert result.stdout == "You said:\n"  # the two tokens that came, then a newline
    assert "the answer failed:" in result.stderr
