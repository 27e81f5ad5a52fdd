"""Run one of the project's playbooks through the ansible-runner Python API: a private data dir
in a temp dir, the project's ansible.cfg, events into an :class:`EventLog` and a display, and
Ctrl-C (or SIGTERM) cancelling the run cleanly: ansible-playbook gets SIGINT, as from a
terminal, and stops its workers and their commands; if it has not ended after a grace period,
or on a second Ctrl-C, ansible-runner kills it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner  # type: ignore[import-untyped]

from vastllm.cli.errors import CliFailure
from vastllm.cli.events import EventLog
from vastllm.cli.progress import RunDisplay
from vastllm.cli.project import Project
from vastllm.cli.state import private_run

# how often the runner looks at the cancel flag while ansible-playbook is quiet (seconds)
_POLL_SECONDS = 0.5
# how long ansible-playbook may take to stop after SIGINT before it is killed (seconds)
_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class Target:
    """Where a run goes: the project, its inventories, --limit, -e and -v of the command line."""

    project: Project
    inventories: list[str]
    limit: str | None = None
    extravars: dict[str, Any] = field(default_factory=dict)
    verbosity: int = 0


@dataclass(frozen=True)
class PlaybookRun:
    """One playbook run of a command: the playbook (relative to the project), its variables,
    tags, --check, and the variables whose values debug tasks show that the command reads."""

    playbook: str
    extravars: dict[str, Any] = field(default_factory=dict)
    tags: str | None = None
    check: bool = False
    collect: tuple[str, ...] = ()
    limit: str | None = None  # replaces the command line's --limit when set


@dataclass(frozen=True)
class RunOutcome:
    playbook: str
    status: str  # successful | failed | canceled | timeout
    rc: int
    log: EventLog
    elapsed: float

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0

    @property
    def cancelled(self) -> bool:
        return self.status == "canceled"


def ansible_env(project: Project, colour: bool) -> dict[str, str]:
    """Environment of the run: the project's ansible.cfg, ansible's commands on PATH (the ones
    next to this Python first: a virtualenv used without activating it), and SSH host keys
    checked as ansible.cfg says (ansible-runner turns the checks off unless told otherwise)."""
    here = Path(sys.executable).parent
    path = os.environ.get("PATH", os.defpath)
    if (here / "ansible-playbook").exists():
        path = f"{here}{os.pathsep}{path}"
    if shutil.which("ansible-playbook", path=path) is None:
        raise CliFailure(
            "ansible-playbook not found on PATH: install Ansible (pip install ansible-core) "
            "in the environment that runs vastllm"
        )
    env = {"ANSIBLE_CONFIG": str(project.ansible_cfg), "PATH": path}
    if "ANSIBLE_HOST_KEY_CHECKING" not in os.environ:
        env["ANSIBLE_HOST_KEY_CHECKING"] = project.setting("host_key_checking", "True")
    if not colour:
        env["ANSIBLE_NOCOLOR"] = "1"
    return env


class Canceller:
    """The run's cancel_callback. After :meth:`request`, ansible-playbook (its pid comes with
    every event) gets SIGINT once; ansible-runner kills it when it has not ended within
    ``grace`` seconds, at once on a second request, or when its pid is not known yet."""

    def __init__(self, grace: float = _GRACE_SECONDS) -> None:
        self.grace = grace
        self.requested = threading.Event()
        self.forced = threading.Event()
        self.pid: int | None = None
        self._interrupted_at: float | None = None

    def request(self) -> None:
        if self.requested.is_set():
            self.forced.set()
        self.requested.set()

    def note(self, event: dict[str, Any]) -> None:
        pid = event.get("pid")
        if self.pid is None and isinstance(pid, int) and pid != os.getpid():
            self.pid = pid

    def __call__(self) -> bool:
        if not self.requested.is_set():
            return False
        if self.forced.is_set() or self.pid is None:
            return True
        if self._interrupted_at is None:
            self._interrupted_at = time.monotonic()
            try:
                os.kill(self.pid, signal.SIGINT)
            except OSError:
                return True
            return False
        return time.monotonic() - self._interrupted_at > self.grace


@contextlib.contextmanager
def cancel_on_signals(canceller: Canceller) -> Iterator[None]:
    """SIGINT/SIGTERM cancel the run instead of raising while the block runs (main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        canceller.request()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _handler(
    log: EventLog, display: RunDisplay, canceller: Canceller
) -> Callable[[dict[str, Any]], bool]:
    def handle(event: dict[str, Any]) -> bool:
        canceller.note(event)
        log.feed(event)
        display.update(event, log)
        return False  # nothing is read back from disk: keep the artifacts small

    return handle


def run_playbook(
    target: Target,
    run: PlaybookRun,
    display: RunDisplay,
    colour: bool = False,
    canceller: Canceller | None = None,
) -> RunOutcome:
    target.project.playbook(run.playbook)  # a clear error before anything starts
    envvars = ansible_env(target.project, colour)
    extravars = {**target.extravars, **run.extravars}
    log = EventLog(collect=run.collect)
    canceller = canceller or Canceller()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vastllm-run-") as private:
        display.start(run.playbook)
        try:
            with cancel_on_signals(canceller), private_run():
                runner = ansible_runner.run(
                    private_data_dir=private,
                    project_dir=str(target.project.root),
                    playbook=run.playbook,
                    inventory=list(target.inventories),
                    envvars=envvars,
                    extravars=extravars or None,
                    limit=run.limit or target.limit,
                    tags=run.tags,
                    cmdline="--check" if run.check else None,
                    verbosity=max(0, target.verbosity - 1) or None,
                    quiet=True,
                    event_handler=_handler(log, display, canceller),
                    cancel_callback=canceller,
                    settings={"pexpect_timeout": _POLL_SECONDS},
                )
        finally:
            display.stop()
        status, rc = str(runner.status), int(runner.rc if runner.rc is not None else 1)
    if canceller.requested.is_set():
        status = "canceled"  # also when ansible-playbook stopped by itself on SIGINT
    return RunOutcome(run.playbook, status, rc, log, time.monotonic() - started)
