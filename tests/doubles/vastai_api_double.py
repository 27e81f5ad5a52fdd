#!/usr/bin/env python3
"""TEST DOUBLE of the Vast.ai REST API (not Vast.ai; nothing is rented here).

Standard library only. Serves, on 127.0.0.1, the documented wire shapes recorded in
tests/fixtures/vast-api (see /work/shared/fixtures/vast-api/INDEX.md for their sources):

* ``GET /api/v1/instances/`` -- keyset paging: ``limit`` (default 25, max 25, <= 0 -> 5),
  ``after_token`` (the previous ``next_token``; an unknown token is a 400 ``invalid_token``),
  ``select_filters`` (JSON operator dict); answers ``success, instances_found,
  total_instances, label_counts, next_token`` (null on the last page), ``instances``.
* ``GET /api/v0/instances/{id}/`` -- ``{"instances": {...}}``, ``{"instances": null}`` when gone.
* ``DELETE /api/v0/instances/{id}/`` -- ``{"success": true}``; already gone: 404 ``not_found``.
* ``PUT /api/v0/asks/{offer_id}/`` -- ``{"success": true, "new_contract": <instance id>}``;
  unknown/rented offer: 404 ``no_such_ask``. The new instance reports ``loading`` for
  ``boot_polls`` single-instance GETs, then ``running`` with a direct 22/tcp mapping.
* ``PUT /api/v0/instances/{id}/`` (manage instance) -- ``{"state": "stopped" | "running"}``
  and/or ``{"label": ...}`` (at least one; anything else a 400 ``invalid_args``), answers
  ``{"success": true}``; an unknown id is a 404 ``not_found``. Stop: ``actual_status``,
  ``cur_state``, ``next_state`` and ``intended_status`` become ``stopped``, ``ports`` null; the
  disk is still billed (``storage_total_cost`` $/h, see :meth:`VastState.cost_per_hour`). Start:
  ``intended_status`` and ``next_state`` become ``running`` and the instance boots as a new one
  does (``loading`` for ``boot_polls`` GETs, then ``running``) -- unless its GPU was rented by
  someone else meanwhile (knob ``gpu_taken``): then the start is still a success answer but the
  instance stays ``stopped`` (``actual_status``/``cur_state``), intending ``running``, as the
  docs describe a start "subject to resource availability on the machine".
* ``POST /api/v0/bundles/`` -- ``{"offers": [...]}``, filters must be operator dicts (a plain
  value is the recorded 400 ``bad_request``); no key needed, as documented.

Auth: ``Authorization: Bearer <key>`` or ``?api_key=``; a wrong or missing key gets 401
``{"success": false, "error": "auth_error", "msg": "Invalid user key"}``.

Instances are built from the recorded fixtures with varied ids, labels and ports. The default
fleet (``default_fleet()``): 30 running instances (even ones direct-SSH with ``22/tcp`` mapped
for IPv4 and IPv6, odd ones proxy-only with ``"ports": null``, one with ports but no 22/tcp,
one null label, one padded label, two sharing a label, one Jupyter run type), plus one exited,
one abandoned ``created`` and one with ``actual_status: null``.

Knobs (``POST /__double__/config`` JSON, or attributes of ``VastApiDouble.state``):
``api_key``, ``fail_next`` (list of ``[status, body, content_type]`` answered, in order, by the
next /api requests instead of the real answer; e.g. ``[[429, "API requests too frequent",
"text/plain"]]``, no Retry-After), ``boot_polls``, ``new_instance_ssh`` (``{"host": ..., "port":
...}``: a created instance boots with that ``public_ipaddr`` and ``22/tcp`` host port, e.g. a
real sshd on loopback; default: the 203.0.113.x documentation addresses), ``gpu_taken`` (ids of
instances whose GPU someone else rented: a start leaves them stopped), ``outbid`` (ids of
interruptible, ``is_bid``, instances a higher bid takes the GPU from, now:
``actual_status``/``cur_state``/``next_state`` ``stopped`` while ``intended_status`` stays
``running``; on-demand ids are ignored; no outbid instance was ever recorded publicly, so this is
the double's model in the documented fields). A create request with ``price`` (the documented bid,
$/h) makes an interruptible instance (``is_bid: true``, ``min_bid`` of the offer).

Introspection: ``GET /__double__/stats`` (every /api request: method, path, query, whether the
key was right, the JSON body of PUT/POST requests; never the key), ``POST /__double__/reset``
(clear the request log).

Prices: every instance carries the recorded ``dph_total`` (compute and disk, $/h), ``dph_base``,
``storage_cost`` ($/GB/month) and ``storage_total_cost`` (its disk, $/h); a running instance bills
``dph_total``, a stopped one ``storage_total_cost`` (only destroy ends every charge).

Run standalone: ``python tests/doubles/vastai_api_double.py --port 8123 --api-key KEY``;
``--outbid LABEL`` adds an interruptible instance with that label that a higher bid just stopped
(id ``FIRST_ID + OUTBID_N``, then the next), ``--new-instance-ssh HOST:PORT`` sets the knob.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "vast-api"
AUTH_ERROR = {"success": False, "error": "auth_error", "msg": "Invalid user key"}
MAX_LIMIT = 25
FIRST_ID = 40_000_001
OUTBID_N = 60  # the first --outbid instance is FIRST_ID + OUTBID_N


def _load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def _profiles() -> dict[str, dict[str, Any]]:
    """Hardware/price fields of two recorded machines: the docs-shaped A5000 and the real 4090."""
    docs = _load("show_instance_v0_assembled-from-docs-examples_utopia-scala.json")["instances"]
    offer = _load("search_offers_cli_raw_one-offer_UNATTRIBUTED.json")[0]
    keys = ("gpu_name", "num_gpus", "gpu_ram", "gpu_totalram", "cpu_ram", "cpu_cores_effective",
            "disk_space", "dph_total", "dph_base", "machine_id", "host_id", "geolocation",
            "cpu_name", "gpu_frac", "reliability2", "inet_down", "inet_up", "cuda_max_good",
            "driver_version", "min_bid", "storage_cost", "storage_total_cost")
    return {
        "a5000": {k: docs[k] for k in keys if k in docs},
        "4090": {k: offer[k] for k in keys if k in offer},
    }


def _base_instance() -> dict[str, Any]:
    """Full instance row: the docs-shaped 84 fields, overlaid with the real running capture."""
    row: dict[str, Any] = copy.deepcopy(
        _load("show_instance_v0_assembled-from-docs-examples_utopia-scala.json")["instances"]
    )
    capture = _load("show_instance_v0_running_ports-ipv4+ipv6_spike-capture_UNATTRIBUTED.json")
    row.update(copy.deepcopy(capture["instances"]))
    row.update(cur_state="running", next_state="running", image_runtype="ssh ssh_direc ssh_proxy")
    return row


def _mapping(host_port: int) -> list[dict[str, str]]:
    # HostPort is a string; each port is listed for IPv4 and IPv6 (recorded capture)
    return [{"HostIp": "0.0.0.0", "HostPort": str(host_port)},
            {"HostIp": "::", "HostPort": str(host_port)}]


def make_instance(n: int, label: str | None, *, ssh: str = "direct", status: str | None = "running",
                  profile: str = "4090", runtype: str | None = None) -> dict[str, Any]:
    """Instance number n (id FIRST_ID + n). ssh: direct (22/tcp mapped), proxy (ports null),
    nossh (ports mapped but no 22/tcp), none (no endpoint at all)."""
    row = _base_instance()
    row.update(_profiles()[profile])
    row.update(id=FIRST_ID + n, label=label, actual_status=status,
               public_ipaddr=f"203.0.113.{n + 1}", ssh_host=f"ssh{n % 9 + 1}.vast.ai",
               ssh_port=20000 + 7 * n, ssh_idx=str(n % 9 + 1), machine_dir_ssh_port=41000 + n)
    row["machine_id"] = int(row["machine_id"]) + n
    if runtype:
        row["image_runtype"] = runtype
    if ssh == "direct":
        row["ports"] = {"22/tcp": _mapping(30000 + n), "8000/tcp": _mapping(31000 + n)}
    elif ssh == "nossh":
        row["ports"] = {"8000/tcp": _mapping(31000 + n), "9100/tcp": _mapping(32000 + n)}
    else:
        row["ports"] = None
    if ssh == "none":
        row.update(ssh_host=None, ssh_port=None, public_ipaddr=None)
    if status != "running":
        row.update(ports=None, cur_state="stopped", next_state="stopped", intended_status="stopped")
    return row


def default_fleet() -> list[dict[str, Any]]:
    """30 running instances (mixed SSH shapes and labels) and 3 that are not running."""
    fleet = []
    for n in range(30):
        label: str | None = f"llm-{n:02d}"
        ssh = "direct" if n % 2 == 0 else "proxy"
        runtype = None
        if n == 3:
            label = None
        elif n in (5, 6):
            label = "dup-box"
        elif n == 8:
            label = "  spaced label/x \n"
        elif n == 9:
            ssh = "nossh"
        elif n == 11:
            runtype = "jupyter"
        fleet.append(make_instance(n, label, ssh=ssh, runtype=runtype,
                                   profile="4090" if n % 3 else "a5000"))
    fleet.append(make_instance(30, "old-exited", ssh="proxy", status="exited"))
    abandoned = make_instance(31, "abandoned", ssh="proxy", status="created")
    abandoned.update(_load(
        "show_instance_v0_abandoned_created-but-intended-stopped_go-test_UNATTRIBUTED.json"))
    abandoned["id"] = FIRST_ID + 31
    fleet.append(abandoned)
    fleet.append(make_instance(32, "provisioning", ssh="none", status=None))
    return fleet


def default_offers() -> list[dict[str, Any]]:
    """Three offers built from the recorded 4090 offer (id == ask_contract_id)."""
    base = _load("search_offers_cli_raw_one-offer_UNATTRIBUTED.json")[0]
    offers = []
    for i, (gpu, num, price) in enumerate(
            [("RTX 4090", 1, 0.2466759259259259), ("RTX 4090", 2, 0.49), ("RTX A5000", 1, 0.18)]):
        offer = copy.deepcopy(base)
        offer.update(id=base["id"] + i, ask_contract_id=base["id"] + i,
                     bundle_id=base["bundle_id"] + i, machine_id=base["machine_id"] + i,
                     gpu_name=gpu, num_gpus=num, dph_total=price)
        offers.append(offer)
    return offers


def _token(last_id: int) -> str:
    return base64.b64encode(json.dumps({"values": {"id": last_id}}).encode()).decode()


def _token_id(token: str) -> int | None:
    try:
        value = json.loads(base64.b64decode(token, validate=True))["values"]["id"]
    except (ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, int) else None


def _matches(row: dict[str, Any], filters: dict[str, Any]) -> bool:
    ops: dict[str, Callable[[Any, Any], bool]] = {
           "eq": lambda a, b: a == b, "neq": lambda a, b: a != b,
           "in": lambda a, b: a in b, "notin": lambda a, b: a not in b,
           "gt": lambda a, b: a is not None and a > b, "gte": lambda a, b: a is not None and a >= b,
           "lt": lambda a, b: a is not None and a < b, "lte": lambda a, b: a is not None and a <= b}
    for col, cond in filters.items():
        for op, want in cond.items():
            if not ops[op](row.get(col), want):
                return False
    return True


class VastState:
    """The double's account: instances, offers, knobs and the request log."""

    def __init__(self, api_key: str = "test-vast-key",
                 instances: list[dict[str, Any]] | None = None,
                 offers: list[dict[str, Any]] | None = None) -> None:
        self.lock = threading.Lock()
        self.api_key = api_key
        self.instances = {i["id"]: i for i in (default_fleet() if instances is None else instances)}
        self.offers = {o["id"]: o for o in (default_offers() if offers is None else offers)}
        self.fail_next: list[list[Any]] = []
        self.boot_polls = 0
        self.new_instance_ssh: dict[str, Any] | None = None
        self.gpu_taken: list[int] = []
        self.polls: dict[int, int] = {}
        self.requests: list[dict[str, Any]] = []

    def count(self, method: str, path: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r["method"] == method and r["path"] == path)

    def outbid(self, instance_id: int) -> bool:
        """Stop an interruptible instance as a higher bid does; False (nothing done) for an
        on-demand or unknown one. Call with the lock held."""
        row = self.instances.get(instance_id)
        if row is None or not row.get("is_bid"):
            return False
        self.polls.pop(instance_id, None)
        row.update(actual_status="stopped", cur_state="stopped", next_state="stopped",
                   intended_status="running", ports=None)
        return True

    def cost_per_hour(self, instance_id: int) -> float:
        """What the instance bills now, $/h: ``dph_total`` while its GPU is held (running,
        loading), its disk (``storage_total_cost``) once stopped; 0 when destroyed."""
        with self.lock:
            row = self.instances.get(instance_id)
            if row is None:
                return 0.0
            if row.get("cur_state") == "running":
                return float(row.get("dph_total") or 0)
            return float(row.get("storage_total_cost") or 0)


class Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    _cached_body: bytes | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing --------------------------------------------------------------------------
    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        raw = self._raw_body()
        return json.loads(raw) if raw.strip() else {}

    def _raw_body(self) -> bytes:
        """The request body, read once (the request log and the handler both look at it)."""
        cached = self._cached_body
        if cached is None:
            length = int(self.headers.get("Content-Length") or 0)
            cached = self.rfile.read(length) if length else b""
            self._cached_body = cached
        return cached

    def _logged_body(self, method: str) -> Any:
        if method not in ("PUT", "POST"):
            return None
        try:
            return self._body()
        except ValueError:
            return self._raw_body().decode("utf-8", "replace")

    def _dispatch(self, method: str) -> None:
        self._cached_body = None  # one handler serves every request of a connection
        state = self.server.state
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path.startswith("/__double__/"):
            self._control(method, url.path)
            return
        auth = self.headers.get("Authorization", "")
        given = auth[7:].strip() if auth.startswith("Bearer ") else query.get("api_key")
        ok = given == state.api_key
        body = self._logged_body(method)
        with state.lock:
            shown = {k: v for k, v in query.items() if k != "api_key"}
            state.requests.append({"method": method, "path": url.path, "query": shown,
                                   "key_ok": ok, "body": body})
            injected = state.fail_next.pop(0) if state.fail_next else None
        if injected:
            status, body, ctype = [*injected, "text/plain"][:3]
            self._send(int(status), body, ctype)
            return
        route = self._route(method, url.path)
        if route is None:
            self._send(404, {"success": False, "error": "not_found", "msg": "Not found"})
            return
        handler, arg, needs_key = route
        if needs_key and not ok:
            self._send(401, AUTH_ERROR)
            return
        handler(arg, query)

    def _route(self, method: str, path: str) -> tuple[Any, int, bool] | None:
        if method == "GET" and path == "/api/v1/instances/":
            return self._list, 0, True
        if method == "POST" and path == "/api/v0/bundles/":
            return self._offers, 0, False
        m = re.fullmatch(r"/api/v0/instances/(\d+)/", path)
        if m and method == "GET":
            return self._show, int(m.group(1)), True
        if m and method == "DELETE":
            return self._destroy, int(m.group(1)), True
        if m and method == "PUT":
            return self._manage, int(m.group(1)), True
        m = re.fullmatch(r"/api/v0/asks/(\d+)/", path)
        if m and method == "PUT":
            return self._create, int(m.group(1)), True
        return None

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- API -------------------------------------------------------------------------------
    def _list(self, _: int, query: dict[str, str]) -> None:
        state = self.server.state
        try:
            limit = int(query.get("limit", MAX_LIMIT))
            filters = json.loads(query.get("select_filters", "{}"))
        except ValueError:
            self._send(400, {"error": "invalid_request", "msg": "Error in query parameters"})
            return
        limit = 5 if limit <= 0 else min(limit, MAX_LIMIT)
        after = 0
        if "after_token" in query:
            token_id = _token_id(query["after_token"])
            if token_id is None:
                self._send(400, {"error": "invalid_token", "msg": "Invalid after_token"})
                return
            after = token_id
        with state.lock:
            rows = [copy.deepcopy(r) for _, r in sorted(state.instances.items())
                    if _matches(r, filters)]
        label_counts: dict[str, int] = {}
        for r in rows:
            label_counts[r.get("label") or ""] = label_counts.get(r.get("label") or "", 0) + 1
        rest = [r for r in rows if r["id"] > after]
        page = rest[:limit]
        more = len(rest) > limit
        self._send(200, {"success": True, "instances_found": len(page),
                         "total_instances": len(rows), "label_counts": label_counts,
                         "next_token": _token(page[-1]["id"]) if more else None,
                         "instances": page})

    def _show(self, instance_id: int, _: dict[str, str]) -> None:
        state = self.server.state
        with state.lock:
            row = copy.deepcopy(state.instances.get(instance_id))
            if row is not None and instance_id in state.polls:
                state.polls[instance_id] -= 1
                if state.polls[instance_id] < 0:
                    del state.polls[instance_id]
                    state.instances[instance_id] = _booted(state.instances[instance_id],
                                                           state.new_instance_ssh)
                    row = copy.deepcopy(state.instances[instance_id])
        self._send(200, {"instances": row})

    def _destroy(self, instance_id: int, _: dict[str, str]) -> None:
        state = self.server.state
        with state.lock:
            gone = state.instances.pop(instance_id, None) is None
        if gone:
            self._send(404, {"success": False, "error": "not_found", "msg": "Instance not found"})
        else:
            self._send(200, {"success": True})

    def _manage(self, instance_id: int, _: dict[str, str]) -> None:
        state = self.server.state
        try:
            request = self._body()
        except ValueError:
            request = None
        wanted = request.get("state") if isinstance(request, dict) else None
        label = request.get("label") if isinstance(request, dict) else None
        if (not isinstance(request, dict) or not request.keys() & {"state", "label"}
                or ("state" in request and wanted not in ("stopped", "running"))
                or ("label" in request and not isinstance(label, str))):
            self._send(400, {"success": False, "error": "invalid_args",
                             "msg": "state must be stopped or running, label a string"})
            return
        with state.lock:
            row = state.instances.get(instance_id)
            if row is None:
                self._send(404, {"success": False, "error": "not_found",
                                 "msg": "Instance not found"})
                return
            if "label" in request:
                row["label"] = label
            if wanted == "stopped":
                state.polls.pop(instance_id, None)
                row.update(actual_status="stopped", cur_state="stopped", next_state="stopped",
                           intended_status="stopped", ports=None)
            elif wanted == "running" and row.get("cur_state") != "running":
                row.update(intended_status="running")
                if instance_id in state.gpu_taken:
                    row.update(actual_status="stopped", cur_state="stopped",
                               next_state="stopped")
                elif state.boot_polls:
                    row.update(actual_status="loading", cur_state="running",
                               next_state="running")
                    state.polls[instance_id] = state.boot_polls
                else:
                    state.instances[instance_id] = _booted(row, state.new_instance_ssh)
        self._send(200, {"success": True})

    def _create(self, offer_id: int, _: dict[str, str]) -> None:
        state = self.server.state
        try:
            request = self._body()
        except ValueError:
            self._send(400, {"success": False, "error": "invalid_args", "msg": "Invalid json body",
                             "ask_id": offer_id})
            return
        with state.lock:
            offer = state.offers.get(offer_id)
            if offer is None or offer.get("rented"):
                self._send(404, {"success": False, "error": "invalid_args",
                                 "msg": f"error 404/3603: no_such_ask Instance type by id "
                                        f"{offer_id} is not available.", "ask_id": offer_id})
                return
            offer["rented"] = True
            n = max([*state.instances, FIRST_ID + 99]) - FIRST_ID + 1
            row = make_instance(n, request.get("label"), ssh="none", status="loading")
            row.update({k: offer[k] for k in _profiles()["4090"] if k in offer})
            if request.get("price") is not None:  # the documented bid: interruptible
                row.update(is_bid=True)
            row.update(image_uuid=request.get("image"), onstart=request.get("onstart"),
                       disk_space=request.get("disk", row.get("disk_space")),
                       ssh_host=f"ssh{n % 9 + 1}.vast.ai", ssh_port=20000 + 7 * n)
            state.instances[row["id"]] = row
            state.polls[row["id"]] = state.boot_polls
            if state.boot_polls == 0:
                del state.polls[row["id"]]
                state.instances[row["id"]] = _booted(row, state.new_instance_ssh)
            answer = dict(_load("create_instance_cli_output_docs_cli-hello-world.json"))
            answer["new_contract"] = row["id"]
        self._send(200, answer)

    def _offers(self, _: int, __: dict[str, str]) -> None:
        try:
            request = self._body()
        except ValueError:
            self._send(400, {"error": "invalid_request", "msg": "Invalid json body"})
            return
        control = {"limit", "type", "order", "allocated_storage", "disable_bundling"}
        filters = {k: v for k, v in request.items() if k not in control}
        bad = [k for k, v in filters.items() if not isinstance(v, dict)]
        if bad:
            msg = "; ".join(f"q.{k}: Input should be a valid dictionary" for k in bad)
            self._send(400, {"success": False, "error": "bad_request", "msg": msg})
            return
        with self.server.state.lock:
            offers = [copy.deepcopy(o) for o in self.server.state.offers.values()
                      if not o.get("rented")]
        try:
            offers = [o for o in offers if _matches(o, filters)]
        except (KeyError, TypeError):
            self._send(400, {"error": "invalid_request", "msg": "unsupported filter"})
            return
        offers.sort(key=lambda o: o.get("dph_total") or 0)
        self._send(200, {"offers": offers[: int(request.get("limit") or 64)]})

    # -- control ---------------------------------------------------------------------------
    def _control(self, method: str, path: str) -> None:
        state = self.server.state
        if method == "GET" and path == "/__double__/stats":
            with state.lock:
                self._send(200, {"requests": list(state.requests)})
        elif method == "POST" and path == "/__double__/reset":
            with state.lock:
                state.requests.clear()
            self._send(200, {"ok": True})
        elif method == "POST" and path == "/__double__/config":
            knobs = self._body()
            with state.lock:
                for name in ("api_key", "fail_next", "boot_polls", "new_instance_ssh",
                             "gpu_taken"):
                    if name in knobs:
                        setattr(state, name, knobs[name])
                for instance_id in knobs.get("outbid", []):
                    state.outbid(int(instance_id))
            self._send(200, {"ok": True})
        else:
            self._send(404, {"error": "unknown control endpoint"})


