#!/usr/bin/python
# Copyright: vastllm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module vast_api: the Vast.ai REST calls of the vast_instance role."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vast_api
short_description: Find, search, create, show and destroy Vast.ai instances
description:
  - One Vast.ai REST call (or one paged listing) per task, for the vast_instance role. Runs on the
    controller (localhost).
  - O(action=find) lists every instance of the account (C(GET /api/v1/instances/), following
    C(next_token)) and returns those whose label matches O(names).
  - O(action=offers) searches offers (C(POST /api/v0/bundles/)) with operator-dict O(filters),
    cheapest first.
  - O(action=create) accepts an offer (C(PUT /api/v0/asks/{offer_id}/)) and returns the new
    instance id (C(new_contract)).
  - O(action=show) reads one instance (C(GET /api/v0/instances/{id}/)).
  - O(action=destroy) destroys instances by id (C(DELETE /api/v0/instances/{id}/)); an instance
    that is already gone is reported, not an error.
  - Answers 429, 502, 503 and 504 are retried with a growing pause (0.15 s, then x1.5); a rejected
    key (401) is one clear error. The key is never returned or logged.
  - Every successful result carries C(vast_ok=true). Tasks that pass the key use C(no_log), which
    would hide an error message too; they register the result with C(failed_when=false) and a
    following task fails with C(msg) when C(vast_ok) is missing.
version_added: "0.1.0"
author:
  - vastllm
options:
  action:
    description: What to do.
    type: str
    required: true
    choices: [find, offers, create, show, destroy]
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
  create:
    description: O(action=create) the request body (image, disk, label, runtype, onstart...).
    type: dict
    default: {}
  instance_id:
    description: O(action=show) the instance to read.
    type: int
  instance_ids:
    description: O(action=destroy) the instances to destroy.
    type: list
    elements: int
    default: []
  retries:
    description: How many times an answer 429, 502, 503 or 504 is repeated.
    type: int
    default: 4
  timeout:
    description: Seconds to wait for each HTTP answer.
    type: int
    default: 30
attributes:
  check_mode:
    support: full
    details: find, offers and show run; create and destroy only report what they would do.
  diff_mode:
    support: none
notes:
  - Every instance in a result is a summary with C(id), C(label), C(actual_status),
    C(intended_status), C(status_msg), C(state) (C(running), C(starting) or C(stopped)),
    C(gpu_name), C(num_gpus), C(dph_total) and C(ssh) (C(host), C(port), C(mode) C(direct) or
    C(proxy), or null while there is no endpoint yet). C(ready) is true when the instance runs and
    has an endpoint.
"""

EXAMPLES = r"""
- name: Find the instances labelled my-llm
  vast_api:
    action: find
    api_key: "{{ _vast_instance_key }}"
    names: [my-llm]
  no_log: true
"""

RETURN = r"""
vast_ok:
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
instance:
  description: O(action=show) the instance summary, null when it is gone.
  returned: action=show
  type: dict
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
import re  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.parse  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.urls import open_url  # noqa: E402

LIST_PATH = "/api/v1/instances/"
PAGE_LIMIT = 25  # the API's maximum page size
MAX_PAGES = 1000
RETRYABLE = frozenset({429, 502, 503, 504})
BACKOFF_START = 0.15
BACKOFF_FACTOR = 1.5
BAD_KEY_MSG = (
    "Vast.ai rejected the API key (401 auth_error): check VAST_API_KEY / "
    "~/.config/vastai/vast_api_key (or the variable vast_api_key)"
)
IPV4_ANY = "0.0.0.0"  # noqa: S104 - a HostIp value in the API, nothing binds to it
STOPPED = frozenset({"exited", "stopped"})
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class VastError(Exception):
    """A Vast.ai answer the task cannot use; the message is shown as is."""


class HttpStatusError(VastError):
    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body  # the JSON error body, when there is one


