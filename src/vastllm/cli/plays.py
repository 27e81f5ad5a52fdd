"""Which playbook each command runs, with which tags and variables: the CLI's whole interface
to the playbooks, in one place."""

from __future__ import annotations

from typing import Any

from vastllm.cli.runner import PlaybookRun

SITE = "site.yml"
RECOVER = "playbooks/recover.yml"
STATUS = "playbooks/status.yml"
PROVISION = "playbooks/provision.yml"
DESTROY = "playbooks/destroy.yml"
FORGET_HOST = "playbooks/forget_host.yml"
WAKE = "playbooks/wake.yml"
GPU_GROUP = "gpu_hosts"
WORKSTATION_GROUP = "workstation"
STATUS_VAR = "vastllm_status"
FLEET_PLAN_VAR = "vastai_fleet_plan"  # provision: one line per label, reused or rented
WAKE_REPORT_VAR = "vastai_wake_report"  # wake: one line per label, started, running or moved
FLEET_VAR = "vastllm_fleet"  # status.yml's workstation: the gateway and each host's price


def up() -> PlaybookRun:
    return PlaybookRun(SITE)


def recover(check: bool, serial: int | None) -> PlaybookRun:
    extravars = {} if serial is None else {"vastllm_recover_serial": serial}
    return PlaybookRun(RECOVER, extravars=extravars, check=check)


def tunnel(down: bool) -> PlaybookRun:
    return PlaybookRun(SITE, tags="tunnel", extravars={"tunnel_state": "absent"} if down else {})


def destroy(labels: list[str], confirm: bool) -> PlaybookRun:
    extravars = {"vastai_destroy_labels": list(labels), "vastai_destroy_confirm": confirm}
    return PlaybookRun(DESTROY, extravars=extravars)


def forget_host(name: str) -> PlaybookRun:
    return PlaybookRun(FORGET_HOST, extravars={"vastllm_forget_host": name})


def provision(
    *,
    label: str,
    gpu: str | None,
    min_vram_gib: int | None,
    min_disk_gib: int | None,
    max_dph: float | None,
    handover: bool,
    count: int | None = None,
    bid: float | None = None,
    fallback_on_demand: bool = False,
    check: bool = False,
) -> PlaybookRun:
    extravars: dict[str, Any] = {"vastai_label": label, "vastllm_provision_handover": handover}
    if bid is not None:
        extravars.update(
            vastai_interruptible=True,
            vastai_bid_dph=bid,
            vastai_fallback_on_demand=fallback_on_demand,
        )
    for name, value in (
        ("vastai_count", count),
        ("vastai_gpu_name", gpu),
        ("vastai_min_vram_gib", min_vram_gib),
        ("vastai_min_disk_gib", min_disk_gib),
        ("vastai_max_dph", max_dph),
    ):
        if value is not None:
            extravars[name] = value
    return PlaybookRun(PROVISION, extravars=extravars, check=check, collect=(FLEET_PLAN_VAR,))


def wake(labels: list[str], move: bool) -> PlaybookRun:
    extravars: dict[str, Any] = {"vastai_wake_move": move}
    if labels:
        extravars["vastai_wake_labels"] = list(labels)
    return PlaybookRun(WAKE, extravars=extravars, collect=(WAKE_REPORT_VAR,))


def status(limit: str | None) -> PlaybookRun:
    # the tunnel checks run on the workstation: keep it in the run when --limit names GPU hosts
    return PlaybookRun(
        STATUS,
        collect=(STATUS_VAR, FLEET_VAR),
        limit=f"{limit}:{WORKSTATION_GROUP}" if limit else None,
    )
