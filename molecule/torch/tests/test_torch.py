"""The torch path: model API + Redis + caching proxy on a vast-like host, asked by real SDKs."""

from __future__ import annotations

import json
import shlex

QUESTION = "What is the capital of France? Answer in one word."


def _py(host, python: str, code: str) -> str:
    result = host.run(f"{python} -c {shlex.quote(code)}")
    assert result.rc == 0, result.stderr
    return result.stdout


def test_services_run_under_supervisord(host):
    lines = host.run("supervisorctl status").stdout.splitlines()
    states = {line.split()[0]: line.split()[1] for line in lines if line.strip()}
    for name in ("vastllm-model-api", "vastllm-redis", "vastllm-proxy"):
        assert states.get(name) == "RUNNING", lines


def test_services_listen_on_loopback_only(host):
    for port in (8081, 8082, 6379):
        sockets = host.socket.get_listening_sockets()
        assert f"tcp://127.0.0.1:{port}" in sockets, sockets
        assert f"tcp://0.0.0.0:{port}" not in sockets


def test_model_api_health_is_ready(host):
    health = json.loads(host.run("curl -fsS http://127.0.0.1:8081/health").stdout)
    assert health["status"] == "ready"
    assert health["model"] == "smollm2-135m-instruct"
    assert health["device"] == "cpu"


def test_model_is_fetched_with_marker(host):
    marker = host.file("/workspace/models/smollm2-135m-instruct/.vastllm-fetch.json")
    assert marker.exists
    assert host.file("/workspace/models/smollm2-135m-instruct/model.safetensors").exists
    # no temporary tarball or partial directory left behind
    assert host.run("ls -a /workspace/models | grep -c partial").stdout.strip() == "0"


def test_openai_sdk_gets_an_answer_from_the_model_api(host, sdk):
    out = _py(host, sdk, f"""
from openai import OpenAI
c = OpenAI(base_url="http://127.0.0.1:8081/v1", api_key="unused")
r = c.chat.completions.create(model="smollm2-135m-instruct", temperature=0, max_tokens=20,
    messages=[{{"role": "user", "content": {QUESTION!r}}}])
print(r.choices[0].message.content)
""")
    assert "Paris" in out


def test_anthropic_sdk_gets_an_answer_through_the_proxy_and_the_cache(host, sdk):
    out = _py(host, sdk, f"""
import anthropic
c = anthropic.Anthropic(base_url="http://127.0.0.1:8082", api_key="unused")
for _ in range(2):
    raw = c.messages.with_raw_response.create(model="claude-sonnet-4-5", max_tokens=20,
        messages=[{{"role": "user", "content": {QUESTION!r}}}], extra_body={{"temperature": 0}})
    m = raw.parse()
    print(raw.headers.get("x-vastllm-cache"), m.content[0].text.replace(chr(10), " "))
""")
    first, second = out.strip().splitlines()
    first_cache, first_text = first.split(" ", 1)
    second_cache, second_text = second.split(" ", 1)
    assert first_cache == "miss"
    assert "Paris" in first_text
    assert second_cache == "hit"
    assert second_text == first_text


def test_proxy_health_reports_redis_and_the_model_api(host):
    health = json.loads(host.run("curl -fsS http://127.0.0.1:8082/health").stdout)
    assert health["status"] == "ok"
    assert health["redis"] == "ok"
    assert health["active_model"]["name"] == "smollm2-135m-instruct"
    assert all(u["healthy"] for u in health["upstreams"])
