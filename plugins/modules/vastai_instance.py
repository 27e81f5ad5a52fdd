#!/usr/bin/python
# Copyright: vastllm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module vastai_instance: the Vast.ai REST calls of the vastai_instance role."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vastai_instance
short_description: Find, search, create, show, start and destroy Vast.ai instances
description:
  - One Vast.ai REST call (or one paged listing) per task, for the vastai_instance role. Runs on the
    controller (localhost).
  - O(action=find) lists every instance of the account (C(GET /api/v1/instances/), following
    C(next_token)) and returns those whose label matches O(names).
  - O(action=offers) searches offers (C(POST /api/v0/bundles/)) with operator-dict O(filters),
    cheapest first.
  - O(action=create) accepts an offer (C(PUT /api/v0/asks/{offer_id}/)) and returns the new
    instance id (C(new_contract)). With O(labels) it rents one instance per label from
    O(offer_ids), cheapest first, passing over offers that were taken since the search.
  - O(action=show) reads one instance (C(GET /api/v0/instances/{id}/)), or each of
    O(instance_ids).
  - O(action=start) starts each of O(instance_ids) that is stopped (C(PUT /api/v0/instances/{id}/)
    with C(state=running), the manage-instance call); one that runs, is starting or waits for its
    GPU is left alone, so a second start changes nothing. A start is asked, not done; read the
    instances with O(action=show) after it.
  - O(action=destroy) destroys instances by id (C(DELETE /api/v0/instances/{id}/)); an instance
    that is already gone is reported, not an error.
  - Answers 429, 502, 503 and 504 are retried with a growing pause (0.15 s, then x1.5); a rejected
    key (401) is one clear error. The key is never returned or logged.
  - Every successful result carries C(vastai_ok=true). Tasks that pass the key use C(no_log), which
    would hide an error message too; they register the result with C(failed_when=false) and a
    following task fails with C(msg) when C(vastai_ok) is missing.
version_added: "0.1.0"
author:
  - vastllm
options:
  action:
    description: What to do.
    type: str
    required: true
    choices: [find, offers, create, show, start, destroy]
  api_url:
    description: Base URL of the Vast.ai console API.
    type: str
    default: https://console.vast.ai
  api_key:
    description: Vast.ai API key, sent as C(Authorization Bearer).
    type: str
    required: true
  names:
    description:
      - O(action=find) the labels to look for (surrounding whitespace of labels is ignored).
      - With O(match_host_names=true) a name also matches the host names of the vastai inventory
        plugin (the label with unsafe characters replaced by C(-), C(<label>-<id>), C(C.<id>)).
    type: list
    elements: str
    default: []
  match_host_names:
    description: Let O(names) match the vastai inventory plugin's host names too.
    type: bool
    default: false
  filters:
    description: O(action=offers) the search body (operator dicts and C(order), C(type), C(limit)).
    type: dict
    default: {}
  offer_id:
    description: O(action=create) the offer (C(ask_contract_id)) to accept.
    type: int
  offer_ids:
    description:
      - O(action=create) with O(labels) the offers to rent from, in order (cheapest first); an
        offer Vast.ai says is taken since the search is passed over for the next one.
    type: list
    elements: int
    default: []
  labels:
    description:
      - O(action=create) rent one instance per label from O(offer_ids), each with the body
        O(create) and its label.
    type: list
    elements: str
    default: []
  create:
    description: O(action=create) the request body (image, disk, label, runtype, onstart...).
    type: dict
    default: {}
  instance_id:
    description: O(action=show) the instance to read.
    type: int
  instance_ids:
    description:
      - O(action=destroy) the instances to destroy.
      - O(action=start) the instances to start.
      - O(action=show) the instances to read (instead of O(instance_id)).
    type: list
    elements: int
    default: []
  retries:
    description: How many times an answer 429, 502, 503 or 504 is repeated.
    type: int
    default: 4
  timeout:
    description: Seconds to wait for each HTTP answer (each attempt waits this long at most).
    type: int
    default: 30
