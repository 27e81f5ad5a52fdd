"""Start, stop, outbid and prices: the shared client (plugins/module_utils/vastai_api.py) against
the Vast.ai API double, within the documented manage-instance call
(``PUT /api/v0/instances/{id}/`` with ``{"state": "running" | "stopped"}``)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from tests.doubles.vastai_api_double import FIRST_ID, VastApiDouble

KEY = "test-vast-key"
RUNNING = FIRST_ID + 2  # a running on-demand instance of the default fleet


def _puts(double: VastApiDouble) -> list[dict[str, Any]]:
    with double.state.lock:
        return [dict(r) for r in double.state.requests if r["method"] == "PUT"]


def _rent_bid(client: Any, double: VastApiDouble) -> int:
    offer = next(iter(double.state.offers))
    answer = client.call("PUT", f"/api/v0/asks/{offer}/",
                         {"image": "img", "label": "bid-box", "disk": 40, "price": 0.21})
    return int(answer["new_contract"])


def test_stop_keeps_the_disk_and_its_bill(api: ModuleType, double: VastApiDouble) -> None:
    client = api.Client(double.url, KEY)
    before = client.instance(RUNNING)
    assert api.run_state(before) == "running"
    assert api.hourly_cost(before) == pytest.approx(before["dph_total"])
    assert double.state.cost_per_hour(RUNNING) == pytest.approx(before["dph_total"])

    client.stop(RUNNING)

    after = client.instance(RUNNING)
    assert api.run_state(after) == "stopped"
    assert (after["actual_status"], after["cur_state"], after["intended_status"]) == (
        "stopped", "stopped", "stopped")
    assert after["ports"] is None
    assert 0 < api.hourly_cost(after) == pytest.approx(after["storage_total_cost"])
    assert api.hourly_cost(after) < before["dph_total"]
    assert double.state.cost_per_hour(RUNNING) == pytest.approx(after["storage_total_cost"])
    assert [(p["path"], p["body"], p["key_ok"]) for p in _puts(double)] == [
        (f"/api/v0/instances/{RUNNING}/", {"state": "stopped"}, True)]


def test_start_boots_it_again(api: ModuleType, double: VastApiDouble) -> None:
    client = api.Client(double.url, KEY)
    client.stop(RUNNING)
    double.state.boot_polls = 1
    client.start(RUNNING)
    assert api.run_state(client.instance(RUNNING)) == "starting"
    again = client.instance(RUNNING)
    assert api.run_state(again) == "running"
    assert api.ssh_endpoint(again).mode == "direct"
    assert _puts(double)[-1]["body"] == {"state": "running"}


def test_start_stays_stopped_when_the_gpu_was_rented(
    api: ModuleType, double: VastApiDouble
) -> None:
    client = api.Client(double.url, KEY)
    client.stop(RUNNING)
    double.state.gpu_taken = [RUNNING]
    client.start(RUNNING)  # asked: a success answer
    row = client.instance(RUNNING)
    assert api.run_state(row) == "scheduling"
    assert (row["actual_status"], row["intended_status"]) == ("stopped", "running")
    assert double.state.cost_per_hour(RUNNING) == pytest.approx(row["storage_total_cost"])


def test_an_interruptible_instance_is_outbid(api: ModuleType, double: VastApiDouble) -> None:
    client = api.Client(double.url, KEY)
    bid = _rent_bid(client, double)
    assert client.instance(bid)["is_bid"] is True
    assert api.run_state(client.instance(bid)) == "running"

    client.call("POST", "/__double__/config", {"outbid": [bid, RUNNING]})

    assert api.run_state(client.instance(bid)) == "outbid"
    assert api.run_state(client.instance(RUNNING)) == "running"  # on-demand: not outbid
    client.start(bid)  # its GPU free again: it runs
    assert api.run_state(client.instance(bid)) == "running"


def test_destroy_is_idempotent_and_gone_is_none(api: ModuleType, double: VastApiDouble) -> None:
    client = api.Client(double.url, KEY)
    assert client.destroy(RUNNING) is True
    assert client.destroy(RUNNING) is False
    assert client.instance(RUNNING) is None
    assert api.run_state(None) == "gone"
    assert double.state.cost_per_hour(RUNNING) == 0


def test_manage_answers_within_the_documented_shapes(
    api: ModuleType, double: VastApiDouble
) -> None:
    client = api.Client(double.url, KEY)
    with pytest.raises(ValueError, match="running, stopped"):
        client.set_state(RUNNING, "frozen")
    for body in ({}, {"state": "frozen"}, {"label": 3}):
        with pytest.raises(api.HttpStatusError) as caught:
            client.call("PUT", f"/api/v0/instances/{RUNNING}/", body)
        assert (caught.value.status, caught.value.body["error"]) == (400, "invalid_args")
    with pytest.raises(api.HttpStatusError) as missing:
        client.stop(FIRST_ID + 999)
    assert missing.value.status == 404
    assert client.call("PUT", f"/api/v0/instances/{RUNNING}/", {"label": "renamed"}) == {
        "success": True}
    assert client.instance(RUNNING)["label"] == "renamed"
    with pytest.raises(api.KeyRejected):
        api.Client(double.url, "wrong").stop(RUNNING)
    assert api.run_state(client.instance(RUNNING)) == "running"