def _strip(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _explain(data: Any) -> str:
    """error: msg of a JSON error body (several shapes), or ''."""
    if not isinstance(data, dict):
        return ""
    return ": ".join(str(data[k]) for k in ("error", "msg", "message", "detail") if data.get(k))


def _error_detail(status: int, body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        explained = _explain(json.loads(text))
    except ValueError:
        explained = ""
    if explained:
        return f"HTTP {status} {explained}"
    return f"HTTP {status} {text[:200]}" if text else f"HTTP {status}"


class VastClient:
    """Minimal Vast.ai REST client over ansible's open_url."""

    def __init__(self, url: str, key: str, retries: int, timeout: int) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.retries = max(0, retries)
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body)
        headers = {"Authorization": f"Bearer {self.key}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        delay = BACKOFF_START
        what = f"{method} {path.partition('?')[0]}"
        for attempt in range(self.retries + 1):
            try:
                resp = open_url(self.url + path, method=method, data=data, headers=headers,
                                timeout=self.timeout, http_agent="vastllm-vast-instance",
                                validate_certs=True)
                raw = resp.read()
            except urllib.error.HTTPError as exc:
                status, err_body = exc.code, exc.read() or b""
                if status == 401:
                    raise HttpStatusError(401, BAD_KEY_MSG) from None
                if status in RETRYABLE and attempt < self.retries:
                    time.sleep(delay)
                    delay *= BACKOFF_FACTOR
                    continue
                try:
                    parsed = json.loads(err_body)
                except ValueError:
                    parsed = None
                raise HttpStatusError(status, f"Vast.ai {what}: "
                                      f"{_error_detail(status, err_body)}", parsed) from None
            except urllib.error.URLError as exc:
                raise VastError(f"cannot reach the Vast.ai API at {self.url}: "
                                f"{exc.reason}") from None
            except OSError as exc:
                raise VastError(f"cannot reach the Vast.ai API at {self.url}: {exc}") from None
            try:
                return json.loads(raw) if raw.strip() else {}
            except ValueError:
                raise VastError(f"Vast.ai {what}: the answer is not JSON") from None
        raise VastError(f"Vast.ai {what}: no answer")  # not reached

    def instances(self) -> list[dict[str, Any]]:
        params = {"limit": str(PAGE_LIMIT)}
        rows: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            page = self.call("GET", LIST_PATH + "?" + urllib.parse.urlencode(params))
            found = page.get("instances") if isinstance(page, dict) else None
            if not isinstance(found, list):
                raise VastError(f"Vast.ai GET {LIST_PATH}: the answer has no instance list")
            rows.extend(_strip(r) for r in found if isinstance(r, dict) and "id" in r)
            token = page.get("next_token")
            if not token:
                return rows
            params["after_token"] = str(token)
        raise VastError(f"Vast.ai GET {LIST_PATH}: more than {MAX_PAGES} pages")


def _host_port(ports: Any, container_port: str) -> int | None:
    if not isinstance(ports, dict):
        return None
    entries = ports.get(container_port)
    if not isinstance(entries, list):
        return None
    ordered = sorted((e for e in entries if isinstance(e, dict)),
                     key=lambda e: e.get("HostIp") != IPV4_ANY)
    for entry in ordered:
        try:
            return int(str(entry.get("HostPort")))
        except (TypeError, ValueError):
            continue
    return None


def ssh_endpoint(inst: dict[str, Any]) -> dict[str, Any] | None:
    """Direct (public IP + host port of 22/tcp) when mapped, else the Vast.ai SSH proxy."""
    direct_port = _host_port(inst.get("ports"), "22/tcp")
    if inst.get("public_ipaddr") and direct_port:
        return {"host": inst["public_ipaddr"], "port": direct_port, "mode": "direct"}
    host, port = inst.get("ssh_host"), inst.get("ssh_port")
    if host and isinstance(port, int):
        if "jupyter" in (inst.get("image_runtype") or ""):
            port += 1  # the proxy of Jupyter run types listens one port higher
        return {"host": host, "port": port, "mode": "proxy"}
    return None


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
    ssh = ssh_endpoint(inst) if state == "running" else None
    fields = ("id", "label", "actual_status", "intended_status", "cur_state", "status_msg",
              "gpu_name", "num_gpus", "dph_total", "geolocation")
    out = {k: inst.get(k) for k in fields}
    out.update(state=state, ssh=ssh, ready=state == "running" and ssh is not None)
    return out


def host_name_forms(inst: dict[str, Any]) -> set[str]:
    """Names the vastai inventory plugin may give this instance."""
    label = inst.get("label")
    clean = _UNSAFE_NAME.sub("-", label.strip()).strip("-") if isinstance(label, str) else ""
    forms = {f"C.{inst['id']}"}
    if clean:
        forms |= {clean, f"{clean}-{inst['id']}"}
    return forms


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
    rows = [_strip(o) for o in rows if isinstance(o, dict) and o.get("id") is not None]
    rows.sort(key=lambda o: (o.get("dph_total") is None, o.get("dph_total") or 0))
    keep = ("id", "gpu_name", "num_gpus", "gpu_ram", "disk_space", "dph_total", "geolocation",
            "reliability2", "cuda_max_good", "machine_id")
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
            raise VastError(f"{exc} (the offer was taken since the search: run again to rent "
                            "the next cheapest one)") from None
        else:
            raise
    new_id = answer.get("new_contract") if isinstance(answer, dict) else None
    if isinstance(answer, dict) and answer.get("success") and isinstance(new_id, int):
        return {"changed": True, "instance_id": new_id}
    detail = _explain(answer) or json.dumps(answer)[:300]
    if isinstance(new_id, int):
        # a failed create can still leave an instance behind: do not pay for it
        try:
            client.call("DELETE", f"/api/v0/instances/{new_id}/")
        except VastError as exc:
            raise VastError(f"Vast.ai refused offer {offer_id} ({detail}) and instance {new_id} "
                            f"it left behind could not be destroyed: {exc}") from None
        raise VastError(f"Vast.ai refused offer {offer_id} ({detail}); the instance {new_id} "
                        "it left behind was destroyed")
    raise VastError(f"Vast.ai refused offer {offer_id}: {detail}")


def show(client: VastClient, instance_id: int) -> dict[str, Any]:
    answer = client.call("GET", f"/api/v0/instances/{instance_id}/")
    inst = answer.get("instances") if isinstance(answer, dict) else None
    if not isinstance(inst, dict):
        return {"changed": False, "instance": None}
    return {"changed": False, "instance": summary(_strip(inst))}


def destroy(client: VastClient, ids: list[int], check: bool) -> dict[str, Any]:
    if check:
        return {"changed": bool(ids), "destroyed": list(ids), "already_gone": []}
    destroyed: list[int] = []
    gone: list[int] = []
    for instance_id in ids:
        try:
            client.call("DELETE", f"/api/v0/instances/{instance_id}/")
        except HttpStatusError as exc:
            if exc.status == 404:
                gone.append(instance_id)
                continue
            raise VastError(f"{exc} (destroyed so far: {destroyed or 'none'})") from None
        destroyed.append(instance_id)
    return {"changed": bool(destroyed), "destroyed": destroyed, "already_gone": gone}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "action": {"type": "str", "required": True,
                       "choices": ["find", "offers", "create", "show", "destroy"]},
            "api_url": {"type": "str", "default": "https://console.vast.ai"},
            "api_key": {"type": "str", "required": True, "no_log": True},
            "names": {"type": "list", "elements": "str", "default": []},
            "match_host_names": {"type": "bool", "default": False},
            "filters": {"type": "dict", "default": {}},
            "offer_id": {"type": "int"},
            "create": {"type": "dict", "default": {}},
            "instance_id": {"type": "int"},
            "instance_ids": {"type": "list", "elements": "int", "default": []},
            "retries": {"type": "int", "default": 4},
            "timeout": {"type": "int", "default": 30},
        },
        required_if=[("action", "create", ["offer_id"]), ("action", "show", ["instance_id"])],
        supports_check_mode=True,
    )
    p = module.params
    if not p["api_key"].strip():
        module.fail_json(msg="No Vast.ai API key: set VAST_API_KEY or write it to "
                             "~/.config/vastai/vast_api_key")
    client = VastClient(p["api_url"], p["api_key"].strip(), p["retries"], p["timeout"])
    try:
        if p["action"] == "find":
            result = find(client, p["names"], p["match_host_names"])
        elif p["action"] == "offers":
            result = offers(client, p["filters"])
        elif p["action"] == "create":
            result = create(client, p["offer_id"], p["create"], module.check_mode)
        elif p["action"] == "show":
            result = show(client, p["instance_id"])
        else:
            result = destroy(client, p["instance_ids"], module.check_mode)
    except VastError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(vast_ok=True, **result)


if __name__ == "__main__":
    main()