attributes:
  check_mode:
    support: full
    details: find, offers and show run; create, start and destroy only report what they would do.
  diff_mode:
    support: none
notes:
  - Every instance in a result is a summary with C(id), C(label), C(actual_status),
    C(intended_status), C(status_msg), C(state) (C(running), C(starting) or C(stopped)),
    C(run_state) (C(running), C(starting), C(stopped), C(outbid), C(scheduling) meaning asked to
    run but without its GPU, see C(run_state) of module_utils/vastai_api.py), C(is_bid),
    C(gpu_name), C(num_gpus), C(dph_total) and C(ssh) (C(host), C(port), C(mode) C(direct) or
    C(proxy), or null while there is no endpoint yet). C(ready) is true when the instance runs and
    has an endpoint.
  - The HTTP client, key-free error messages and SSH endpoint choice are
    C(plugins/module_utils/vastai_api.py), shared with the vastai inventory plugin and the tunnel
    resolver; the C(module_utils) setting of the project's C(ansible.cfg) lets Ansible ship it with
    this module.
"""

EXAMPLES = r"""
- name: Find the instances labelled my-llm
  vastai_instance:
    action: find
    api_key: "{{ _vastai_instance_key }}"
    names: [my-llm]
  no_log: true
"""

RETURN = r"""
vastai_ok:
  description: Present (true) when the call succeeded.
  returned: success
  type: bool
instances:
  description: O(action=find) the matching instances (summaries), by id.
  returned: action=find
  type: list
  elements: dict
missing:
  description: O(action=find) the names no instance matched.
  returned: action=find
  type: list
  elements: str
offers:
  description: O(action=offers) the matching offers, cheapest first.
  returned: action=offers
  type: list
  elements: dict
instance_id:
  description: O(action=create) the new instance (null in check mode).
  returned: action=create
  type: int
created:
  description:
    - O(action=create) with O(labels) one C(label), C(offer_id), C(instance_id) (null in check
      mode) per instance rented, in the order of O(labels); also returned by a failure, with
      those rented before it.
  returned: action=create with labels
  type: list
  elements: dict
taken:
  description: O(action=create) with O(labels) the offers passed over because they were taken.
  returned: action=create with labels
  type: list
  elements: int
instance:
  description: O(action=show) the instance summary, null when it is gone.
  returned: action=show with instance_id
  type: dict
instances_shown:
  description:
    - O(action=show) with O(instance_ids) one summary per id, in that order; an instance that is
      gone is C(id) with C(state=gone) and C(ready=false).
  returned: action=show with instance_ids
  type: list
  elements: dict
started:
  description: O(action=start) the ids asked to start (in check mode, those that would be).
  returned: action=start
  type: list
  elements: int
destroyed:
  description: O(action=destroy) the ids destroyed (in check mode, those that would be).
  returned: action=destroy
  type: list
  elements: int
already_gone:
  description: O(action=destroy) the ids the API did not know any more.
  returned: action=destroy
  type: list
  elements: int
