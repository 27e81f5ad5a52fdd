"""The Vast.ai API double keeps to the documented wire contract (tests/fixtures/vast-api)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.doubles.vastai_api_double import FIRST_ID, VastApiDouble
from tests.support import free_port

KEY = "test-vast-key"


@pytest.fixture
def api() -> Iterator[VastApiDouble]:
    with VastApiDouble(free_port()) as double:
        yield double


def call(api: VastApiDouble, method: str, path: str, body: Any = None, key: str | None = KEY,
         **query: Any) -> tuple[int, Any]:
    url = api.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback
    if key is not None:
        req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
            raw, status = resp.read(), resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def test_v1_paging_follows_next_token(api: VastApiDouble) -> None:
    status, first = call(api, "GET", "/api/v1/instances/", limit=25)
    assert status == 200
    assert first["success"] is True
    assert (first["instances_found"], first["total_instances"]) == (25, 33)
    assert first["label_counts"]["dup-box"] == 2
    assert first["label_counts"][""] == 1
    assert first["next_token"]
    _, second = call(api, "GET", "/api/v1/instances/", limit=25, after_token=first["next_token"])
    assert second["instances_found"] == 8
    assert second["next_token"] is None
    ids = [i["id"] for i in first["instances"] + second["instances"]]
    assert ids == sorted(ids)
    assert len(set(ids)) == 33
    _, capped = call(api, "GET", "/api/v1/instances/", limit=100)
    _, tiny = call(api, "GET", "/api/v1/instances/", limit=0)
    assert (capped["instances_found"], tiny["instances_found"]) == (25, 5)
    status, bad = call(api, "GET", "/api/v1/instances/", after_token="not-a-token")  # noqa: S106
    assert (status, bad["error"]) == (400, "invalid_token")
    _, running = call(api, "GET", "/api/v1/instances/",
                      select_filters=json.dumps({"actual_status": {"eq": "exited"}}))
    assert [i["label"] for i in running["instances"]] == ["old-exited"]


def test_instance_shapes(api: VastApiDouble) -> None:
    _, page = call(api, "GET", "/api/v1/instances/")
    by_id = {i["id"]: i for i in page["instances"]}
    direct, proxy = by_id[FIRST_ID], by_id[FIRST_ID + 1]
    assert direct["ports"]["22/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "30000"},
                                         {"HostIp": "::", "HostPort": "30000"}]
    assert proxy["ports"] is None
    assert proxy["ssh_host"]
    assert proxy["ssh_port"]
    assert by_id[FIRST_ID + 3]["label"] is None
    assert "22/tcp" not in by_id[FIRST_ID + 9]["ports"]


def test_wrong_key_gets_documented_401(api: VastApiDouble) -> None:
    endpoints = (("GET", "/api/v1/instances/"), ("DELETE", f"/api/v0/instances/{FIRST_ID}/"),
                 ("PUT", "/api/v0/asks/11684738/"))
    for method, path in endpoints:
        status, body = call(api, method, path, body={} if method == "PUT" else None, key="nope")
        assert (status, body) == (401, {"success": False, "error": "auth_error",
                                        "msg": "Invalid user key"})
    assert FIRST_ID in api.state.instances


def test_injected_429_is_plain_text_without_retry_after(api: VastApiDouble) -> None:
    api.state.fail_next = [[429, "API requests too frequent", "text/plain"]]
    req = urllib.request.Request(api.url + "/api/v1/instances/",  # noqa: S310 - loopback
                                 headers={"Authorization": f"Bearer {KEY}"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)  # noqa: S310 - loopback
    assert info.value.code == 429
    assert info.value.headers.get("Retry-After") is None
    assert info.value.read() == b"API requests too frequent"
    assert call(api, "GET", "/api/v1/instances/")[0] == 200


def test_offer_search_create_show_destroy(api: VastApiDouble) -> None:
    status, bad = call(api, "POST", "/api/v0/bundles/", body={"gpu_name": "RTX 4090"}, key=None)
    assert (status, bad["error"]) == (400, "bad_request")
    status, found = call(api, "POST", "/api/v0/bundles/", key=None,
                         body={"gpu_name": {"eq": "RTX 4090"}, "num_gpus": {"gte": 1}})
    assert status == 200
    offers = found["offers"]
    assert [o["gpu_name"] for o in offers] == ["RTX 4090", "RTX 4090"]
    offer = offers[0]
    assert offer["id"] == offer["ask_contract_id"]

    status, created = call(api, "PUT", f"/api/v0/asks/{offer['id']}/",
                           body={"client_id": "me", "image": "vastai/base-image", "disk": 40,
                                 "label": "vastllm-test"})
    assert status == 200
    assert created["success"] is True
    new_id = created["new_contract"]
    assert new_id != offer["id"]  # instance id is not the offer id
    status, again = call(api, "PUT", f"/api/v0/asks/{offer['id']}/", body={})
    assert (status, again["ask_id"]) == (404, offer["id"])

    _, shown = call(api, "GET", f"/api/v0/instances/{new_id}/")
    inst = shown["instances"]
    assert inst["actual_status"] == "running"
    assert inst["label"] == "vastllm-test"
    assert inst["ports"]["22/tcp"][0]["HostPort"].isdigit()

    assert call(api, "DELETE", f"/api/v0/instances/{new_id}/") == (200, {"success": True})
    status, gone = call(api, "DELETE", f"/api/v0/instances/{new_id}/")
    assert (status, gone["error"]) == (404, "not_found")
    assert call(api, "GET", f"/api/v0/instances/{new_id}/") == (200, {"instances": None})


def test_new_instance_loads_before_running(api: VastApiDouble) -> None:
    api.state.boot_polls = 2
    _, created = call(api, "PUT", "/api/v0/asks/11684739/", body={"label": "slow"})
    states = [call(api, "GET", f"/api/v0/instances/{created['new_contract']}/")[1]["instances"]
              for _ in range(4)]
    assert [s["actual_status"] for s in states] == ["loading", "loading", "running", "running"]
    assert states[0]["ports"] is None
    assert states[2]["ports"]["22/tcp"]
