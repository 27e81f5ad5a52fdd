"""No secret in any startup message: every secret-bearing setting (API keys in the environment
and in the settings file, a Redis URL with a password, upstream keys) given malformed in every
way we could think of makes the real ``python -m vastllm.proxy`` exit 2 with a message that
names the field and never shows the value. What it prints lands in a world-readable service log
and in Ansible's failure output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.proxy.conftest import MODEL, OllamaDouble, Proxy
from tests.support import REPO, free_port


def start(
    tmp_path: Path, file_text: str | None, suffix: str = ".json", env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], Path | None]:
    cfg = None
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VASTLLM_PROXY_")}
    # a free port, should a case turn out valid: the proxy then serves and the run times out
    run_env = {**clean, "VASTLLM_PROXY_PORT": str(free_port()), **(env or {})}
    if file_text is not None:
        cfg = tmp_path / f"proxy{suffix}"
        cfg.write_text(file_text)
        run_env["VASTLLM_PROXY_CONFIG"] = str(cfg)
    done = subprocess.run(
        [sys.executable, "-m", "vastllm.proxy"],
        env=run_env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done, cfg


def check(done: subprocess.CompletedProcess[str], secrets: list[str], needle: str) -> None:
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    for secret in secrets:
        assert secret not in out, out
    assert needle in out, out
    assert "Traceback" not in out
    assert "input_value" not in out


ENV_KEYS = [
    '["sk-SECRET-e1", ',  # JSON cut short
    '{"sk-SECRET-e2": 1}',  # a mapping
    '["sk-SECRET-e3", 5]',  # a number among the keys
    '[["sk-SECRET-e4"]]',  # nested
    '[{"key": "sk-SECRET-e5"}]',
    '[null, "sk-SECRET-e6"]',
    '{"keys": ["sk-SECRET-e7"]',  # a mapping cut short
]


@pytest.mark.parametrize("value", ENV_KEYS)
def test_api_keys_in_the_environment(tmp_path: Path, value: str) -> None:
    done, _ = start(tmp_path, None, env={"VASTLLM_PROXY_API_KEYS": value})
    check(done, ["SECRET"], "VASTLLM_PROXY_API_KEYS")


FILE_KEYS: list[Any] = [
    {"sk-SECRET-f1": "x"},  # a mapping
    98765432123456789,  # a number (the secret is the number)
    [["sk-SECRET-f3"]],
    [{"k": "sk-SECRET-f4"}],
    [True, "sk-SECRET-f5"],
    [98765432123456789],
    3.25e300,
]


@pytest.mark.parametrize("value", FILE_KEYS)
def test_api_keys_in_the_settings_file(tmp_path: Path, value: Any) -> None:
    done, _ = start(tmp_path, json.dumps({"api_keys": value}))
    check(done, ["SECRET", "98765432123456789", "3.25e+300", "325000"], "api_keys")


YAML_FILES = [
    "api_keys: [sk-SECRET-y1\n",  # unclosed
    "api_keys: *sk-SECRET-y2\n",  # an undefined alias, named by PyYAML
    "api_keys:\n\t- sk-SECRET-y3\n",  # a tab
    'api_keys: ["sk-SECRET-y4\\q"]\n',  # a bad escape
    "api_keys: [sk-SECRET-y5]\n  port: 1\n",  # bad indentation
    "upstreams: [{name: u, base_url: 'http://a', api_key: 'sk-SECRET-y6}]\n",
    "api_keys: !!python/object:sk-SECRET-y7 {}\n",
]


@pytest.mark.parametrize("text", YAML_FILES)
def test_yaml_that_does_not_parse(tmp_path: Path, text: str) -> None:
    done, cfg = start(tmp_path, text, suffix=".yaml")
    check(done, ["SECRET"], f"cannot parse config file {cfg}")
    assert "line " in done.stderr


def test_json_that_does_not_parse(tmp_path: Path) -> None:
    done, cfg = start(tmp_path, '{"api_keys": ["sk-SECRET-j1"')
    check(done, ["SECRET"], f"cannot parse config file {cfg}")


def test_yaml_mapping_keys(tmp_path: Path) -> None:
    done, _ = start(tmp_path, "api_keys: {sk-SECRET-y8}\n", suffix=".yaml")
    check(done, ["SECRET"], "api_keys")


REDIS_URLS = [
    "redis://:sk-SECRET-r1@127.0.0.1:notaport/0",
    "redis://default:sk-SECRET-r2",  # no '@': the password reads as the port
    "redis://:sk#SECRET-r3@127.0.0.1:6379/0",  # unescaped '#'
    "redis://:sk/SECRET-r4@127.0.0.1:6379/0",  # unescaped '/'
    "redis://:sk?SECRET-r5@127.0.0.1:6379/0",  # unescaped '?'
    "http://:sk-SECRET-r6@127.0.0.1:6379/0",  # wrong scheme
    "redis://:sk-SECRET-r7@127.0.0.1/notadb",
    "unix://:sk-SECRET-r8@",  # no socket path
    "redis://:sk-SECRET-r9@[::1",  # unclosed IPv6
    "redis://127.0.0.1/0?db=x&password=sk-SECRET-r10",
    "rediss://u:sk-SECRET-r11@h:-1/0",
]


@pytest.mark.parametrize("url", REDIS_URLS)
def test_redis_url_with_a_password(tmp_path: Path, url: str) -> None:
    done, _ = start(tmp_path, json.dumps({"redis_url": url}))
    check(done, ["SECRET"], "redis_url")


@pytest.mark.parametrize("url", REDIS_URLS[1:3])
def test_redis_url_in_the_environment(tmp_path: Path, url: str) -> None:
    done, _ = start(tmp_path, None, env={"VASTLLM_PROXY_REDIS_URL": url})
    check(done, ["SECRET"], "VASTLLM_PROXY_REDIS_URL")


def test_redis_url_of_the_wrong_type(tmp_path: Path) -> None:
    for value in (["redis://:sk-SECRET-r12@h/0"], {"url": "redis://:sk-SECRET-r13@h/0"}):
        done, _ = start(tmp_path, json.dumps({"redis_url": value}))
        check(done, ["SECRET"], "redis_url")


UPSTREAMS: list[Any] = [
    [{"name": "u", "api_key": "sk-SECRET-u1"}],  # no base_url: pydantic would quote the dict
    [{"name": "u", "base_url": "http://a", "api_key": ["sk-SECRET-u2"]}],
    [{"name": "u", "base_url": "http://a", "api_key": 98765432123456789}],
    [{"name": "u", "kind": "tgi", "base_url": "http://a", "api_key": "sk-SECRET-u3"}],
    {"u": {"base_url": "http://a", "api_key": "sk-SECRET-u4"}},
    [
        {"name": "u", "base_url": "http://a", "api_key": "sk-SECRET-u5"},
        {"name": "u", "base_url": "http://b", "api_key": "sk-SECRET-u6"},
    ],
    [{"name": "", "base_url": "http://user:sk-SECRET-u7@a", "api_key": "sk-SECRET-u8"}],
    [],
    "sk-SECRET-u9",
]


@pytest.mark.parametrize("value", UPSTREAMS)
def test_upstream_keys(tmp_path: Path, value: Any) -> None:
    done, _ = start(tmp_path, json.dumps({"upstreams": value}))
    check(done, ["SECRET", "98765432123456789"], "upstreams")


@pytest.mark.parametrize("value", UPSTREAMS[:2])
def test_upstream_keys_in_the_environment(tmp_path: Path, value: Any) -> None:
    done, _ = start(tmp_path, None, env={"VASTLLM_PROXY_UPSTREAMS": json.dumps(value)})
    check(done, ["SECRET", "98765432123456789"], "VASTLLM_PROXY_UPSTREAMS")


def test_upstreams_in_the_environment_that_are_not_json(tmp_path: Path) -> None:
    bad = '[{"name": "u", "base_url": "http://a", "api_key": "sk-SECRET-u10"'
    done, _ = start(tmp_path, None, env={"VASTLLM_PROXY_UPSTREAMS": bad})
    check(done, ["SECRET"], "VASTLLM_PROXY_UPSTREAMS")


def test_valid_secrets_beside_another_bad_setting(tmp_path: Path) -> None:
    settings = {
        "api_keys": ["sk-SECRET-v1"],
        "redis_url": "redis://:sk-SECRET-v2@127.0.0.1:6379/0",
        "upstreams": [{"name": "u", "base_url": "http://a", "api_key": "sk-SECRET-v3"}],
        "host": "0.0.0.0",
    }
    env = {"VASTLLM_PROXY_PORT": "eighty", "VASTLLM_PROXY_CACHE_MODE": "maybe"}
    done, _ = start(tmp_path, json.dumps(settings), env=env)
    check(done, ["SECRET"], "port (VASTLLM_PROXY_PORT)")
    assert "cache_mode (VASTLLM_PROXY_CACHE_MODE)" in done.stderr
    # keys are set, so the public bind is not what is refused
    assert "allow_public_without_keys" not in done.stderr


def test_the_startup_line_hides_upstream_credentials(workdir: Path, double: OllamaDouble) -> None:
    url = double.url.replace("http://", "http://user:sk-SECRET-s1@")
    p = Proxy(
        workdir,
        upstreams=[{"name": "cred", "kind": "ollama", "base_url": url, "api_key": "sk-SECRET-s2"}],
        default_model=MODEL,
        redis_url="",
        api_keys=["sk-SECRET-s3"],
    )
    try:
        health = httpx.get(p.url + "/health")
        assert health.json()["upstreams"][0]["base_url"].startswith("http://***@127.0.0.1:")
        assert "SECRET" not in health.text
    finally:
        p.stop()
    log = p.log.read_text()
    assert "cred=ollama:http://***@127.0.0.1:" in log
    assert "SECRET" not in log