"""

import json  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.vastai_api import (  # noqa: E402
    DEFAULT_URL,
    INSTANCE_PATH,
    LIST_PATH,
    ApiUnreachable,
    Client,
    KeyRejected,
    VastApiError,
    explain,
    host_name_forms,
    run_state,
    ssh_endpoint,
    strip_strings,
)
from ansible.module_utils.vastai_api import HttpStatusError as ApiStatusError  # noqa: E402

BAD_KEY_MSG = (
    "Vast.ai rejected the API key (401 auth_error): check VAST_API_KEY / "
    "~/.config/vastai/vast_api_key (or the variable vastai_api_key)"
)
STOPPED = frozenset({"exited", "stopped"})


class VastError(Exception):
    """A Vast.ai answer the task cannot use; the message is shown as is."""


class OfferTaken(VastError):
    """The offer is no longer available (rented by someone else since the search)."""


class FleetError(VastError):
    """Renting one of several instances failed; ``created`` are those rented before it."""

    def __init__(self, message: str, created: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.created = created


class HttpStatusError(VastError):
    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body  # the JSON error body, when there is one


class VastClient:
    """The shared Vast.ai client (module_utils/vastai_api.py), its errors in the task's words."""

    def __init__(self, url: str, key: str, retries: int, timeout: int) -> None:
        self.url = url.rstrip("/")
        self.api = Client(url, key, retries=retries, timeout=timeout,
                          user_agent="vastllm-vastai-instance")

    def _error(self, exc: VastApiError, what: str) -> VastError:
        if isinstance(exc, KeyRejected):
            return HttpStatusError(401, BAD_KEY_MSG)
        if isinstance(exc, ApiStatusError):
            return HttpStatusError(exc.status, f"Vast.ai {what}: {exc}", exc.body)
        if isinstance(exc, ApiUnreachable):
            return VastError(f"cannot reach the Vast.ai API at {self.url}: {exc.reason}")
        return VastError(f"Vast.ai {what}: {exc}")

    def call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            return self.api.call(method, path, body, allow_empty=True)
        except VastApiError as exc:
            raise self._error(exc, f"{method} {path.partition('?')[0]}") from None

    def instances(self) -> list[dict[str, Any]]:
        try:
            rows: list[dict[str, Any]] = self.api.instances()
        except VastApiError as exc:
            raise self._error(exc, f"GET {LIST_PATH}") from None
        return rows

    def destroy(self, instance_id: int) -> bool:
        """The shared client's destroy: False when the instance is already gone."""
        try:
            return self.api.destroy(instance_id)
        except VastApiError as exc:
            raise self._error(exc, f"DELETE {INSTANCE_PATH}{instance_id}/") from None


def _ssh(inst: dict[str, Any]) -> dict[str, Any] | None:
    """Direct (public IP + host port of 22/tcp) when mapped, else the Vast.ai SSH proxy."""
    endpoint = ssh_endpoint(inst)
    return None if endpoint is None else dict(endpoint._asdict())


def state_of(inst: dict[str, Any]) -> str:
    """running | starting (on its way up) | stopped (exited, or abandoned by Vast.ai: never got
    past created, and Vast.ai no longer intends it to run). An instance that is loading its image
    counts as starting whatever its intended status; the boot timeout catches one that hangs."""
    actual = inst.get("actual_status")
    if actual == "running":
        return "running"
    if actual in STOPPED or (actual in (None, "created")
                             and inst.get("intended_status") == "stopped"):
        return "stopped"
    return "starting"


def summary(inst: dict[str, Any]) -> dict[str, Any]:
    state = state_of(inst)
    ssh = _ssh(inst) if state == "running" else None
    fields = ("id", "label", "actual_status", "intended_status", "cur_state", "status_msg",
              "gpu_name", "num_gpus", "dph_total", "geolocation", "machine_id")
    out = {k: inst.get(k) for k in fields}
    out.update(run_state=run_state(inst), is_bid=bool(inst.get("is_bid")), state=state, ssh=ssh, ready=state == "running" and ssh is not None)
    return out


def find(client: VastClient, names: list[str], host_names: bool) -> dict[str, Any]:
    wanted = [n.strip() for n in names if n and n.strip()]
    found: dict[int, dict[str, Any]] = {}
    matched: set[str] = set()
    for inst in client.instances():
        label = inst.get("label") if isinstance(inst.get("label"), str) else ""
        forms = {label} if label else set()
        if host_names:
            forms |= host_name_forms(inst)
        hits = forms.intersection(wanted)
        if hits:
            matched |= hits
            found[inst["id"]] = summary(inst)
    return {"changed": False, "instances": [found[i] for i in sorted(found)],
            "missing": [n for n in wanted if n not in matched]}


