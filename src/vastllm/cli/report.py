"""After a run: the recap per host (ok/changed/failed/unreachable), the failure that stopped
each host (task, host, message), and one closing line."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from vastllm.cli.events import Failure
from vastllm.cli.runner import RunOutcome


def duration(seconds: float) -> str:
    seconds = round(seconds)
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def recap_table(outcome: RunOutcome) -> Table | None:
    recap = outcome.log.recap
    if not recap:
        return None
    table = Table(title=f"{outcome.playbook}: recap", title_justify="left", box=None)
    table.add_column("host", style="bold")
    for name in ("ok", "changed", "failed", "unreachable", "skipped"):
        table.add_column(name, justify="right")
    for host, counts in recap.items():
        failed = f"[red]{counts.failed}[/]" if counts.failed else "0"
        dark = f"[red]{counts.unreachable}[/]" if counts.unreachable else "0"
        changed = f"[yellow]{counts.changed}[/]" if counts.changed else "0"
        table.add_row(host, str(counts.ok), changed, failed, dark, str(counts.skipped))
    return table


def failure_text(failure: Failure) -> Text:
    kind = "unreachable" if failure.unreachable else "failed"
    text = Text()
    text.append(f"{kind}: ", style="bold red")
    text.append(failure.host, style="bold")
    text.append(f" at task '{failure.task}'")
    if failure.play:
        text.append(f" (play '{failure.play}')", style="dim")
    text.append("\n")
    text.append("  " + failure.message.replace("\n", "\n  "))
    return text


def report(console: Console, outcome: RunOutcome, show_recap: bool = True) -> None:
    """Print the recap, the failures and one closing line about the run."""
    log = outcome.log
    table = recap_table(outcome) if show_recap else None
    if table is not None:
        console.print(table)
    for play in log.no_hosts:
        console.print(Text(f"note: no hosts matched for the play '{play}'"), soft_wrap=True)
    failures = log.failures()
    for failure in failures:
        console.print(failure_text(failure), soft_wrap=True, highlight=False)
    took = duration(outcome.elapsed)
    if outcome.cancelled:
        console.print(Text(f"{outcome.playbook}: cancelled after {took}", style="yellow"))
    elif outcome.ok:
        console.print(Text(f"{outcome.playbook}: done in {took}", style="green"))
    elif not failures:
        # ansible stopped before any task could fail: bad inventory, syntax error...
        for line in log.error_lines():
            console.print(Text(line), soft_wrap=True, highlight=False)
        console.print(
            Text(f"{outcome.playbook}: failed (rc {outcome.rc}) after {took}", style="red")
        )
    else:
        console.print(Text(f"{outcome.playbook}: failed after {took}", style="red"))
