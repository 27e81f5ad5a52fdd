"""roles/redis on a test host, under supervisord (a Vast.ai-like base image) and under systemd:
Redis runs as the distribution's redis user, with a password generated once on the host in a
root-only file; a client without it gets NOAUTH; the password is in no argv, log, output or other
file; a second run changes nothing and restarts nothing; the proxy's environment gets it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.containers import PIP_VARS, Host, Run

HERE = Path(__file__).parent
PASSWORD_FILE = "/etc/vastllm/redis.password"  # noqa: S105 - a path
CLI = "/usr/local/lib/vastllm/redis-cli"  # redis-cli logged in (the role's)


@pytest.fixture(scope="module")
def converged(testhost: Host) -> tuple[Host, Run]:
    dry = testhost.playbook(HERE / "redis.yml", "--check")  # a fresh host, nothing written yet
    assert dry.rc == 0, dry.output
    assert testhost.sh(f"test -e {PASSWORD_FILE}", check=False).returncode != 0
    first = testhost.playbook(HERE / "redis.yml")
    assert first.rc == 0, first.output
    return testhost, first


def _password(host: Host) -> str:
    return host.sh(f"cat {PASSWORD_FILE}").stdout


def _redis_pid(host: Host) -> str:
    return host.sh("pgrep -x redis-server").stdout.strip()


def test_redis_runs_as_the_redis_user(converged: tuple[Host, Run]) -> None:
    host, _ = converged
    users = host.sh("ps -o user= -C redis-server").stdout.split()
    assert users == ["redis"]  # one process, not root
    assert host.sh("stat -c '%U %a' /var/lib/vastllm/redis").stdout.split() == ["redis", "750"]


def test_a_client_without_the_password_gets_noauth(converged: tuple[Host, Run]) -> None:
    host, _ = converged
    for command in ("ping", "set k v", "get k", "keys '*'"):
        out = host.sh(f"redis-cli -h 127.0.0.1 -p 6379 {command}", check=False)
        assert "NOAUTH" in out.stdout + out.stderr, (command, out)
    wrong = host.sh("REDISCLI_AUTH=wrong redis-cli -p 6379 ping", check=False)
    assert "WRONGPASS" in wrong.stdout + wrong.stderr


def test_the_password_logs_in(converged: tuple[Host, Run]) -> None:
    host, _ = converged
    assert host.sh(f"{CLI} ping").stdout.strip() == "PONG"
    # what recovery runs (roles/recovery diagnose), its port given again
    assert host.sh(
        f"{CLI} -p 6379 set vastllm:test ok && {CLI} get vastllm:test"
    ).stdout.split() == ["OK", "ok"]
    assert (
        host.sh(f'REDISCLI_AUTH="$(cat {PASSWORD_FILE})" redis-cli ping').stdout.strip() == "PONG"
    )
    # only root reads the password, so only root logs in with the role's redis-cli
    as_redis = host.sh(f"su -s /bin/sh redis -c '{CLI} ping'", check=False)
    assert as_redis.returncode != 0
    assert "PONG" not in as_redis.stdout


def test_the_password_file_is_root_only_and_generated_on_the_host(
    converged: tuple[Host, Run],
) -> None:
    host, first = converged
    assert host.sh(f"stat -c '%U %G %a' {PASSWORD_FILE}").stdout.split() == ["root", "root", "600"]
    password = _password(host)
    assert re.fullmatch(r"[0-9a-f]{64}", password), "not 64 hex digits"
    conf = host.sh("stat -c '%U %G %a' /etc/vastllm/redis.conf").stdout.split()
    assert conf == ["root", "redis", "640"]
    assert password not in first.output


def test_the_password_is_in_no_argv_log_or_other_file(converged: tuple[Host, Run]) -> None:
    host, first = converged
    password = _password(host)
    # the pattern from the file: the check's own argv must not hold the password either
    elsewhere = host.sh(
        f"grep -rlsF -f {PASSWORD_FILE} /etc /var/log /var/lib/vastllm /usr/local/lib /run /root "
        f"/tmp /proc/[0-9]*/cmdline | grep -vx {PASSWORD_FILE} || true"
    ).stdout.split()
    assert elsewhere == []
    assert password not in first.output


def test_a_second_run_keeps_the_password_and_changes_nothing(
    converged: tuple[Host, Run],
) -> None:
    host, _ = converged
    password, pid = _password(host), _redis_pid(host)

    again = host.playbook(HERE / "redis.yml", "-v")
    check = host.playbook(HERE / "redis.yml", "--check", "--diff")

    assert again.rc == 0, again.output
    assert again.changed == 0, again.changed_tasks() or again.output
    assert check.rc == 0, check.output
    assert check.changed == 0, check.changed_tasks() or check.output
    assert _password(host) == password
    assert _redis_pid(host) == pid  # not restarted
    assert password not in again.output + check.output


def test_the_proxy_environment_gets_the_password(converged: tuple[Host, Run]) -> None:
    host, _ = converged
    run = host.playbook(HERE / "proxy_environment.yml", "-v")
    assert run.rc == 0, run.output
    assert _password(host) not in run.output


def test_the_recovery_diagnosis_pings_redis_logged_in(converged: tuple[Host, Run]) -> None:
    host, _ = converged
    run = host.playbook(HERE / "recovery_ping.yml")
    assert run.rc == 0, run.output
    assert _password(host) not in run.output


def test_the_proxy_logs_in_to_redis_and_only_its_root_only_environment_has_the_password(
    converged: tuple[Host, Run],
) -> None:
    host, _ = converged
    extra = host.tmp / "pip.json"
    extra.write_text(json.dumps(PIP_VARS))

    first = host.playbook(HERE / "proxy.yml", "-e", f"@{extra}")
    again = host.playbook(HERE / "proxy.yml", "-e", f"@{extra}", "-v")

    assert first.rc == 0, first.output
    assert again.rc == 0, again.output
    assert again.changed == 0, again.changed_tasks() or again.output
    health = json.loads(host.sh("curl -s http://127.0.0.1:8082/health").stdout)
    assert health["redis"] == "ok", health  # the cache logged in
    env_file = "/etc/vastllm/env/vastllm-proxy.env"
    assert host.sh(f"stat -c '%U %a' {env_file}").stdout.split() == ["root", "600"]
    elsewhere = host.sh(
        f"grep -rlsF -f {PASSWORD_FILE} /etc /var/log /var/lib/vastllm /usr/local/lib /opt /run "
        f"/root /tmp /proc/[0-9]*/cmdline | grep -vx -e {PASSWORD_FILE} -e {env_file} || true"
    ).stdout.split()
    assert elsewhere == []
    assert _password(host) not in first.output + again.output