def offers(client: VastClient, filters: dict[str, Any]) -> dict[str, Any]:
    answer = client.call("POST", "/api/v0/bundles/", filters)
    rows = answer.get("offers") if isinstance(answer, dict) else None
    if not isinstance(rows, list):
        raise VastError("Vast.ai POST /api/v0/bundles/: the answer has no offer list")
    rows = [strip_strings(o) for o in rows if isinstance(o, dict) and o.get("id") is not None]
    rows.sort(key=lambda o: (o.get("dph_total") is None, o.get("dph_total") or 0))
    keep = ("id", "gpu_name", "num_gpus", "gpu_ram", "disk_space", "dph_total", "geolocation",
            "reliability2", "cuda_max_good", "machine_id", "min_bid")
    return {"changed": False, "offers": [{k: o.get(k) for k in keep} for o in rows]}


def create(client: VastClient, offer_id: int, body: dict[str, Any], check: bool) -> dict[str, Any]:
    if check:
        return {"changed": True, "instance_id": None}
    try:
        answer = client.call("PUT", f"/api/v0/asks/{offer_id}/", body)
    except HttpStatusError as exc:
        if isinstance(exc.body, dict) and isinstance(exc.body.get("new_contract"), int):
            answer = exc.body
        elif exc.status in (404, 410):
            raise OfferTaken(f"{exc} (the offer was taken since the search: run again to rent "
                             "the next cheapest one)") from None
        else:
            raise
    new_id = answer.get("new_contract") if isinstance(answer, dict) else None
    if isinstance(answer, dict) and answer.get("success") and isinstance(new_id, int):
        return {"changed": True, "instance_id": new_id}
    detail = explain(answer) or json.dumps(answer)[:300]
    if isinstance(new_id, int):
        # a failed create can still leave an instance behind: do not pay for it
        try:
            client.destroy(new_id)
        except VastError as exc:
            raise VastError(f"Vast.ai refused offer {offer_id} ({detail}) and instance {new_id} "
                            f"it left behind could not be destroyed: {exc}") from None
        raise VastError(f"Vast.ai refused offer {offer_id} ({detail}); the instance {new_id} "
                        "it left behind was destroyed")
    raise VastError(f"Vast.ai refused offer {offer_id}: {detail}")


def _rented(created: list[dict[str, Any]]) -> str:
    return ", ".join(f"{c['label']} (instance {c['instance_id']})" for c in created)


def create_many(client: VastClient, offer_ids: list[int], labels: list[str],
                body: dict[str, Any], check: bool) -> dict[str, Any]:
    """One instance per label, from the offers in order; an offer taken since the search is
    passed over. A failure names the instances rented before it (the next run reuses them)."""
    candidates = list(offer_ids)
    created: list[dict[str, Any]] = []
    taken: list[int] = []
    for label in labels:
        while True:
            if not candidates:
                before = f" Rented before that: {_rented(created)}." if created else ""
                raise FleetError(
                    f"No offer left to rent {label}: {len(offer_ids)} offers matched and "
                    f"{len(taken)} of them were taken since the search ({taken or 'none'})."
                    f"{before} Run again to search again.", created)
            offer_id = candidates.pop(0)
            if check:
                created.append({"label": label, "offer_id": offer_id, "instance_id": None})
                break
            try:
                one = create(client, offer_id, {**body, "label": label}, check=False)
            except OfferTaken:
                taken.append(offer_id)
                continue
            except VastError as exc:
                before = (f" Rented before that: {_rented(created)}; the next run reuses "
                          "them." if created else "")
                raise FleetError(f"Renting {label} failed: {exc}.{before}", created) from None
            created.append({"label": label, "offer_id": offer_id,
                            "instance_id": one["instance_id"]})
            break
    return {"changed": bool(created), "created": created, "taken": taken}


def _show_one(client: VastClient, instance_id: int) -> dict[str, Any] | None:
    answer = client.call("GET", f"/api/v0/instances/{instance_id}/")
    inst = answer.get("instances") if isinstance(answer, dict) else None
    return summary(strip_strings(inst)) if isinstance(inst, dict) else None


def show(client: VastClient, instance_id: int) -> dict[str, Any]:
    return {"changed": False, "instance": _show_one(client, instance_id)}


