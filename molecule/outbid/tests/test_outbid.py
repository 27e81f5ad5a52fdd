"""An outbid interruptible instance comes back on a new one: what the converge (playbooks/wake.yml)
asked of the Vast.ai API double, the services site.yml put on the new instance, and its answer.

The double's request log covers both converge runs (Molecule's idempotence ran the wake again).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

from scenario_helpers import anthropic_reply, states

testinfra_hosts = ["ansible://vastllm-outbid"]

API = "http://127.0.0.1:45904"
LABEL = "outbid-llm"
OLD_ID = 40_000_061  # the double's first --outbid instance (FIRST_ID + OUTBID_N)
NEW_ID = 40_000_101  # the first instance the double creates (FIRST_ID + 100)
BID = 0.25
OURS = ("vastllm-ollama", "vastllm-proxy", "vastllm-redis")


def _get(path: str) -> dict:
    """GET from the API double on loopback, with its key."""
    request = urllib.request.Request(f"{API}{path}",  # noqa: S310 - the double, loopback only
                                     headers={"Authorization": "Bearer test-vast-key"})
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback only
        return json.load(answer)


def _requests(method: str, prefix: str) -> list[dict]:
    log = _get("/__double__/stats")["requests"]
    return [r for r in log if r["method"] == method and r["path"].startswith(prefix)]


def _instance(instance_id: int) -> dict | None:
    return _get(f"/api/v0/instances/{instance_id}/")["instances"]


def test_the_label_moved_to_one_new_instance_with_the_same_bid():
    creates = _requests("PUT", "/api/v0/asks/")
    assert len(creates) == 1, creates  # the second wake rented nothing
    assert creates[0]["body"]["label"] == LABEL
    assert creates[0]["body"]["price"] == BID
    assert [r["path"] for r in _requests("DELETE", "/api/v0/instances/")] == [
        f"/api/v0/instances/{OLD_ID}/"
    ]
    assert _instance(OLD_ID) is None
    new = _instance(NEW_ID)
    assert (new["label"], new["actual_status"], new["is_bid"]) == (LABEL, "running", True)


def test_site_yml_put_every_service_on_the_new_instance(host):
    now = states(host)
    assert all(now.get(name) == "RUNNING" for name in OURS), now
    assert host.file("/usr/local/bin/nvidia-smi").exists  # the GPU host it was rented as


def test_the_new_instance_answers_the_anthropic_sdk_and_the_time_is_reported(host, sdk):
    answer, took = anthropic_reply(host, sdk, "hello after the outbid")
    assert "hello after the outbid" in answer  # the Ollama double's echo
    times = json.loads(
        (Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "outbid-times.json").read_text()
    )
    span = times["ended"] - times["started"]
    assert 0 < span < time.time() - times["started"]
    print(f"outbid -> new instance rented, provisioned by site.yml and healthy: {span:.1f} s "
          f"(the wake's first run); first answer through its proxy {took * 1000:.0f} ms")
