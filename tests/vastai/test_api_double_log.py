"""The Vast.ai API double's additions for the provisioning tests: request bodies in the log (one
per request, also on a kept-alive connection) and the new_instance_ssh knob."""

from __future__ import annotations

import http.client
import json

from tests.doubles.vastai_api_double import FIRST_ID, VastApiDouble
from tests.support import free_port

KEY = "test-vast-key"


def test_bodies_are_logged_per_request_on_one_connection() -> None:
    with VastApiDouble(free_port()) as api:
        port = int(api.url.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
        answers = []
        for body in ({"num_gpus": {"eq": 2}}, {"gpu_name": {"eq": "RTX A5000"}}):
            conn.request("POST", "/api/v0/bundles/", json.dumps(body), headers)
            answers.append(json.loads(conn.getresponse().read()))
        conn.request("PUT", "/api/v0/asks/11684738/", json.dumps({"label": "x", "image": "i"}),
                     headers)
        created = json.loads(conn.getresponse().read())
        conn.request("GET", f"/api/v0/instances/{created['new_contract']}/", headers=headers)
        shown = json.loads(conn.getresponse().read())["instances"]
        conn.close()
    assert [[o["num_gpus"] for o in a["offers"]] for a in answers] == [[2], [1]]
    assert [r["body"] for r in api.state.requests] == [
        {"num_gpus": {"eq": 2}}, {"gpu_name": {"eq": "RTX A5000"}},
        {"label": "x", "image": "i"}, None]
    assert shown["public_ipaddr"].startswith("203.0.113.")


def test_new_instance_ssh_knob_sets_the_direct_endpoint() -> None:
    with VastApiDouble(free_port()) as api:
        port = int(api.url.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/__double__/config",
                     json.dumps({"new_instance_ssh": {"host": "127.0.0.1", "port": 2222}}))
        assert json.loads(conn.getresponse().read()) == {"ok": True}
        headers = {"Authorization": f"Bearer {KEY}"}
        conn.request("PUT", "/api/v0/asks/11684738/", json.dumps({"label": "x"}), headers)
        new_id = json.loads(conn.getresponse().read())["new_contract"]
        conn.request("GET", f"/api/v0/instances/{new_id}/", headers=headers)
        shown = json.loads(conn.getresponse().read())["instances"]
        conn.close()
    assert new_id == FIRST_ID + 100
    assert shown["public_ipaddr"] == "127.0.0.1"
    assert shown["ports"]["22/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "2222"},
                                        {"HostIp": "::", "HostPort": "2222"}]
