"""Foundation scenario: the sample program runs under supervised_service and heals itself."""

from __future__ import annotations

import subprocess
import time

import pytest

PORT = 18765
PATTERN = f"http[.]server {PORT}"


def _pids(host) -> list[int]:
    out = host.run(f"pgrep -f '{PATTERN}'")
    return [int(p) for p in out.stdout.split()]


def _wait_for_new_pid(host, old: set[int], seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        new = set(_pids(host)) - old
        if new and host.run(f"curl -fsS -o /dev/null http://127.0.0.1:{PORT}/").rc == 0:
            return new.pop()
        time.sleep(0.2)
    pytest.fail(f"no new answering process within {seconds} s (old pids {old})")


def _is_systemd(host) -> bool:
    return host.file("/run/systemd/system").is_directory


def test_sample_program_runs_and_answers(host):
    assert len(_pids(host)) == 1
    assert host.run(f"curl -fsS -o /dev/null http://127.0.0.1:{PORT}/").rc == 0


def test_environment_reaches_the_program(host):
    pid = _pids(host)[0]
    environ = host.file(f"/proc/{pid}/environ").content.split(b"\0")
    assert b"SAMPLE_GREETING=hello from supervised_service" in environ
    # quotes, %, $ and spaces reach the program verbatim under both init systems
    assert b"SAMPLE_SECRET=s3cr%t \"quoted\" $HOME 'single'" in environ


def test_program_runs_in_its_workdir_and_logs(host):
    pid = _pids(host)[0]
    assert host.run(f"readlink /proc/{pid}/cwd").stdout.strip() == "/srv"
    assert host.file("/var/log/vastllm/vastllm-sample.log").exists


def test_definition_matches_the_init_system(host):
    if _is_systemd(host):
        assert host.service("vastllm-sample").is_running
        assert host.service("vastllm-sample").is_enabled
        env = host.file("/etc/vastllm/env/vastllm-sample.env")
        assert env.mode == 0o600
        assert not host.file("/etc/supervisor/conf.d/vastllm-sample.conf").exists
    else:
        conf = host.file("/etc/supervisor/conf.d/vastllm-sample.conf")
        assert conf.mode == 0o600
        status = host.run("supervisorctl status vastllm-sample").stdout
        assert "RUNNING" in status
        onstart = host.file("/root/onstart.sh")
        assert onstart.mode & 0o111
        assert "/usr/local/lib/vastllm/supervisor start" in onstart.content_string


def test_the_log_systemd_appends_to_is_rotated(host):
    if not _is_systemd(host):
        assert not host.file("/etc/logrotate.d/vastllm-sample").exists  # supervisord rotates
        return
    assert host.file("/etc/logrotate.d/vastllm-sample").mode == 0o644
    log = "/var/log/vastllm/vastllm-sample.log"
    # a forced rotation keeps the service writing to the same file (copytruncate)
    rotated = host.run("logrotate -f /etc/logrotate.d/vastllm-sample")
    assert rotated.rc == 0, rotated.stderr
    assert host.file(f"{log}.1").exists
    host.run(f"curl -fsS -o /dev/null http://127.0.0.1:{PORT}/rotated-check")
    assert "rotated-check" in host.file(log).content_string


def test_program_comes_back_after_kill_9_within_5_seconds(host):
    old = set(_pids(host))
    host.run(f"kill -9 {' '.join(map(str, old))}")
    _wait_for_new_pid(host, old, 5)


def test_vast_like_host_restarts_services_after_container_restart(host):
    """Vast.ai runs /root/onstart.sh when an instance starts: supervisord and the program return."""
    if _is_systemd(host):
        pytest.skip("systemd hosts start units at boot; the onstart path is for init-less hosts")
    name = host.backend.get_hostname()
    old = set(_pids(host))
    subprocess.run(["docker", "restart", "-t", "2", name], check=True, capture_output=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        probe = subprocess.run(
            ["docker", "exec", name, "sh", "-c",
             f"pgrep -f '{PATTERN}' && curl -fsS -o /dev/null http://127.0.0.1:{PORT}/"],
            capture_output=True, text=True, check=False,
        )
        if probe.returncode == 0:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the sample program did not come back after the container restarted")
    # the SSH port mapping survives the restart, as Vast.ai's does
    for _ in range(60):
        if host.run("true").rc == 0:
            break
        time.sleep(0.5)
    assert set(_pids(host)).isdisjoint(old)
