"""The request guard (proxy/guard.py): what a web page in the workstation's browser could send
through the tunnel is refused, what the SDKs, Claude Code and curl send is not; a public bind
needs API keys; bodies nested deeper than orjson re-encodes are a 400, not a 500."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.proxy.conftest import MODEL, OllamaDouble, Proxy, upstream
from tests.support import REPO, free_port
from vastllm.config_file import HostAllowList, normalize_host, normalize_origin, split_list

MSG = {"role": "user", "content": "hi"}
MESSAGES = {"model": "claude-opus-4-8", "max_tokens": 5, "messages": [MSG]}
CHAT = {"model": MODEL, "messages": [MSG], "max_tokens": 5}
BROWSER = {"Origin": "http://attacker.example", "Host": "attacker.example:8082"}
FRONT_END = "https://chat.example.com"


def anthropic_error(r: httpx.Response, status: int, kind: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == kind
    return str(body["error"]["message"])


def openai_error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    return dict(err)


def post(proxy: Proxy, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(proxy.url + path, content=body, headers=headers, timeout=30)


# -- Content-Type ------------------------------------------------------------------------------

RAW = json.dumps(MESSAGES).encode()


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        None,
    ],
)
def test_a_post_that_is_not_json_is_415(proxy: Proxy, content_type: str | None) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    r = post(proxy, "/v1/messages", RAW, headers)
    assert "application/json" in anthropic_error(r, 415, "invalid_request_error")
    for path in ("/v1/chat/completions", "/chat", "/generate"):
        err = openai_error(post(proxy, path, RAW, headers), 415)
        assert err["type"] == "invalid_request_error"
    r = post(proxy, "/v1/messages/count_tokens", RAW, headers)
    anthropic_error(r, 415, "invalid_request_error")


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
def test_json_in_any_spelling_is_served(proxy: Proxy, content_type: str) -> None:
    r = post(proxy, "/v1/messages/count_tokens", RAW, {"Content-Type": content_type})
    assert r.status_code == 200, r.text


def test_gets_and_unknown_routes_need_no_content_type(proxy: Proxy) -> None:
    for path in ("/", "/health", "/metrics", "/v1/models"):
        assert (
            httpx.get(proxy.url + path, headers={"Content-Type": "text/plain"}).status_code == 200
        )
    assert httpx.head(proxy.url + "/").status_code == 200  # Claude Code's first request
    # no route: a 404 whatever the body says it is
    anthropic_error(
        post(proxy, "/v1/nothing", b"x", {"Content-Type": "text/plain"}), 404, "not_found_error"
    )


# -- Host ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["attacker.example", "attacker.example:8082", "127.0.0.1.nip.io", "localhost.attacker"]
)
def test_a_foreign_host_is_421(proxy: Proxy, host: str) -> None:
    headers = {"Host": host, "Content-Type": "application/json"}
    assert "allowed_hosts" in anthropic_error(
        post(proxy, "/v1/messages", RAW, headers), 421, "invalid_request_error"
    )
    openai_error(post(proxy, "/v1/chat/completions", RAW, headers), 421)
    assert httpx.get(proxy.url + "/health", headers={"Host": host}).status_code == 421


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.0.0.1:{port}", "localhost", "LOCALHOST:{port}", "[::1]", "[::1]:{port}"],
)
def test_loopback_names_are_served_on_any_port(proxy: Proxy, host: str) -> None:
    h = host.format(port=proxy.port)
    assert httpx.get(proxy.url + "/health", headers={"Host": h}).status_code == 200
    # the tunnel's local port differs from the proxy's: still this machine
    assert httpx.get(proxy.url + "/health", headers={"Host": "localhost:18082"}).status_code == 200
    r = post(
        proxy, "/v1/messages/count_tokens", RAW, {"Host": h, "Content-Type": "application/json"}
    )
    assert r.status_code == 200, r.text


def test_sdks_send_what_the_guard_wants(proxy: Proxy) -> None:
    a = anthropic.Anthropic(base_url=f"http://localhost:{proxy.port}", api_key="x", max_retries=0)
    assert a.messages.count_tokens(model="claude-opus-4-8", messages=[MSG]).input_tokens > 0  # type: ignore[list-item]
    o = openai.OpenAI(base_url=f"http://127.0.0.1:{proxy.port}/v1", api_key="x", max_retries=0)
    assert o.models.list().data


# -- Origin ----------------------------------------------------------------------------------


def test_a_browser_origin_is_403(proxy: Proxy) -> None:
    for origin in ("http://attacker.example", "null", f"http://127.0.0.1:{proxy.port}"):
        headers = {"Origin": origin, "Content-Type": "application/json"}
        msg = anthropic_error(post(proxy, "/v1/messages", RAW, headers), 403, "permission_error")
        assert "cors_origins" in msg
        openai_error(post(proxy, "/v1/chat/completions", RAW, headers), 403)
        assert httpx.get(proxy.url + "/v1/models", headers={"Origin": origin}).status_code == 403
    # the DNS-rebinding request of the issue: text/plain, foreign Host and Origin
    r = post(proxy, "/v1/messages", RAW, {**BROWSER, "Content-Type": "text/plain"})
    assert r.status_code in (403, 421, 415)
    assert "access-control-allow-origin" not in r.headers


def test_a_preflight_without_cors_origins_is_refused(proxy: Proxy) -> None:
    r = httpx.options(
        proxy.url + "/v1/messages",
        headers={"Origin": FRONT_END, "Access-Control-Request-Method": "POST"},
    )
    assert r.status_code == 403
    assert "access-control-allow-origin" not in r.headers


@pytest.fixture(scope="module")
def front(workdir: Path, double: OllamaDouble) -> Iterator[Proxy]:
    """A proxy for a browser front end on FRONT_END, also reached as gpu.example (port 8443)."""
    p = Proxy(
        workdir,
        upstreams=[upstream("front", double)],
        default_model=MODEL,
        redis_url="",
        active_model_file=str(workdir / "absent.json"),
        cors_origins=[FRONT_END + "/"],
        allowed_hosts=["gpu.example:8443", "Proxy.Example"],
    )
    yield p
    p.stop()


def test_listed_origin_gets_preflight_and_cors_headers(front: Proxy) -> None:
    r = httpx.options(
        front.url + "/v1/messages",
        headers={
            "Origin": FRONT_END,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-api-key, anthropic-version",
        },
    )
    assert r.status_code == 204, r.text
    assert r.headers["access-control-allow-origin"] == FRONT_END
    assert "POST" in r.headers["access-control-allow-methods"]
    assert r.headers["access-control-allow-headers"] == "content-type, x-api-key, anthropic-version"
    headers = {"Origin": FRONT_END, "Content-Type": "application/json"}
    whole = post(front, "/v1/messages", RAW, headers)
    assert whole.status_code == 200, whole.text
    assert whole.headers["access-control-allow-origin"] == FRONT_END
    assert "x-vastllm-cache" in whole.headers["access-control-expose-headers"]
    assert "Origin" in whole.headers.get_list("vary")
    stream = post(front, "/v1/messages", RAW.replace(b"{", b'{"stream": true, ', 1), headers)
    assert stream.status_code == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.headers["access-control-allow-origin"] == FRONT_END
    # errors carry them too, so the page can read why
    bad = post(front, "/v1/messages", b"{}", headers)
    assert bad.status_code == 400
    assert bad.headers["access-control-allow-origin"] == FRONT_END
    # other origins are still refused, and requests without Origin get no CORS headers
    other = {"Origin": "https://evil.example", "Content-Type": "application/json"}
    assert post(front, "/v1/messages", RAW, other).status_code == 403
    assert "access-control-allow-origin" not in httpx.get(front.url + "/health").headers


def test_allowed_hosts(front: Proxy) -> None:
    def status(host: str) -> int:
        return httpx.get(front.url + "/health", headers={"Host": host}).status_code

    assert status("gpu.example:8443") == 200
    assert status("gpu.example:8444") == 421  # an entry with a port allows that port only
    assert status("gpu.example") == 421
    assert status("proxy.example") == 200  # names match in any case, on any port
    assert status("PROXY.example:1234") == 200
    assert status("localhost:9") == 200  # loopback names stay allowed


# -- public bind -----------------------------------------------------------------------------


def run_proxy(
    tmp_path: Path, settings: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "proxy.json"
    cfg.write_text(settings)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VASTLLM_PROXY_")}
    return subprocess.run(
        [sys.executable, "-m", "vastllm.proxy"],
        env={**clean, "VASTLLM_PROXY_CONFIG": str(cfg), **(env or {})},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "gpu.example"])
def test_public_bind_without_keys_refuses_to_start(tmp_path: Path, host: str) -> None:
    # a free port and a short timeout, should it start after all
    done = run_proxy(tmp_path, json.dumps({"host": host, "port": free_port()}))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for name in ("host", "api_keys", "allow_public_without_keys", "VASTLLM_PROXY_API_KEYS"):
        assert name in lines[0]
    assert "Traceback" not in done.stderr


def test_public_bind_is_allowed_with_keys_or_when_accepted() -> None:
    from vastllm.proxy.settings import ProxySettings  # noqa: PLC0415

    assert ProxySettings(host="0.0.0.0", api_keys=["k"]).host == "0.0.0.0"  # type: ignore[list-item]
    assert ProxySettings(host="0.0.0.0", allow_public_without_keys=True).allow_public_without_keys
    for loopback in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert ProxySettings(host=loopback).host == loopback
    with pytest.raises(ValueError, match="allow_public_without_keys"):
        ProxySettings(host="0.0.0.0", api_keys=[""])  # type: ignore[list-item]  # empty: no key


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("allowed_hosts", '["http://gpu.example/"]'),
        ("allowed_hosts", '["gpu.example:99999"]'),
        ("cors_origins", '["chat.example.com"]'),
        ("cors_origins", '["https://chat.example.com/app"]'),
    ],
)
def test_bad_allow_lists_are_refused(tmp_path: Path, field: str, value: str) -> None:
    settings = json.dumps({"port": free_port()})
    done = run_proxy(tmp_path, settings, {f"VASTLLM_PROXY_{field.upper()}": value})
    assert done.returncode == 2
    assert field in done.stderr


# -- nesting ---------------------------------------------------------------------------------


def nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


@pytest.mark.parametrize("depth", [200, 260, 600])
@pytest.mark.parametrize("temperature", [0, 1])  # cached (a key is computed) and bypassed
def test_deep_nesting_is_400(proxy: Proxy, depth: int, temperature: int) -> None:
    tool = {"name": "deep", "description": "d", "input_schema": nested(depth // 2)}
    body = {**MESSAGES, "temperature": temperature, "tools": [tool]}
    r = httpx.post(proxy.url + "/v1/messages", json=body, timeout=30)
    if depth == 200:
        assert r.status_code == 200, r.text
        return
    assert "nested too deeply" in anthropic_error(r, 400, "invalid_request_error")
    use = {"type": "tool_use", "id": "t1", "name": "deep", "input": nested(depth // 2)}
    turns = [
        MSG,
        {"role": "assistant", "content": [use]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}],
        },
    ]
    r = httpx.post(proxy.url + "/v1/messages", json={**MESSAGES, "messages": turns}, timeout=30)
    anthropic_error(r, 400, "invalid_request_error")
    fn = {"type": "function", "function": {"name": "deep", "parameters": nested(depth // 2)}}
    r = httpx.post(
        proxy.url + "/v1/chat/completions",
        json={**CHAT, "temperature": temperature, "tools": [fn]},
        timeout=30,
    )
    assert "nested too deeply" in openai_error(r, 400)["message"]
    assert "Traceback" not in proxy.log.read_text()


# -- the shared pieces (vastllm.config_file) ---------------------------------------------------


def test_host_allow_list() -> None:
    hosts = HostAllowList(["gpu.example:8443", "Proxy.Example", "::1"], "10.0.0.5")
    allowed = ["127.0.0.1", "127.0.0.1:1", "LocalHost:8082", "[::1]", "[::1]:9", "10.0.0.5:8082"]
    allowed += ["gpu.example:8443", "proxy.example", "PROXY.EXAMPLE:1", "", None]
    refused = ["gpu.example", "gpu.example:8444", "evil", "[::1", "localhost.evil", "10.0.0.6"]
    refused += ["127.0.0.1.nip.io", "[::2]:8082", "127.0.0.2"]
    for _ in range(2):  # the second time from what it remembered
        for host in allowed:
            assert hosts.allows(host), host
        for host in refused:
            assert not hosts.allows(host), host
    assert HostAllowList(["*"], "127.0.0.1").allows("anything.example")
    assert not HostAllowList([], "0.0.0.0").allows("0.0.0.0:8082")  # a wildcard is no name


@pytest.mark.parametrize(
    ("entry", "normal"),
    [("Gpu.Example", "gpu.example"), ("gpu.example:8443", "gpu.example:8443"), ("::1", "[::1]"),
     ("[::1]:80", "[::1]:80"), ("*", "*"), (" 10.0.0.1 ", "10.0.0.1")],
)  # fmt: skip
def test_normalize_host(entry: str, normal: str) -> None:
    assert normalize_host(entry) == normal


@pytest.mark.parametrize(
    "entry", ["http://gpu.example", "gpu.example/", "gpu.example:0", "gpu.example:x", "", "[::1"]
)
def test_normalize_host_refuses(entry: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the messages are checked end to end
        normalize_host(entry)


@pytest.mark.parametrize(
    ("entry", "normal"),
    [("https://Chat.Example.com/", "https://chat.example.com"),
     ("https://chat.example.com:443", "https://chat.example.com"),
     ("http://localhost:3000", "http://localhost:3000")],
)  # fmt: skip
def test_normalize_origin(entry: str, normal: str) -> None:
    assert normalize_origin(entry) == normal


@pytest.mark.parametrize(
    "entry", ["chat.example.com", "ftp://x", "https://x/app", "https://u@x", "https://x:99999"]
)
def test_normalize_origin_refuses(entry: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        normalize_origin(entry)


def test_split_list() -> None:
    assert split_list("a, b,,c ") == ["a", "b", "c"]
    assert split_list('["a", "b"]') == ["a", "b"]
    assert split_list('{"a": 1}') == {"a": 1}  # then refused as not a list
    assert split_list(["x"]) == ["x"]
