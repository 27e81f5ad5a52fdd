"""Which candidates can fit the host, before anything is downloaded.

Rules (all sizes in bytes, printed in decimal GB):

* GPU mode: ``vram_bytes * (1 + vram_headroom)`` must be at most the free VRAM. How free VRAM
  counts depends on the engine (``FitPolicy.vram_policy``):

  - ``sum`` (default for ``ollama``): free VRAM summed over all GPUs. Ollama splits a model's
    layers across GPUs when it does not fit on one; the headroom covers the per-GPU buffers.
  - ``largest`` (default for ``transformers``): free VRAM of the largest single GPU, because the
    model API loads the whole model onto one device.
  - ``vllm`` counts as ``sum`` too: the vllm role shards the model over all GPUs (tensor
    parallel = the GPU count).

  VRAM held by models the engine itself has loaded (``reclaimable_vram_bytes``, from Ollama's
  ``/api/ps``) counts as free: the engine unloads them to load another model. A GPU that does
  not report free memory makes the check unknowable, so the candidate is not skipped for VRAM.
* CPU mode (no usable GPU): only candidates marked ``cpu_ok``, and only if ``vram_bytes * (1 +
  vram_headroom)`` fits the RAM budget (``FitPolicy.ram_budget_bytes``, else the host's
  ``ram_available_bytes``; unknown RAM is not checked).
* Disk: a candidate that is not on the host yet needs ``download_bytes * (1 + disk_headroom)``
  free on the model volume (``disk_free_bytes``). Present models need no download.

A size of 0 means "unknown": that check is not made.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from vastllm.cascade.candidates import Candidate
from vastllm.cascade.facts import HostCapacity
from vastllm.cascade.units import gb

SUM = "sum"
LARGEST = "largest"
DEFAULT_VRAM_POLICY: Mapping[str, str] = {"ollama": SUM, "transformers": LARGEST, "vllm": SUM}


@dataclass(frozen=True)
class FitPolicy:
    vram_headroom: float = 0.10
    disk_headroom: float = 0.05
    vram_policy: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_VRAM_POLICY))
    ram_budget_bytes: int | None = None

    def __post_init__(self) -> None:
        for value in (self.vram_headroom, self.disk_headroom):
            if value < 0:
                raise ValueError("headroom must not be negative")
        for engine, policy in self.vram_policy.items():
            if policy not in (SUM, LARGEST):
                raise ValueError(f"vram policy for {engine} must be sum or largest")


@dataclass(frozen=True)
class FitDecision:
    candidate: Candidate
    reason: str | None  # None: it fits
    notes: tuple[str, ...] = ()

    @property
    def fits(self) -> bool:
        return self.reason is None


def _pct(fraction: float) -> str:
    return f"{fraction * 100:g}%"


def _with_headroom(size: int, headroom: float) -> int:
    return int(size * (1 + headroom))


def free_vram(
    capacity: HostCapacity, policy: str, reclaimable_bytes: int = 0
) -> tuple[int | None, str]:
    """(free bytes, where) under ``policy``; None when a GPU does not report its free memory."""
    gpus = capacity.gpus
    if not gpus or any(g.free_bytes is None for g in gpus):
        return None, ""
    frees = [g.free_bytes or 0 for g in gpus]
    totals = [
        g.total_bytes if g.total_bytes is not None else f for g, f in zip(gpus, frees, strict=True)
    ]
    if policy == LARGEST:
        best = max(range(len(gpus)), key=lambda i: frees[i])
        value = min(frees[best] + reclaimable_bytes, totals[best])
        where = "on the largest GPU" if len(gpus) > 1 else "on the GPU"
        return value, where
    value = min(sum(frees) + reclaimable_bytes, sum(totals))
    where = f"on {len(gpus)} GPUs together" if len(gpus) > 1 else "on the GPU"
    return value, where


def check_vram(
    candidate: Candidate, capacity: HostCapacity, policy: FitPolicy, reclaimable_bytes: int = 0
) -> tuple[str | None, tuple[str, ...]]:
    if candidate.vram_bytes <= 0:
        return None, ("VRAM need unknown: not checked",)
    need = _with_headroom(candidate.vram_bytes, policy.vram_headroom)
    needs = (
        f"needs {gb(need)} VRAM ({gb(candidate.vram_bytes)} + "
        f"{_pct(policy.vram_headroom)} headroom)"
    )
    rule = policy.vram_policy.get(candidate.engine, SUM)
    free, where = free_vram(capacity, rule, reclaimable_bytes)
    if free is None:
        return None, ("free VRAM not reported by the GPU: not checked",)
    if need > free:
        return f"too big: {needs}, {gb(free)} free {where}", ()
    return None, ()


def check_cpu(
    candidate: Candidate, capacity: HostCapacity, policy: FitPolicy
) -> tuple[str | None, tuple[str, ...]]:
    if not candidate.cpu_ok:
        return "needs a GPU: the host is in CPU mode and the candidate is not marked cpu_ok", ()
    budget = policy.ram_budget_bytes
    source = "RAM budget"
    if budget is None:
        budget, source = capacity.ram_available_bytes, "RAM available"
    if candidate.vram_bytes <= 0 or budget is None:
        return None, ("RAM need or budget unknown: not checked",)
    need = _with_headroom(candidate.vram_bytes, policy.vram_headroom)
    if need > budget:
        return (
            f"too big for CPU mode: needs {gb(need)} RAM ({gb(candidate.vram_bytes)} + "
            f"{_pct(policy.vram_headroom)} headroom), {gb(budget)} {source}"
        ), ()
    return None, ()


def check_disk(
    candidate: Candidate, capacity: HostCapacity, policy: FitPolicy
) -> tuple[str | None, tuple[str, ...]]:
    if candidate.download_bytes <= 0:
        return None, ("download size unknown: disk not checked",)
    if capacity.disk_free_bytes is None:
        return None, ("free disk not reported: not checked",)
    need = _with_headroom(candidate.download_bytes, policy.disk_headroom)
    if need > capacity.disk_free_bytes:
        return (
            f"not enough disk: download needs {gb(need)} ({gb(candidate.download_bytes)} + "
            f"{_pct(policy.disk_headroom)} headroom), {gb(capacity.disk_free_bytes)} free"
        ), ()
    return None, ()


def check_fit(
    candidate: Candidate,
    capacity: HostCapacity,
    policy: FitPolicy | None = None,
    *,
    present: bool = False,
    reclaimable_vram_bytes: int = 0,
) -> FitDecision:
    """Memory first (the usual reason to skip), then disk unless the model is present."""
    policy = policy or FitPolicy()
    if capacity.gpu_mode:
        reason, notes = check_vram(candidate, capacity, policy, reclaimable_vram_bytes)
    else:
        reason, notes = check_cpu(candidate, capacity, policy)
    if reason is None and not present:
        reason, more = check_disk(candidate, capacity, policy)
        notes += more
    return FitDecision(candidate, reason, notes)


def plan(
    candidates: Iterable[Candidate],
    capacity: HostCapacity,
    policy: FitPolicy | None = None,
    *,
    present: Iterable[str] = (),
    reclaimable_vram_bytes: int = 0,
) -> list[FitDecision]:
    """A decision per candidate, in order. ``present`` holds names already on the host."""
    here = set(present)
    return [
        check_fit(
            c,
            capacity,
            policy,
            present=c.name in here,
            reclaimable_vram_bytes=reclaimable_vram_bytes,
        )
        for c in candidates
    ]
