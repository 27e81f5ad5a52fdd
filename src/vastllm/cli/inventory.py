"""Host names of an inventory group (``ansible-inventory --list`` through ansible-runner)."""

from __future__ import annotations

import json
import tempfile
from typing import Any

import ansible_runner  # type: ignore[import-untyped]

from vastllm.cli.errors import CliFailure
from vastllm.cli.events import plain
from vastllm.cli.runner import Target, ansible_env


def hosts_of_group(listing: dict[str, Any], group: str) -> list[str]:
    """Hosts of ``group`` and of its children, in inventory order, each once."""
    out: list[str] = []
    seen_groups: set[str] = set()

    def walk(name: str) -> None:
        if name in seen_groups:
            return
        seen_groups.add(name)
        entry = listing.get(name) or {}
        for host in entry.get("hosts") or []:
            if host not in out:
                out.append(str(host))
        for child in entry.get("children") or []:
            walk(str(child))

    walk(group)
    return out


def group_hosts(target: Target, group: str) -> list[str]:
    args: list[str] = []
    for source in target.inventories:
        args += ["-i", source]
    if target.limit:
        args += ["--limit", target.limit]
    args.append("--list")
    with tempfile.TemporaryDirectory(prefix="vastllm-inventory-") as private:
        out, err, rc = ansible_runner.run_command(
            executable_cmd="ansible-inventory",
            cmdline_args=args,
            private_data_dir=private,
            host_cwd=str(target.project.root),
            envvars=ansible_env(target.project, colour=False),
            runner_mode="subprocess",
            quiet=True,
        )
    if rc != 0:
        detail = plain(str(err or out or "")).strip()
        raise CliFailure(f"cannot read the inventory: {detail or f'ansible-inventory rc {rc}'}")
    try:
        listing = json.loads(out)
    except ValueError as exc:
        raise CliFailure(f"ansible-inventory printed something that is not JSON: {exc}") from exc
    return hosts_of_group(listing, group)
