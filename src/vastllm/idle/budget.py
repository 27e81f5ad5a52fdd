"""The spend budget (``vastllm_max_spend_usd``), counted on the host by the watcher.

The price is the one recorded when the role ran (``/etc/vastllm/price.json``: ``dph_total``, the
inventory plugin's ``vast_dph_total``, compute and disk together, $/h). Each poll adds the price
times the time since the last poll to what this instance has spent; the sum is kept in a state
file (written whole, then renamed), so a restarted watcher (a reboot, a new ``site.yml``, the
instance started again) goes on from there instead of from zero. At 80 % of the budget it logs a
warning, once per budget; at 100 % it asks the Vast.ai API, once, to stop the instance (the
disk, and its bill, stays). A failed call is tried again at the next poll.

What it counts is the time the watcher runs, so the time the instance is up: a stopped instance
runs nothing, and the disk it still bills then is not counted (see docs/cost.md).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger("vastllm.idle")

WARN_AT = 0.8  # of the budget: the warning
HOUR = 3600.0

BudgetStep = Literal["counting", "warned", "stopped", "failed", "done"]


class PriceUnreadable(Exception):
    """The recorded price is missing or not a positive number (says which file)."""


def read_price(path: Path) -> float:
    """``dph_total`` ($/h) from the price file the role writes."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        price = float(data["dph_total"])
    except OSError as exc:
        raise PriceUnreadable(f"cannot read the price file {path}: {exc.strerror}") from None
    except (ValueError, TypeError, KeyError):
        raise PriceUnreadable(f"the price file {path} has no dph_total number") from None
    if price <= 0:
        raise PriceUnreadable(f"the price in {path} is not above 0")
    return price


@dataclass
class SpendState:
    """What the state file holds: the instance, what it spent (USD) by the watcher's count,
    and the budget the 80 % warning was given for (None: not yet)."""

    instance_id: int
    spent_usd: float = 0.0
    warned_for_usd: float | None = None

    @classmethod
    def parse(cls, data: Any) -> SpendState:
        """The state in a state file's text, or in its JSON already decoded (``vastllm status``
        reads it too); ValueError, TypeError or KeyError when it is not one."""
        if isinstance(data, str | bytes):
            data = json.loads(data)
        return cls(int(data["instance_id"]), float(data["spent_usd"]),
                   None if data.get("warned_for_usd") is None
                   else float(data["warned_for_usd"]))

    @classmethod
    def load(cls, path: Path, instance_id: int) -> SpendState:
        """The state of this instance; a fresh one when there is none, it is unreadable, or it
        belongs to another instance (a new rental on the same host name)."""
        try:
            state = cls.parse(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(instance_id)
        except (OSError, ValueError, TypeError, KeyError):
            log.warning("the spend state %s is unreadable: counting from 0", path)
            return cls(instance_id)
        return state if state.instance_id == instance_id else cls(instance_id)

    def save(self, path: Path) -> None:
        """Write the whole file next to its place, then rename it there (never half a file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(asdict(self)) + "\n", encoding="utf-8")
        os.replace(tmp, path)


class Budget:
    """One instance's spend against ``limit_usd``. ``stop`` is injected, and so is the clock
    (tests drive :meth:`step` with their own)."""

    def __init__(
        self,
        *,
        limit_usd: float,
        price_per_hour: float,
        state_file: Path,
        instance_id: int,
        stop: Callable[[], None],
        stop_errors: tuple[type[Exception], ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit_usd = limit_usd
        self.price_per_hour = price_per_hour
        self.state_file = state_file
        self.stop = stop
        self.stop_errors = stop_errors
        self.clock = clock
        self.state = SpendState.load(state_file, instance_id)
        self.last = clock()
        self.stopped = False
        self._save_failed = False

    def _save(self) -> None:
        try:
            self.state.save(self.state_file)
        except OSError as exc:
            if not self._save_failed:
                log.warning("cannot write the spend state %s (%s): a restart counts from the "
                            "last state written", self.state_file, exc.strerror)
            self._save_failed = True
        else:
            self._save_failed = False

    def step(self) -> BudgetStep:
        """Count the time since the last step; warn, or stop, when it is time."""
        if self.stopped:
            return "done"
        now = self.clock()
        self.state.spent_usd += self.price_per_hour * max(0.0, now - self.last) / HOUR
        self.last = now
        step: BudgetStep = "counting"
        spent, limit = self.state.spent_usd, self.limit_usd
        if spent < limit and spent >= WARN_AT * limit and self.state.warned_for_usd != limit:
            log.warning("spent $%.4g of the $%.4g budget (%.0f %%, at $%.4g/h): the instance "
                        "stops at 100 %%", spent, limit, 100 * spent / limit, self.price_per_hour)
            self.state.warned_for_usd = limit
            step = "warned"
        self._save()
        if spent < limit:
            return step
        try:
            self.stop()
        except self.stop_errors as exc:
            log.warning("the stop call failed (%s); trying again at the next poll", exc)
            return "failed"
        self.stopped = True
        log.warning("spent $%.4g of the $%.4g budget: asked Vast.ai to stop this instance",
                    spent, limit)
        return "stopped"
