"""The ``vastllm`` command line (typer): global options, then one command per operation."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from vastllm.cli import last_counts, plays
from vastllm.cli.chat import ChatRequest, api_key_from_env, chat
from vastllm.cli.errors import EXIT_CANCELLED, EXIT_FAILED, CliFailure, UsageProblem
from vastllm.cli.extravars import parse_extra_vars
from vastllm.cli.inventory import group_hosts
from vastllm.cli.progress import make_display
from vastllm.cli.project import PROJECT_ENV, find_project, resolve_inventories
from vastllm.cli.report import fleet_plan, report, wake_report
from vastllm.cli.runner import PlaybookRun, RunOutcome, Target, run_playbook
from vastllm.cli.status import build_report, exit_code
from vastllm.cli.status_view import fleet_view, host_view
from vastllm.defaults import PROXY_PORT

app = typer.Typer(
    name="vastllm",
    help="Bring up, check, repair and use vastllm GPU hosts (the project's playbooks, "
    "through ansible-runner).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _stderr() -> Console:
    return Console(stderr=True)


@dataclass(frozen=True)
class Globals:
    project_dir: Path | None
    inventories: list[str]
    limit: str | None
    extravars: dict[str, Any]
    verbosity: int

    def target(self) -> Target:
        """The project and inventories, looked up only by commands that run ansible."""
        cwd = Path.cwd()
        project = find_project(self.project_dir, cwd)
        inventories = (
            resolve_inventories(self.inventories, cwd)
            if self.inventories
            else project.default_inventories()
        )
        return Target(project, inventories, self.limit, self.extravars, self.verbosity)


@contextlib.contextmanager
def handled(ctx: typer.Context) -> Iterator[None]:
    """Usage problems exit 2 with click's usage message; failures print one message and exit
    with their code; Ctrl-C exits 130. Never a traceback for these."""
    try:
        yield
    except UsageProblem as exc:
        raise typer.BadParameter(str(exc), ctx=ctx, param_hint=exc.param) from None
    except CliFailure as exc:
        _stderr().print(Text(f"error: {exc}", style="red"), soft_wrap=True, highlight=False)
        raise typer.Exit(exc.code) from None
    except KeyboardInterrupt:
        _stderr().print(Text("\ncancelled", style="yellow"))
        raise typer.Exit(EXIT_CANCELLED) from None


@app.callback()
def main(
    ctx: typer.Context,
    *,
    project_dir: Annotated[
        Path | None,
        typer.Option(
            "--project-dir",
            envvar=PROJECT_ENV,
            metavar="DIR",
            help="The vastllm checkout (site.yml + ansible.cfg). "
            "Default: the nearest one from the current directory upwards.",
            show_default=False,
        ),
    ] = None,
    inventory: Annotated[
        list[str] | None,
        typer.Option(
            "-i",
            "--inventory",
            metavar="SOURCE",
            help="Inventory source (repeatable). Default: the inventory of the project's "
            "ansible.cfg.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        str | None,
        typer.Option(
            "-l", "--limit", metavar="PATTERN", help="Only these hosts (an Ansible host pattern)."
        ),
    ] = None,
    extra_vars: Annotated[
        list[str] | None,
        typer.Option(
            "-e",
            "--extra-vars",
            metavar="KEY=VALUE",
            help="KEY=VALUE extra variable (repeatable); VALUE is read as JSON when it is "
            "JSON (5, true, [1,2]), else as text.",
            show_default=False,
        ),
    ] = None,
    verbose: Annotated[
        int,
        typer.Option(
            "-v",
            "--verbose",
            count=True,
            help="Show ansible's own output; -vv and more also make ansible verbose.",
        ),
    ] = 0,
) -> None:
    try:
        extravars = parse_extra_vars(extra_vars or [])
    except UsageProblem as exc:
        raise typer.BadParameter(str(exc), ctx=ctx, param_hint=exc.param) from None
    ctx.obj = Globals(project_dir, list(inventory or []), limit, extravars, verbose)


def _run(ctx: typer.Context, run: PlaybookRun, target: Target | None = None) -> RunOutcome:
    globals_: Globals = ctx.obj
    target = target or globals_.target()
    err = _stderr()
    outcome = run_playbook(
        target, run, make_display(err, globals_.verbosity), colour=err.is_terminal
    )
    report(err, outcome)
    return outcome


def _exit_for(outcome: RunOutcome) -> None:
    if outcome.cancelled:
        raise typer.Exit(EXIT_CANCELLED)
    if not outcome.ok:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def up(ctx: typer.Context) -> None:
    """Bring the GPU hosts up and open the tunnels (site.yml)."""
    with handled(ctx):
        _exit_for(_run(ctx, plays.up()))


@app.command()
def recover(
    ctx: typer.Context,
    check: Annotated[bool, typer.Option("--check", help="Diagnose only; change nothing.")] = False,
    serial: Annotated[
        int | None,
        typer.Option("--serial", min=1, help="Repair this many hosts at a time (fleets)."),
    ] = None,
) -> None:
    """Diagnose the GPU hosts and repair what is broken (playbooks/recover.yml)."""
    with handled(ctx):
        _exit_for(_run(ctx, plays.recover(check, serial)))


@app.command()
def tunnel(
    ctx: typer.Context,
    down: Annotated[bool, typer.Option("--down", help="Close the tunnels instead.")] = False,
) -> None:
    """Open (or close) the autossh tunnels from this workstation (site.yml, tag tunnel)."""
    with handled(ctx):
        _exit_for(_run(ctx, plays.tunnel(down)))


def _confirm_destroy(labels: list[str]) -> None:
    if not sys.stdin.isatty():
        raise UsageProblem(
            "down --destroy asks before destroying instances, and there is no terminal to "
            "ask on: pass --yes to destroy without asking",
            "'--yes'",
        )
    if not typer.confirm(
        f"Destroy {len(labels)} Vast.ai instance(s): {', '.join(labels)}?", default=False
    ):
        raise CliFailure("nothing was destroyed")


@app.command()
def down(
    ctx: typer.Context,
    destroy: Annotated[
        bool,
        typer.Option(
            "--destroy", help="Then destroy the GPU hosts' instances (playbooks/destroy.yml)."
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Destroy without asking first.")] = False,
) -> None:
    """Close the tunnels; with --destroy also destroy the Vast.ai instances."""
    with handled(ctx):
        globals_: Globals = ctx.obj
        target = globals_.target()
        labels: list[str] = []
        if destroy:
            target.project.playbook(plays.DESTROY)
            labels = group_hosts(target, plays.GPU_GROUP)
            if not labels:
                raise CliFailure(
                    f"no hosts in the group {plays.GPU_GROUP} of the inventory: nothing to destroy"
                )
            if not yes:
                _confirm_destroy(labels)
        closed = _run(ctx, plays.tunnel(down=True), target)
        if closed.cancelled or not destroy:
            _exit_for(closed)
            return
        # a tunnel that would not close must not keep paid instances alive: destroy anyway.
        # The CLI asked (or was told --yes) already; a prompt inside the playbook could not
        # be answered through ansible-runner, so the playbook is told not to ask again.
        destroyed = _run(ctx, plays.destroy(labels, confirm=False), target)
        _exit_for(destroyed)
        _exit_for(closed)


@app.command()
def provision(
    ctx: typer.Context,
    *,
    label: Annotated[
        str,
        typer.Option(
            "--label",
            help="Label of the instance; with --count N also the prefix of the others "
            "(LABEL, LABEL-2 ... LABEL-N).",
        ),
    ],
    count: Annotated[
        int | None,
        typer.Option(
            "--count",
            min=1,
            help="Number of instances (default 1). Those that run are reused; only the "
            "missing ones are rented.",
            show_default=False,
        ),
    ] = None,
    gpu: Annotated[
        str | None, typer.Option("--gpu", help="GPU model name, e.g. 'RTX 4090'.")
    ] = None,
    min_vram: Annotated[
        int | None, typer.Option("--min-vram", min=1, help="Least VRAM per GPU, GiB.")
    ] = None,
    min_disk: Annotated[
        int | None, typer.Option("--min-disk", min=1, help="Least disk, GiB.")
    ] = None,
    max_dph: Annotated[
        float | None, typer.Option("--max-dph", min=0.0, help="Highest price, USD per hour.")
    ] = None,
    no_site: Annotated[
        bool,
        typer.Option("--no-site", help="Only rent the instances; do not run site.yml on them."),
    ] = False,
    interruptible: Annotated[
        bool,
        typer.Option(
            "--interruptible",
            help="Rent interruptible (bid) instances: cheaper, stopped when outbid. Needs --bid.",
        ),
    ] = False,
    bid: Annotated[
        float | None,
        typer.Option("--bid", min=0.001, help="With --interruptible: the bid, USD per hour."),
    ] = None,
    fallback_on_demand: Annotated[
        bool,
        typer.Option(
            "--fallback-on-demand",
            help="With --interruptible: rent on-demand when too few bid offers match.",
        ),
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Show what would be rented; rent and change nothing.")
    ] = False,
) -> None:
    """Rent Vast.ai instances (or reuse them) and bring them up (playbooks/provision.yml)."""
    with handled(ctx):
        if interruptible != (bid is not None):
            raise UsageProblem(
                "--interruptible and --bid USD go together: the bid is the price of an "
                "interruptible instance",
                "'--bid'" if interruptible else "'--interruptible'",
            )
        if fallback_on_demand and not interruptible:
            raise UsageProblem(
                "--fallback-on-demand only applies with --interruptible", "'--fallback-on-demand'"
            )
        run = plays.provision(
            bid=bid,
            fallback_on_demand=fallback_on_demand,
            label=label,
            count=count,
            gpu=gpu,
            min_vram_gib=min_vram,
            min_disk_gib=min_disk,
            max_dph=max_dph,
            handover=not no_site,
            check=check,
        )
        outcome = _run(ctx, run)
        for line in fleet_plan(outcome):
            typer.echo(line)
        _exit_for(outcome)


@app.command()
def wake(
    ctx: typer.Context,
    label: Annotated[
        list[str] | None,
        typer.Option(
            "--label",
            help="Label of an instance to wake (repeatable). Default: every GPU host of the "
            "inventory that is a Vast.ai instance.",
        ),
    ] = None,
    no_move: Annotated[
        bool,
        typer.Option(
            "--no-move",
            help="When an instance's GPU is gone, stop with a message instead of renting the "
            "next matching offer under its label.",
        ),
    ] = False,
) -> None:
    """Start stopped Vast.ai instances, bring their services and tunnels back
    (playbooks/wake.yml); a label whose GPU is gone moves to a new instance."""
    with handled(ctx):
        outcome = _run(ctx, plays.wake(list(label or []), move=not no_move))
        for line in wake_report(outcome):
            typer.echo(line)
        _exit_for(outcome)


@app.command(name="forget-host")
def forget_host(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="The host's name in the inventory.")
    ],
) -> None:
    """Forget the SSH host keys pinned for a host that was replaced on purpose.

    Runs playbooks/forget_host.yml; the host's next connection pins its new key.
    """
    with handled(ctx):
        globals_: Globals = ctx.obj
        target = globals_.target()
        target.project.playbook(plays.FORGET_HOST)
        if name not in group_hosts(target, "all"):
            raise CliFailure(f"{name} is not a host of the inventory: nothing to forget")
        _exit_for(_run(ctx, plays.forget_host(name), target))


@app.command()
def status(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON document on stdout instead of tables.")
    ] = False,
) -> None:
    """Show the fleet and the gateway, then each GPU host: services, model, VRAM, disk, cache.

    The fleet table has each Vast.ai host's $/h (compute and disk), uptime and an estimated
    spend since start (uptime x $/h), from the API's prices, and their totals; where
    vastllm_max_spend_usd is set, the idle watcher's count against that budget (docs/cost.md).
    Runs playbooks/status.yml, which changes nothing on the hosts. Exit code: 0 every GPU
    host healthy; 3 the fleet degraded or down (a host unreachable, unreadable, with
    problems, or its tunnel not answering); 1 the run itself failed (the workstation's
    checks, the inventory, ansible); 130 cancelled.
    """
    with handled(ctx):
        globals_: Globals = ctx.obj
        target = globals_.target()
        err = _stderr()
        outcome = run_playbook(
            target,
            plays.status(globals_.limit),
            make_display(err, globals_.verbosity),
            colour=err.is_terminal,
        )
        if outcome.cancelled:
            report(err, outcome, show_recap=False)
            raise typer.Exit(EXIT_CANCELLED)
        earlier = last_counts.load()
        data = build_report(outcome, last_counts=earlier)
        last_counts.save(data, time.time(), earlier)
        if as_json:
            typer.echo(json.dumps(data, indent=2, sort_keys=True))
        else:
            out = Console()
            if data["hosts"]:
                out.print(fleet_view(data))
            for record in data["hosts"]:
                out.print(host_view(record))
            if not data["hosts"]:
                out.print(Text(f"no hosts in the group {plays.GPU_GROUP} to report on"))
        for error in data["errors"]:
            err.print(
                Text(f"failed: {error['host']} at task '{error['task']}': {error['message']}"),
                soft_wrap=True,
            )
        if not outcome.ok and not outcome.log.failures():
            report(err, outcome, show_recap=False)
        code = exit_code(data, outcome)
        if code:
            raise typer.Exit(code)


@app.command(name="chat")
def chat_command(
    ctx: typer.Context,
    message: Annotated[str, typer.Argument(help="What to ask the model.")],
    *,
    url: Annotated[
        str, typer.Option("--url", help="The proxy, through the tunnel.")
    ] = f"http://127.0.0.1:{PROXY_PORT}",
    model: Annotated[
        str, typer.Option("--model", help="Model name; the proxy maps claude-* to its model.")
    ] = "claude-sonnet-4-5",
    max_tokens: Annotated[
        int, typer.Option("--max-tokens", min=1, help="Longest answer, in tokens.")
    ] = 256,
    temperature: Annotated[
        float | None,
        typer.Option("--temperature", min=0.0, help="Sampling temperature (0: deterministic)."),
    ] = None,
    no_stream: Annotated[
        bool, typer.Option("--no-stream", help="Wait for the whole answer.")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1.0, help="Seconds to wait for the answer.")
    ] = 600.0,
) -> None:
    """Ask the model one question through the tunnel and the proxy.

    Sends an Anthropic Messages API request; prints the answer as it streams in.
    The proxy's key, if any, comes from $VASTLLM_PROXY_API_KEY or $ANTHROPIC_AUTH_TOKEN.
    """
    request = ChatRequest(
        url=url,
        message=message,
        model=model,
        max_tokens=max_tokens,
        stream=not no_stream,
        temperature=temperature,
        timeout=timeout,
        api_key=api_key_from_env(),
    )
    wrote: list[bool] = []

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()
        wrote.append(True)

    try:
        with handled(ctx):
            chat(request, write)
    finally:
        if wrote:
            sys.stdout.write("\n")
            sys.stdout.flush()
