"""The idle watchers' budget counts as ``vastllm status`` last read them, kept on the workstation.

A host that its watcher stopped (budget, idle stop), or that a higher bid stopped, no longer
answers SSH, so the count on its disk cannot be read exactly when it matters: status then shows
the last count it read, with its time. ``budget_counts.json`` in the state directory
(:func:`vastllm.cli.state.state_dir`, private to its user): ``{host: {"budget": <the record of
vastllm.cli.status.budget_record>, "read_at": <epoch seconds>}}``. A count older than
:data:`KEEP_SECONDS` is forgotten.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from vastllm.cli.state import state_dir

FILE = "budget_counts.json"
KEEP_SECONDS = 30 * 24 * 3600  # a month: a fleet's hosts come and go


def path() -> Path:
    return state_dir() / FILE


def load(where: Path | None = None) -> dict[str, dict[str, Any]]:
    """The counts kept so far; {} when there are none or the file cannot be read."""
    try:
        raw = json.loads((where or path()).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {
        host: entry
        for host, entry in raw.items()
        if isinstance(entry, dict)
        and isinstance(entry.get("budget"), dict)
        and isinstance(entry.get("read_at"), int | float)
    }


def save(
    report: dict[str, Any],
    now: float,
    earlier: dict[str, dict[str, Any]],
    where: Path | None = None,
) -> None:
    """Keep the counts ``report`` read now (a host's budget with a ``spent_usd`` and no
    ``as_of``) over ``earlier`` (what :func:`load` gave before the run), drop those older than
    :data:`KEEP_SECONDS`; written whole or not at all. Nothing is written when there is nothing
    to keep."""
    target = where or path()
    kept = {host: e for host, e in earlier.items() if now - e["read_at"] < KEEP_SECONDS}
    for record in report.get("hosts", []):
        budget = record.get("budget")
        fresh = isinstance(budget, dict) and "as_of" not in budget
        if fresh and budget.get("spent_usd") is not None:
            kept[str(record["host"])] = {"budget": budget, "read_at": now}
    if not kept and not target.exists():
        return
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    part.write_text(json.dumps(kept, indent=1, sort_keys=True), encoding="utf-8")
    part.chmod(0o600)
    os.replace(part, target)
