"""After a run: the recap per host (ok/changed/failed/unreachable), the failure that stopped
each host (task, host, message), for several hosts which failed and which finished, and one
closing line."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from vastllm.cli.events import Failure
from vastllm.cli.plays import FLEET_PLAN_VAR, WAKE_REPORT_VAR
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


# after an unreachable host: the stops this project makes itself, and what undoes them
WAKE_HINT = (
    "A Vast.ai instance that was stopped (idle stop, budget, outbid) does not answer SSH: "
    "`vastllm wake` starts it again, or rents again under its label when its GPU is gone."
)


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
    if failure.unreachable:
        text.append(f"\n  {WAKE_HINT}", style="dim")
    return text


def hosts_line(outcome: RunOutcome) -> Text | None:
    """For a run on several hosts where some failed: how many failed (named, unreachable ones
    marked), and the others - finished, or stopped with the run when no host was left in a play
    (all failed, or vastllm_max_fail_percentage stopped them)."""
    recap = outcome.log.recap or {}
    failed = [host for host, counts in recap.items() if counts.failed or counts.unreachable]
    if len(recap) < 2 or not failed:
        return None
    text = Text()
    names = [
        f"{h} (unreachable)" if recap[h].unreachable and not recap[h].failed else h for h in failed
    ]
    text.append(f"{len(failed)} of {len(recap)} hosts failed: {', '.join(names)}", style="red")
    others = [host for host in recap if host not in failed]
    if others and outcome.log.stopped_in is not None:
        text.append(
            f"; the run stopped after the play '{outcome.log.stopped_in}' with no "
            f"host left, before these finished: {', '.join(others)}"
        )
    elif others:
        text.append(f"; {len(others)} finished without a failure: {', '.join(others)}")
    return text


def fleet_plan(outcome: RunOutcome) -> list[str]:
    """provision: one line per label - the instance reused, the offer rented (or, in check
    mode, that would be rented)."""
    lines = outcome.log.values.get(FLEET_PLAN_VAR, {}).get("localhost")
    return [str(line) for line in lines] if isinstance(lines, list) else []


def wake_report(outcome: RunOutcome) -> list[str]:
    """wake: one line per label - started, already running, or moved to a new instance."""
    lines = outcome.log.values.get(WAKE_REPORT_VAR, {}).get("localhost")
    return [str(line) for line in lines] if isinstance(lines, list) else []


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
    hosts = hosts_line(outcome) if show_recap else None
    if hosts is not None:
        console.print(hosts, soft_wrap=True, highlight=False)
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
