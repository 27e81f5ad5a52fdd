"""``vastllm status``: one record per GPU host, from the ``vastllm_status`` summaries that
playbooks/status.yml shows and from the hosts that could not be read."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from vastllm.cli.plays import STATUS_VAR
from vastllm.cli.prometheus import cache_stats
from vastllm.cli.runner import RunOutcome

# the play of playbooks/status.yml that runs on the GPU hosts
GPU_PLAY = "Report the state of each GPU host"


def _active_model(raw: Any) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        data = json.loads(str(raw))
    except ValueError:
        return {"error": "the active model file is not JSON"}
    return data if isinstance(data, dict) else {"error": "the active model file is not an object"}


def _gpu(facts: dict[str, Any]) -> dict[str, Any]:
    gpus = [
        {
            "index": g.get("index"),
            "name": g.get("name"),
            "memory_used_mib": g.get("memory_used_mib"),
            "memory_total_mib": g.get("memory_total_mib"),
        }
        for g in facts.get("gpus") or []
        if isinstance(g, dict)
    ]
    return {
        "mode": facts.get("mode"),
        "gpus": gpus,
        "problem": facts.get("problem"),
        "driver_version": facts.get("driver_version"),
        "cuda_version": facts.get("cuda_version"),
    }


def host_record(summary: dict[str, Any]) -> dict[str, Any]:
    """One GPU host's record from its ``vastllm_status``: ``gpu`` holds gpu_facts' vastllm_gpu,
    ``capacity`` its vastllm_host (disk, RAM)."""
    gpu = summary.get("gpu")
    facts: dict[str, Any] = gpu if isinstance(gpu, dict) else {}
    capacity = summary.get("capacity")
    host: dict[str, Any] = capacity if isinstance(capacity, dict) else {}
    metrics = summary.get("metrics")
    cache = cache_stats(str(metrics)) if metrics else None
    return {
        "host": summary.get("host"),
        "reachable": True,
        "error": None,
        "healthy": bool(summary.get("healthy")),
        "problems": list(summary.get("problems") or []),
        "init": summary.get("init"),
        "supervisord": summary.get("supervisord"),
        "services": list(summary.get("services") or []),
        "redis": summary.get("redis"),
        "active_model": _active_model(summary.get("active_model_raw")),
        "gpu": _gpu(facts),
        "disk": {
            "path": host.get("disk_path"),
            "free_bytes": host.get("disk_free_bytes"),
            "total_bytes": host.get("disk_total_bytes"),
        },
        "memory": {
            "available_bytes": host.get("ram_available_bytes"),
            "total_bytes": host.get("ram_total_bytes"),
        },
        "cache": asdict(cache) if cache is not None else None,
        "tunnels": summary.get("tunnels"),
    }


def build_report(outcome: RunOutcome) -> dict[str, Any]:
    """``{"hosts": [...], "errors": [...]}``: a record per GPU host (read, or why not), and the
    failures of the run that belong to no GPU host record (the workstation's)."""
    hosts: dict[str, dict[str, Any]] = {}
    for host, summary in outcome.log.values.get(STATUS_VAR, {}).items():
        if isinstance(summary, dict):
            hosts[host] = host_record({**summary, "host": host})
    errors = []
    for failure in outcome.log.failures():
        if failure.play == GPU_PLAY and failure.host not in hosts:
            hosts[failure.host] = {
                "host": failure.host,
                "reachable": not failure.unreachable,
                "error": f"{failure.task}: {failure.message}",
                "healthy": False,
            }
        else:
            errors.append({"host": failure.host, "task": failure.task, "message": failure.message})
    return {"hosts": [hosts[name] for name in sorted(hosts)], "errors": errors}
