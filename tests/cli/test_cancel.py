"""Ctrl-C during a run: ansible-playbook is interrupted (its commands too), the CLI says so and
exits 130, without a traceback."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from tests.cli.conftest import cli_process
from tests.support import free_port


def processes_running(cmdline: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b" ".join(a for a in args if a).decode(errors="replace") == cmdline:
            found.append(int(entry.name))
    return found


def wait_for(predicate: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} not seen within {timeout}s")


def test_ctrl_c_cancels_the_run(stand_in: tuple[Path, Path]) -> None:
    root, _ = stand_in
    seconds = 3000 + free_port() % 1000  # a sleep only this test starts
    sleeper = f"sleep {seconds}"
    proc = cli_process("--project-dir", str(root), "-e", f"sleep_seconds={seconds}", "up")
    try:
        wait_for(lambda: processes_running(sleeper), f"the playbook's '{sleeper}'")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 130, err
    assert "site.yml: cancelled after" in err
    assert "Sleep when asked" in err  # the plain progress line of the running task
    assert "Traceback" not in err + out
    # ansible stopped the command it was running
    wait_for(lambda: not processes_running(sleeper), f"'{sleeper}' to end", timeout=20)
