"""What the user sees while a playbook runs: one live line on a terminal (play, task, hosts,
elapsed time), one plain line per task elsewhere (CI logs), or ansible's own output with -v."""

from __future__ import annotations

import time
from typing import Any, Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from vastllm.cli.events import EventLog, plain

_MAX_HOSTS_SHOWN = 3


def hosts_text(hosts: list[str]) -> str:
    if not hosts:
        return ""
    if len(hosts) <= _MAX_HOSTS_SHOWN:
        return ", ".join(hosts)
    return f"{', '.join(hosts[:_MAX_HOSTS_SHOWN])} +{len(hosts) - _MAX_HOSTS_SHOWN}"


class RunDisplay(Protocol):
    def start(self, title: str) -> None: ...

    def update(self, event: dict[str, Any], log: EventLog) -> None: ...

    def stop(self) -> None: ...


class LiveLine:
    """A spinner line rewritten in place: ``0:01:23 play > task (hosts)``."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=console,
            transient=True,
        )
        self.task: TaskID | None = None

    def start(self, title: str) -> None:
        self.progress.start()
        self.task = self.progress.add_task(f"[bold]{escape(title)}[/]: starting", total=None)

    def update(self, event: dict[str, Any], log: EventLog) -> None:
        if self.task is None or event.get("event") not in (
            "playbook_on_play_start",
            "playbook_on_task_start",
            "runner_on_start",
            "runner_on_ok",
            "runner_on_failed",
            "runner_on_skipped",
            "runner_on_unreachable",
        ):
            return
        hosts = hosts_text(log.running)
        text = f"[bold]{escape(log.play)}[/] \N{RIGHTWARDS ARROW} {escape(log.task or 'starting')}"
        if hosts:
            text += f" [dim]({escape(hosts)})[/]"
        self.progress.update(self.task, description=text)

    def stop(self) -> None:
        self.progress.stop()


class PlainLines:
    """One line per task start, with the time since the run started: for logs and CI."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.started = time.monotonic()

    def _line(self, text: str) -> None:
        self.console.print(Text(text), soft_wrap=True, highlight=False)

    def start(self, title: str) -> None:
        self.started = time.monotonic()
        self._line(f"{title}: starting")

    def update(self, event: dict[str, Any], log: EventLog) -> None:
        if event.get("event") == "playbook_on_task_start":
            elapsed = time.monotonic() - self.started
            self._line(f"[{elapsed:6.1f}s] {log.play} > {log.task}")

    def stop(self) -> None:
        return None


class AnsibleOutput:
    """ansible-playbook's own output, as it would print it (-v)."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def start(self, title: str) -> None:
        return None

    def update(self, event: dict[str, Any], log: EventLog) -> None:
        text = event.get("stdout")
        if not text:
            return
        text = str(text).replace("\r\n", "\n")
        if self.console.is_terminal:
            self.console.print(Text.from_ansi(text), soft_wrap=True, highlight=False)
        else:
            self.console.print(Text(plain(text)), soft_wrap=True, highlight=False)

    def stop(self) -> None:
        return None


def make_display(console: Console, verbosity: int) -> RunDisplay:
    if verbosity > 0:
        return AnsibleOutput(console)
    if console.is_terminal:
        return LiveLine(console)
    return PlainLines(console)
