"""The cascade: the first candidate that fits, downloads, answers and stays in VRAM wins.

* A pinned model (``vastllm_model``, ``--pin``) skips the cascade and the fit check (the
  operator knows better than the estimates) but is still pulled, smoke-tested and checked for
  residency; if it fails there is no fallback.
* Sticky: when the active-model file names a candidate that is still present, it is tried
  first, so a re-run keeps it without pulling anything (``changed`` false). ``sticky=False``
  runs the full cascade in order.
* The winner is written to the active-model file atomically; the file is rewritten only when
  the model, engine, context or URL changed.
* Nobody passes: CascadeError with one line per candidate saying why.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vastllm.cascade.active import DEFAULT_ACTIVE_FILE, read_active, same_model, write_active
from vastllm.cascade.candidates import Candidate, find_candidate
from vastllm.cascade.engine import EngineAdapter
from vastllm.cascade.errors import CascadeError, EngineError
from vastllm.cascade.facts import HostCapacity
from vastllm.cascade.fit import FitPolicy, check_fit
from vastllm.cascade.progress import ProgressFn, no_progress
from vastllm.cascade.smoke import SmokeConfig, run_smoke


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class CascadeOptions:
    active_file: Path = Path(DEFAULT_ACTIVE_FILE)
    pin: str | None = None
    policy: FitPolicy = field(default_factory=FitPolicy)
    smoke: SmokeConfig = field(default_factory=SmokeConfig)
    sticky: bool = True
    progress: ProgressFn = no_progress
    clock: Callable[[], datetime] = _now


@dataclass(frozen=True)
class CascadeResult:
    active: dict[str, Any]
    changed: bool
    pulled: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]
    previous: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "active": self.active,
            "pulled": list(self.pulled),
            "skipped": [{"name": n, "reason": r} for n, r in self.skipped],
            "previous": self.previous,
        }


class _Skip(Exception):
    pass


def _order(
    candidates: Sequence[Candidate],
    previous: dict[str, Any] | None,
    engines: Mapping[str, EngineAdapter],
    sticky: bool,
) -> list[Candidate]:
    """Candidates in cascade order, the still-present active one first when sticky."""
    order = list(candidates)
    if not sticky or previous is None:
        return order
    current = find_candidate(order, str(previous.get("name")))
    if current is None:
        return order
    engine = engines.get(current.engine)
    # files written before served_by existed name the server in "engine" (ollama)
    if engine is None or engine.served_by != previous.get("served_by", previous.get("engine")):
        return order
    try:
        present = engine.is_present(current)
    except EngineError:
        return order
    if not present:
        return order
    return [current, *(c for c in order if c is not current)]


def try_candidate(
    candidate: Candidate,
    engine: EngineAdapter,
    capacity: HostCapacity,
    options: CascadeOptions,
    *,
    check_fit_first: bool,
) -> bool:
    """Run every step for one candidate; True when something was downloaded. Raises _Skip."""
    if check_fit_first:
        decision = check_fit(
            candidate,
            capacity,
            options.policy,
            present=engine.is_present(candidate),
            reclaimable_vram_bytes=engine.reclaimable_vram_bytes(),
        )
        if decision.reason is not None:
            raise _Skip(decision.reason)
    pulled = engine.ensure(candidate, options.progress)
    native = engine.native_context(candidate)
    if native is not None and native < candidate.context_length:
        raise _Skip(
            f"context too small: the model supports {native} tokens, "
            f"the candidate asks for {candidate.context_length}"
        )
    num_ctx = candidate.context_length if engine.sends_num_ctx() else None
    smoke = run_smoke(
        engine.chat_client(),
        candidate.model_id,
        candidate.context_length,
        num_ctx=num_ctx,
        config=options.smoke,
    )
    if smoke.reason is not None:
        raise _Skip(smoke.reason)
    if capacity.gpu_mode:
        problem = engine.residency_problem(candidate)
        if problem is not None:
            raise _Skip(problem)
    return pulled


def run_cascade(
    candidates: Sequence[Candidate],
    capacity: HostCapacity,
    engines: Mapping[str, EngineAdapter],
    options: CascadeOptions | None = None,
) -> CascadeResult:
    options = options or CascadeOptions()
    previous = read_active(options.active_file)
    if options.pin:
        pinned = find_candidate(list(candidates), options.pin) or Candidate(name=options.pin)
        order = [pinned]
    else:
        order = _order(candidates, previous, engines, options.sticky)

    skipped: list[tuple[str, str]] = []
    pulled: list[str] = []
    winner: Candidate | None = None
    for candidate in order:
        engine = engines.get(candidate.engine)
        if engine is None:
            skipped.append((candidate.name, f"no {candidate.engine} engine is configured"))
            continue
        try:
            if try_candidate(candidate, engine, capacity, options, check_fit_first=not options.pin):
                pulled.append(candidate.name)
        except _Skip as exc:
            skipped.append((candidate.name, str(exc)))
            with contextlib.suppress(EngineError):
                engine.release(candidate)
            continue
        except EngineError as exc:
            skipped.append((candidate.name, str(exc)))
            continue
        winner = candidate
        break
    if winner is None:
        headline = f"the pinned model {options.pin} did not pass" if options.pin else None
        raise CascadeError(skipped, headline)

    engine = engines[winner.engine]
    record: dict[str, Any] = {
        "name": winner.name,
        "engine": engine.wire,
        "served_by": engine.served_by,
        "context_length": winner.context_length,
        "base_url": engine.base_url,
        "source": winner.tag,
        "pinned": bool(options.pin),
        "selected_at": options.clock().isoformat(timespec="seconds"),
        "skipped": [{"name": n, "reason": r} for n, r in skipped],
    }
    changed = bool(pulled) or not same_model(previous, record)
    if changed or previous is None:
        write_active(options.active_file, record)
    else:
        record = previous
    return CascadeResult(record, changed, tuple(pulled), tuple(skipped), previous)
