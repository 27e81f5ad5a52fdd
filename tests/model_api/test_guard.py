"""The request guard (model_api/guard.py) and the other answers that used to be 500s or nothing:
a foreign Host (421), a browser Origin (403), a POST that is not JSON (415), an oversized body
(413), a seed torch cannot take (400), deep nesting (400), and a public bind (refused).

The guard needs no model: most tests run on a server whose model directory does not exist (it
answers 503 ``model_load_failed`` to whatever gets past the guard).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.model_api.conftest import Server, server_env
from tests.support import REPO, free_port

USER = {"role": "user", "content": "hi"}
CHAT = {"messages": [USER], "max_tokens": 1, "temperature": 0}
POSTS = ("/v1/chat/completions", "/chat", "/generate")
BODY = json.dumps({"prompt": "hi", **CHAT}).encode()
LIMIT = 4096
FRONT_END = "https://chat.example.com"


def openai_error(r: httpx.Response, status: int, type_: str = "invalid_request_error") -> Any:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == type_
    return err


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory, start_server: Any) -> Server:
    """No model (answers 503 past the guard), a 4 KiB body limit, one CORS origin, two names."""
    missing = tmp_path_factory.mktemp("guard") / "no-model"
    srv: Server = start_server(
        server_env(
            missing,
            max_body_bytes=LIMIT,
            cors_origins=FRONT_END,
            allowed_hosts='["gpu.example:8443", "Model.Example"]',
        )
    )
    srv.wait_health("error")
    return srv


def post(srv: Server, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(srv.url + path, content=body, headers=headers, timeout=30)


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded"],
)
def test_a_post_that_is_not_json_is_415(bare: Server, content_type: str | None) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    for path in POSTS:
        err = openai_error(post(bare, path, BODY, headers), 415)
        assert "application/json" in err["message"]
        assert err["code"] == "unsupported_media_type"


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "APPLICATION/JSON"])
def test_json_in_any_spelling_gets_past_the_guard(bare: Server, content_type: str) -> None:
    r = post(bare, "/generate", BODY, {"Content-Type": content_type})
    assert r.status_code == 503, r.text  # past the guard: no model here
    assert r.json()["error"]["code"] == "model_load_failed"


def test_gets_and_unknown_routes_need_no_content_type(bare: Server) -> None:
    assert httpx.get(bare.url + "/ping", headers={"Content-Type": "text/plain"}).status_code == 200
    assert httpx.get(bare.url + "/health").status_code == 503  # JSON, model failed
    assert httpx.get(bare.url + "/v1/models").status_code == 200
    r = post(bare, "/v1/nothing", b"x", {"Content-Type": "text/plain"})
    assert openai_error(r, 404)["code"] == "not_found"


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8081", "gpu.example"])
def test_a_foreign_host_is_421(bare: Server, host: str) -> None:
    err = openai_error(httpx.get(bare.url + "/ping", headers={"Host": host}), 421)
    assert "allowed_hosts" in err["message"]
    headers = {"Host": host, "Content-Type": "application/json"}
    openai_error(post(bare, "/v1/chat/completions", BODY, headers), 421)


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.0.0.1:{port}", "localhost:18081", "[::1]:{port}", "[::1]",
     "gpu.example:8443", "model.example", "MODEL.EXAMPLE:1"],
)  # fmt: skip
def test_loopback_and_allowed_hosts_are_served(bare: Server, host: str) -> None:
    h = host.format(port=bare.port)
    assert httpx.get(bare.url + "/ping", headers={"Host": h}).status_code == 200


def test_a_browser_origin_is_403(bare: Server) -> None:
    for origin in ("http://attacker.example", "null", f"http://127.0.0.1:{bare.port}"):
        headers = {"Origin": origin, "Content-Type": "application/json"}
        err = openai_error(
            post(bare, "/v1/chat/completions", BODY, headers), 403, "permission_error"
        )
        assert "cors_origins" in err["message"]
        r = httpx.get(bare.url + "/v1/models", headers={"Origin": origin})
        openai_error(r, 403, "permission_error")
        assert "access-control-allow-origin" not in r.headers
    # the DNS-rebinding request of the issue: text/plain, foreign Host and Origin
    rebinding = {
        "Origin": "http://attacker.example",
        "Host": "attacker.example:8081",
        "Content-Type": "text/plain",
    }
    assert post(bare, "/generate", BODY, rebinding).status_code in (403, 415, 421)


def test_a_listed_origin_gets_preflight_and_cors_headers(bare: Server) -> None:
    r = httpx.options(
        bare.url + "/v1/chat/completions",
        headers={
            "Origin": FRONT_END,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization",
        },
    )
    assert r.status_code == 204, r.text
    assert r.headers.get_list("access-control-allow-origin") == [FRONT_END]
    assert r.headers["access-control-allow-headers"] == "content-type, authorization"
    assert "POST" in r.headers["access-control-allow-methods"]
    got = httpx.get(bare.url + "/v1/models", headers={"Origin": FRONT_END})
    assert got.status_code == 200
    assert got.headers.get_list("access-control-allow-origin") == [FRONT_END]
    assert "Origin" in got.headers.get_list("vary")
    # errors carry them too, so the page can read why
    bad = post(bare, "/generate", BODY, {"Origin": FRONT_END, "Content-Type": "text/plain"})
    assert bad.status_code == 415
    assert bad.headers["access-control-allow-origin"] == FRONT_END
    # an OPTIONS that is not a preflight is left to the routes
    assert httpx.options(bare.url + "/ping", headers={"Origin": FRONT_END}).status_code == 405
    other = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    assert httpx.options(bare.url + "/v1/chat/completions", headers=other).status_code == 403


def test_an_oversized_body_is_413(bare: Server) -> None:
    big = json.dumps({"prompt": "x" * (2 * LIMIT)}).encode()
    headers = {"Content-Type": "application/json"}
    for path in POSTS:
        err = openai_error(post(bare, path, big, headers), 413)
        assert err["code"] == "request_too_large"
        assert str(LIMIT) in err["message"]

    def chunks() -> Any:  # no Content-Length: counted as it arrives
        yield b'{"prompt": "'
        for _ in range(8):
            yield b"y" * 1024
        yield b'"}'

    openai_error(post(bare, "/generate", chunks(), headers), 413)  # type: ignore[arg-type]
    # at the limit: past the guard
    just = json.dumps({"prompt": "x" * (LIMIT - 20)}).encode()
    assert len(just) <= LIMIT
    assert post(bare, "/generate", just, headers).status_code == 503


def test_a_body_read_in_pieces_reaches_the_route_whole(bare: Server) -> None:
    def chunks() -> Any:
        yield b'{"prompt": "hi", '
        yield b'"seed": 18446744073709551616}'

    r = post(bare, "/generate", chunks(), {"Content-Type": "application/json"})  # type: ignore[arg-type]
    assert openai_error(r, 400)["param"] == "seed"


@pytest.mark.parametrize("seed", [2**64, 2**70, -(2**63) - 1])
def test_a_seed_torch_cannot_take_is_400(bare: Server, seed: int) -> None:
    for path, body in (
        ("/generate", {"prompt": "hi", "seed": seed}),
        ("/chat", {**CHAT, "seed": seed}),
        ("/v1/chat/completions", {**CHAT, "seed": seed}),
    ):
        r = httpx.post(bare.url + path, json=body, timeout=30)
        assert openai_error(r, 400)["param"] == "seed"


@pytest.mark.parametrize("seed", [0, 2**64 - 1, -(2**63)])
def test_seeds_at_the_ends_of_the_range_generate(server: Server, seed: int) -> None:
    r = httpx.post(
        server.url + "/generate",
        json={"prompt": "Hi", "max_tokens": 1, "temperature": 1, "seed": seed},
        timeout=60,
    )
    assert r.status_code == 200, r.text


def nested(depth: int) -> bytes:
    """A JSON schema nested ``2 * depth`` levels, written out (json.dumps stops near 1000)."""
    return b'{"type":"object","properties":{"x":' * depth + b'{"type":"string"}' + b"}}" * depth


@pytest.mark.parametrize("depth", [130, 300, 2000])
def test_deeply_nested_tools_are_not_a_500(server: Server, depth: int) -> None:
    tool = b'{"type":"function","function":{"name":"deep","parameters":' + nested(depth) + b"}}"
    body = b'{"messages":[{"role":"user","content":"hi"}],"max_tokens":1,"tools":[' + tool + b"]}"
    r = post(server, "/v1/chat/completions", body, {"Content-Type": "application/json"})
    assert r.status_code in (200, 400), r.text
    assert "Traceback" not in server.log()


def test_the_openai_sdk_gets_past_the_guard(server: Server) -> None:
    for base in (f"http://localhost:{server.port}/v1", f"http://127.0.0.1:{server.port}/v1"):
        client = openai.OpenAI(base_url=base, api_key="x", max_retries=0, timeout=60)
        out = client.chat.completions.create(
            model="smollm2", messages=[USER], max_tokens=1, temperature=0
        )
        assert out.choices


def run_entry_point(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VASTLLM_MODEL_API_")}
    return subprocess.run(
        [sys.executable, "-m", "vastllm.model_api"],
        cwd=REPO,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=30,  # should it start after all, it is stopped soon
        check=False,
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3"])
def test_public_bind_refuses_to_start(tmp_path: Path, host: str) -> None:
    env = {"VASTLLM_MODEL_API_MODEL_PATH": str(tmp_path), "VASTLLM_MODEL_API_HOST": host}
    done = run_entry_point({**env, "VASTLLM_MODEL_API_PORT": str(free_port())})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "allow_public_without_keys" in lines[0]
    assert "VASTLLM_MODEL_API_ALLOW_PUBLIC_WITHOUT_KEYS" in lines[0]
    assert "Traceback" not in done.stderr


def test_public_bind_when_accepted(tmp_path: Path) -> None:
    from vastllm.model_api.settings import ModelApiSettings  # noqa: PLC0415

    s = ModelApiSettings(model_path=tmp_path, host="0.0.0.0", allow_public_without_keys=True)
    assert s.host == "0.0.0.0"
    for loopback in ("127.0.0.1", "::1", "localhost"):
        assert ModelApiSettings(model_path=tmp_path, host=loopback).host == loopback


def test_settings_errors_never_show_the_value(tmp_path: Path) -> None:
    """The model API has no secret settings, but it prints settings errors the same way as the
    proxy: field, variable and problem, never the value."""
    marker = "sk-SECRET-m"
    cases: list[tuple[dict[str, str], str]] = [
        ({"VASTLLM_MODEL_API_PORT": marker}, "port (VASTLLM_MODEL_API_PORT)"),
        ({"VASTLLM_MODEL_API_DTYPE": marker}, "dtype (VASTLLM_MODEL_API_DTYPE)"),
        ({"VASTLLM_MODEL_API_ALLOWED_HOSTS": f"http://{marker}/"}, "allowed_hosts"),
        ({"VASTLLM_MODEL_API_CORS_ORIGINS": f'["{marker}"'}, "cors_origins"),
        ({"VASTLLM_MODEL_API_CORS_ORIGINS": f'{{"{marker}": 1}}'}, "cors_origins"),
        ({"VASTLLM_MODEL_API_MAX_BODY_BYTES": marker}, "max_body_bytes"),
    ]
    for i, text in enumerate(
        (f"model_id: [{marker}\n", f"model_id: *{marker}\n", f"port: {{{marker}: 1}}\n")
    ):
        cfg = tmp_path / f"model-api-{i}.yaml"
        cfg.write_text(text)
        cases.append(({"VASTLLM_MODEL_API_CONFIG": str(cfg)}, "port" if i == 2 else str(cfg)))
    for env, needle in cases:
        done = run_entry_point({"VASTLLM_MODEL_API_MODEL_PATH": str(tmp_path), **env})
        out = done.stdout + done.stderr
        assert done.returncode == 2, out
        assert marker not in out, out
        assert needle in out, out
        assert "Traceback" not in out