def _booted(row: dict[str, Any], ssh: dict[str, Any] | None = None) -> dict[str, Any]:
    n = row["id"] - FIRST_ID
    row = dict(row)
    row.update(actual_status="running", cur_state="running", next_state="running",
               intended_status="running", public_ipaddr=f"203.0.113.{n % 250 + 1}",
               ports={"22/tcp": _mapping(30000 + n % 1000)})
    if ssh:  # knob new_instance_ssh: same fields, an address the test can reach
        row.update(public_ipaddr=str(ssh["host"]), ports={"22/tcp": _mapping(int(ssh["port"]))})
    return row


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: VastState


class VastApiDouble:
    """Run the double in a thread: ``with VastApiDouble(port) as api: api.url ...``."""

    def __init__(self, port: int, state: VastState | None = None) -> None:
        self.state = state or VastState()
        self._server = _Server(("127.0.0.1", port), Handler)
        self._server.state = self.state
        self.url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> VastApiDouble:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description="TEST DOUBLE of the Vast.ai REST API")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", default="test-vast-key")
    parser.add_argument("--empty", action="store_true", help="start with no instances")
    parser.add_argument("--outbid", metavar="LABEL", action="append", default=[],
                        help="add an interruptible instance with this label, outbid (repeatable)")
    parser.add_argument("--new-instance-ssh", metavar="HOST:PORT",
                        help="the SSH endpoint a created or started instance boots with")
    args = parser.parse_args()
    state = VastState(api_key=args.api_key, instances=[] if args.empty else None)
    for n, label in enumerate(args.outbid, start=OUTBID_N):
        row = make_instance(n, label)
        row["is_bid"] = True
        state.instances[row["id"]] = row
        state.outbid(row["id"])
    if args.new_instance_ssh:
        host, _, port = args.new_instance_ssh.rpartition(":")
        state.new_instance_ssh = {"host": host, "port": int(port)}
    server = _Server(("127.0.0.1", args.port), Handler)
    server.state = state
    server.serve_forever()


if __name__ == "__main__":
    main()
