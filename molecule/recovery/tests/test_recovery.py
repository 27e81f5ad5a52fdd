"""Break the stack on purpose; the supervisor or playbooks/recover.yml must bring it back.

The cases run in file order on one host. Each repair is followed by a second recover.yml that
must report changed=0, and nothing the user keeps under /workspace may be touched.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request

from scenario_helpers import (
    assert_proxy_answers_then_caches,
    openai_answer,
    run_playbook,
    states,
    wait_for,
)

testinfra_hosts = ["ansible://vastllm-recovery"]

MODEL = "/workspace/models/smollm2-135m-instruct"
USER_FILE = "/workspace/user-notes.txt"
TUNNEL_PORT = 28082


def recover(*extra: str) -> tuple[int, str, dict[str, int]]:
    """Run playbooks/recover.yml with Molecule's inventory; return rc, output, changed per host."""
    return run_playbook("playbooks/recover.yml", *extra)


def assert_quiet() -> None:
    """recover.yml on a healthy host (and workstation) changes nothing."""
    rc, out, changed = recover()
    assert rc == 0, out[-3000:]
    assert changed == {"vastllm-recovery": 0, "localhost": 0}, out[-3000:]
    assert "HEALTHY" in out


def assert_recovered_then_quiet(first: tuple[int, str, dict[str, int]]) -> None:
    rc, out, changed = first
    assert rc == 0, out[-3000:]
    assert changed.get("vastllm-recovery", 0) > 0, "the repair should have changed something"
    assert_quiet()


def health(host, port: int) -> dict[str, object]:
    out = host.run(f"curl -sS http://127.0.0.1:{port}/health").stdout
    return json.loads(out) if out.strip().startswith("{") else {}


def test_openai_sdk_gets_an_answer_from_the_model_api(host, sdk):
    assert "Paris" in openai_answer(host, sdk, "http://127.0.0.1:8081/v1", "smollm2-135m-instruct")


def test_anthropic_sdk_gets_an_answer_through_the_proxy_and_the_cache(host, sdk):
    assert assert_proxy_answers_then_caches(host, sdk) == []


def test_user_file_is_put_in_workspace(host):
    host.run(f"echo 'my notes, not vastllm' > {USER_FILE}")
    assert host.file(USER_FILE).exists
    assert set(states(host).values()) == {"RUNNING"}


def test_recover_on_a_healthy_host_changes_nothing(host):
    assert_quiet()


def test_check_mode_gives_the_diagnosis_only(host):
    host.run("supervisorctl stop vastllm-proxy")
    rc, out, _ = recover("--check")
    assert rc == 0, out[-3000:]
    assert "service vastllm-proxy is not running" in out
    assert states(host)["vastllm-proxy"] == "STOPPED"
    host.run("supervisorctl start vastllm-proxy")


def test_model_server_killed_with_sigkill_comes_back_without_ansible(host):
    pid = host.run("supervisorctl pid vastllm-model-api").stdout.strip()
    host.run(f"kill -9 {pid}")
    took = wait_for(lambda: health(host, 8081).get("status") == "ready", 120, "model API ready")
    print(f"model API ready again {took:.1f} s after kill -9")
    assert_quiet()


def test_killed_supervisord_is_restored_by_recover(host):
    host.run("pkill -9 -x supervisord || pkill -9 -f /usr/bin/supervisord")
    assert host.run("supervisorctl pid").rc != 0
    assert_recovered_then_quiet(recover())
    assert set(states(host).values()) == {"RUNNING"}
    assert health(host, 8081).get("status") == "ready"


def test_deleted_shard_is_detected_by_checksum_and_refetched(host):
    keep = host.run(f"stat -c %i {MODEL}/tokenizer.json").stdout.strip()
    host.run(f"rm {MODEL}/model.safetensors")
    first = recover()
    assert "model files damaged" in first[1]
    assert_recovered_then_quiet(first)
    assert host.file(f"{MODEL}/model.safetensors").exists
    # only the damaged file was written again
    assert host.run(f"stat -c %i {MODEL}/tokenizer.json").stdout.strip() == keep
    assert health(host, 8081).get("status") == "ready"


def test_stopped_redis_degrades_the_proxy_then_recover_restores_it(host):
    host.run("supervisorctl stop vastllm-redis")
    answer = host.run(
        "curl -sS -D- http://127.0.0.1:8082/v1/messages -H 'content-type: application/json' "
        "-d '{\"model\":\"claude-opus-4-8\",\"max_tokens\":8,\"temperature\":0,"
        "\"messages\":[{\"role\":\"user\",\"content\":\"Say hi.\"}]}'"
    )
    assert "200 OK" in answer.stdout, answer.stdout
    wait_for(lambda: health(host, 8082).get("status") == "degraded", 30, "proxy health degraded")
    assert_recovered_then_quiet(recover())
    assert host.run("/usr/local/lib/vastllm/redis-cli ping").stdout.strip() == "PONG"
    wait_for(lambda: health(host, 8082).get("status") == "ok", 30, "proxy health ok")


def _tunnel_answers() -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{TUNNEL_PORT}/health", timeout=2):
            return True
    except OSError:
        return False


def test_tunnel_reconnects_after_its_ssh_is_killed(host):
    assert _tunnel_answers()
    subprocess.run(["pkill", "-9", "-f", f"^/usr/bin/ssh .*127.0.0.1:{TUNNEL_PORT}:"], check=False)
    took = wait_for(_tunnel_answers, 40, "the tunnel answering again")
    print(f"tunnel answered again {took:.1f} s after its ssh was killed")
    assert_quiet()


def _tunnel_ssh_pids() -> set[str]:
    found = subprocess.run(
        ["pgrep", "-f", f"^/usr/bin/ssh .*127.0.0.1:{TUNNEL_PORT}:"],
        capture_output=True, text=True, check=False,
    )
    return set(found.stdout.split())


def test_tunnel_reconnects_after_the_hosts_sshd_restarts(host):
    assert _tunnel_answers()
    before = _tunnel_ssh_pids()
    assert before, "no ssh process of the tunnel"
    # sshd is the host's PID 1 (as on Vast.ai): SIGHUP makes it re-exec itself (a restart), and
    # every session it served is dropped, the tunnel's too; detached, as this command's own
    # session goes with them
    host.run(
        "nohup sh -c 'sleep 1; kill -HUP 1; sleep 1; pkill -f \"^sshd: root\"' "
        ">/dev/null 2>&1 &"
    )
    time.sleep(3)
    took = wait_for(_tunnel_answers, 40, "the tunnel answering again after the sshd restart")
    print(f"tunnel answered again {took + 3:.1f} s after the host's sshd restarted")
    # the old connection was really dropped: autossh runs a new ssh
    assert _tunnel_ssh_pids().isdisjoint(before)
    assert_quiet()


def test_disk_nearly_full_is_reported_clearly_and_nothing_is_deleted(host):
    free_mib = int(host.run("df -m --output=avail /workspace | tail -1").stdout.strip())
    host.run(f"fallocate -l {max(free_mib - 100, 1)}M /workspace/filler.bin")
    rc, out, _ = recover()
    assert rc != 0
    assert "disk nearly full" in out
    assert "nothing was deleted" in out
    assert host.file("/workspace/filler.bin").exists
    host.run("rm /workspace/filler.bin")
    assert_quiet()


def test_user_file_is_untouched(host):
    assert host.file(USER_FILE).content_string == "my notes, not vastllm\n"