def show_many(client: VastClient, ids: list[int]) -> dict[str, Any]:
    shown = []
    for instance_id in ids:
        one = _show_one(client, instance_id)
        shown.append(one if one is not None else
                     {"id": instance_id, "state": "gone", "ssh": None, "ready": False})
    return {"changed": False, "instances_shown": shown}


def start(client: VastClient, ids: list[int], check: bool) -> dict[str, Any]:
    """Ask each stopped instance of ``ids`` to run; the others (running, starting, waiting for
    their GPU, gone) are left alone."""
    started: list[int] = []
    for instance_id in ids:
        answer = client.call("GET", f"/api/v0/instances/{instance_id}/")
        inst = answer.get("instances") if isinstance(answer, dict) else None
        if not isinstance(inst, dict) or run_state(strip_strings(inst)) != "stopped":
            continue
        if not check:
            client.call("PUT", f"/api/v0/instances/{instance_id}/", {"state": "running"})
        started.append(instance_id)
    return {"changed": bool(started), "started": started}


def destroy(client: VastClient, ids: list[int], check: bool) -> dict[str, Any]:
    if check:
        return {"changed": bool(ids), "destroyed": list(ids), "already_gone": []}
    destroyed: list[int] = []
    gone: list[int] = []
    for instance_id in ids:
        try:
            was_there = client.destroy(instance_id)
        except HttpStatusError as exc:
            raise VastError(f"{exc} (destroyed so far: {destroyed or 'none'})") from None
        (destroyed if was_there else gone).append(instance_id)
    return {"changed": bool(destroyed), "destroyed": destroyed, "already_gone": gone}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "action": {"type": "str", "required": True,
                       "choices": ["find", "offers", "create", "show", "start", "destroy"]},
            "api_url": {"type": "str", "default": DEFAULT_URL},
            "api_key": {"type": "str", "required": True, "no_log": True},
            "names": {"type": "list", "elements": "str", "default": []},
            "match_host_names": {"type": "bool", "default": False},
            "filters": {"type": "dict", "default": {}},
            "offer_id": {"type": "int"},
            "offer_ids": {"type": "list", "elements": "int", "default": []},
            "labels": {"type": "list", "elements": "str", "default": []},
            "create": {"type": "dict", "default": {}},
            "instance_id": {"type": "int"},
            "instance_ids": {"type": "list", "elements": "int", "default": []},
            "retries": {"type": "int", "default": 4},
            "timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    p = module.params
    if p["action"] == "create" and p["offer_id"] is None and not (p["labels"] and p["offer_ids"]):
        module.fail_json(msg="action=create needs offer_id, or labels and offer_ids")
    if p["action"] == "show" and p["instance_id"] is None and not p["instance_ids"]:
        module.fail_json(msg="action=show needs instance_id or instance_ids")
    if not p["api_key"].strip():
        module.fail_json(msg="No Vast.ai API key: set VAST_API_KEY or write it to "
                             "~/.config/vastai/vast_api_key")
    client = VastClient(p["api_url"], p["api_key"].strip(), p["retries"], p["timeout"])
    try:
        if p["action"] == "find":
            result = find(client, p["names"], p["match_host_names"])
        elif p["action"] == "offers":
            result = offers(client, p["filters"])
        elif p["action"] == "create" and p["offer_id"] is None:
            result = create_many(client, p["offer_ids"], p["labels"], p["create"],
                                 module.check_mode)
        elif p["action"] == "create":
            result = create(client, p["offer_id"], p["create"], module.check_mode)
        elif p["action"] == "show" and p["instance_id"] is None:
            result = show_many(client, p["instance_ids"])
        elif p["action"] == "show":
            result = show(client, p["instance_id"])
        elif p["action"] == "start":
            result = start(client, p["instance_ids"], module.check_mode)
        else:
            result = destroy(client, p["instance_ids"], module.check_mode)
    except FleetError as exc:
        module.fail_json(msg=str(exc), created=exc.created)
    except VastError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(vastai_ok=True, **result)


if __name__ == "__main__":
    main()
