"""What the events of an ansible-runner run tell: the current play, task and hosts, the failure
that stopped each host, the recap, and values of chosen variables shown by debug tasks."""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_STDERR_LINES = 15
_OUTPUT_LINES = 40
RESULT_EVENTS = frozenset(
    {"runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"}
)


def plain(text: str) -> str:
    """Ansible output without colours and carriage returns."""
    return _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")


def _tail(text: str, lines: int = _STDERR_LINES) -> str:
    parts = text.strip().splitlines()
    if len(parts) <= lines:
        return "\n".join(parts)
    return "\n".join(["...", *parts[-lines:]])


def _label(item: Any) -> str:
    return item if isinstance(item, str) else json.dumps(item, default=str)


def _one_message(res: dict[str, Any]) -> str:
    msg = str(res.get("msg") or "").strip()
    stderr = str(res.get("stderr") or res.get("module_stderr") or "").strip()
    if stderr and stderr not in msg:
        msg = f"{msg}\n{_tail(stderr)}" if msg else _tail(stderr)
    if not msg:
        stdout = str(res.get("stdout") or res.get("module_stdout") or "").strip()
        msg = _tail(stdout) if stdout else "failed without a message"
    return msg


def failure_message(res: dict[str, Any]) -> str:
    """The ``msg`` of a failed result (with its stderr when that says more), one line per
    failed item for loops."""
    results = res.get("results")
    if isinstance(results, list):
        failed = [
            r for r in results if isinstance(r, dict) and (r.get("failed") or r.get("unreachable"))
        ]
        if failed:
            return "\n".join(
                f"item {_label(r.get('_ansible_item_label', r.get('item')))}: {_one_message(r)}"
                for r in failed
            )
    return _one_message(res)


@dataclass(frozen=True)
class Failure:
    host: str
    play: str
    task: str
    message: str
    unreachable: bool


@dataclass(frozen=True)
class HostRecap:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


@dataclass
class EventLog:
    """Fed every event of one run, in order."""

    collect: tuple[str, ...] = ()
    play: str = ""
    task: str = ""
    running: list[str] = field(default_factory=list)
    tasks_started: int = 0
    last_failure: dict[str, Failure] = field(default_factory=dict)
    recap: dict[str, HostRecap] | None = None
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    no_hosts: list[str] = field(default_factory=list)
    # the play after which no host was left (all failed, or max_fail_percentage stopped them)
    stopped_in: str | None = None
    output: deque[str] = field(default_factory=lambda: deque(maxlen=_OUTPUT_LINES))

    def feed(self, event: dict[str, Any]) -> None:
        kind = str(event.get("event", ""))
        data = event.get("event_data") or {}
        if kind == "playbook_on_play_start":
            self.play = str(data.get("play") or data.get("name") or "")
            self.task = ""
            self.running = []
        elif kind == "playbook_on_task_start":
            self.task = str(data.get("task") or data.get("name") or "")
            self.running = []
            self.tasks_started += 1
        elif kind == "playbook_on_no_hosts_matched":
            self.no_hosts.append(self.play)
        elif kind == "playbook_on_no_hosts_remaining":
            self.stopped_in = self.play
        elif kind == "runner_on_start":
            host = str(data.get("host", ""))
            if host and host not in self.running:
                self.running.append(host)
        elif kind in RESULT_EVENTS:
            self._result(kind, data)
        elif kind == "playbook_on_stats":
            self._stats(data)
        elif kind == "verbose" and event.get("stdout"):
            self.output.extend(plain(str(event["stdout"])).splitlines())

    def _result(self, kind: str, data: dict[str, Any]) -> None:
        host = str(data.get("host", ""))
        if host in self.running:
            self.running.remove(host)
        res = data.get("res")
        res = res if isinstance(res, dict) else {}
        if kind == "runner_on_ok":
            for name in self.collect:
                if name in res:
                    self.values.setdefault(name, {})[host] = res[name]
        elif kind in ("runner_on_failed", "runner_on_unreachable") and not data.get(
            "ignore_errors"
        ):
            self.last_failure[host] = Failure(
                host=host,
                play=str(data.get("play", self.play)),
                task=str(data.get("task", self.task)),
                message=failure_message(res),
                unreachable=kind == "runner_on_unreachable",
            )

    def _stats(self, data: dict[str, Any]) -> None:
        keys = {
            "ok": "ok",
            "changed": "changed",
            "failed": "failures",
            "unreachable": "dark",
            "skipped": "skipped",
            "rescued": "rescued",
            "ignored": "ignored",
        }
        hosts: set[str] = set()
        for source in keys.values():
            counts = data.get(source)
            if isinstance(counts, dict):
                hosts.update(str(h) for h in counts)
        recap = {}
        for host in sorted(hosts):
            recap[host] = HostRecap(
                **{
                    mine: int((data.get(theirs) or {}).get(host, 0))
                    for mine, theirs in keys.items()
                }
            )
        self.recap = recap

    def failures(self) -> list[Failure]:
        """The failure that stopped each host that the recap counts as failed or unreachable
        (every recorded one when the run ended without a recap)."""
        if self.recap is None:
            return list(self.last_failure.values())
        return [
            failure
            for host, failure in self.last_failure.items()
            if host in self.recap and (self.recap[host].failed or self.recap[host].unreachable)
        ]

    def error_lines(self) -> list[str]:
        """Ansible's own error output (bad inventory, syntax errors...): its ERROR lines and
        what follows them, else the last lines it printed."""
        lines = [line for line in self.output if line.strip()]
        for index, line in enumerate(lines):
            if "ERROR" in line:
                return lines[index : index + 12]
        return lines[-12:]
