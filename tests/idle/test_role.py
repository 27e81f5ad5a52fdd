"""roles/idle_stop on a test host container: the watcher runs as a supervised service, reads
the proxy's /metrics and calls the Vast.ai API double (both on this machine, reached through
SSH reverse forwards), stops the instance exactly once, and the role is idempotent, works in
check mode, keeps the fallback key in a 0600 file out of the output, and removes the watcher
when switched off."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.containers import PIP_VARS, VENV_PACKAGES, Host, Run, started_host
from tests.doubles.vastai_api_double import VastApiDouble
from tests.idle.test_watcher import INSTANCE, KEY, FakeProxy, calls, wait_for
from tests.support import REPO, free_port

PLAYBOOK = REPO / "tests" / "idle" / "idle_stop.yml"
SERVICE = "vastllm-idle-stop"


@pytest.fixture(scope="module")
def proxy() -> Iterator[FakeProxy]:
    fake = FakeProxy()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def api() -> Iterator[VastApiDouble]:
    with VastApiDouble(free_port()) as double:
        yield double


@pytest.fixture(scope="module")
def host(
    proxy: FakeProxy, api: VastApiDouble, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Host]:
    ports = [int(api.url.rsplit(":", 1)[1]), int(proxy.url.split(":")[2].split("/")[0])]
    forwards = " ".join(f"-R {p}:127.0.0.1:{p}" for p in ports)
    ssh = f"{forwards} -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no"
    with started_host("vast-like", tmp_path_factory.mktemp("idle-stop-role"), VENV_PACKAGES,
                      {"ansible_ssh_extra_args": ssh}) as h:
        yield h


def _run(host: Host, api: VastApiDouble, proxy: FakeProxy, *args: str, **extra: Any) -> Run:
    settings = {
        "vastllm_idle_stop_minutes": 0.02,
        "idle_stop_poll_seconds": 0.1,
        "idle_stop_metrics_url": proxy.url,
        "idle_stop_api_url": api.url,
        "idle_stop_instance_id": str(INSTANCE),
        "idle_stop_api_key": KEY,  # the container has no CONTAINER_API_KEY of its own
        **PIP_VARS,
        **extra,
    }
    extra_file = host.tmp / "idle.json"  # the key stays out of argv
    extra_file.write_text(json.dumps(settings))
    run = host.playbook(PLAYBOOK, "-e", f"@{extra_file}", *args)
    assert run.rc == 0, run.output
    assert KEY not in run.output
    return run


def test_the_role_installs_a_watcher_that_stops_the_idle_instance_once(
    host: Host, api: VastApiDouble, proxy: FakeProxy
) -> None:
    check = _run(host, api, proxy, "--check")
    assert "Install and start the idle watcher" in check.output
    first = _run(host, api, proxy)
    assert first.changed > 0
    mode = host.sh("stat -c %a /opt/vastllm/idle/api_key").stdout.strip()
    assert mode == "600"
    wait_for(lambda: calls(api), timeout=60)
    time.sleep(2)
    assert [(c["body"], c["key_ok"]) for c in calls(api)] == [({"state": "stopped"}, True)]
    log = host.sh(f"cat /var/log/vastllm/{SERVICE}.log").stdout
    assert "asked Vast.ai to stop this instance" in log
    assert KEY not in log

    second = _run(host, api, proxy)
    assert second.changed == 0, second.changed_tasks()
    assert len(calls(api)) == 1

    off = _run(host, api, proxy, vastllm_idle_stop_minutes=0)
    assert off.changed > 0
    assert host.sh("pgrep -f 'python -m vastllm[.]idle' || true").stdout.strip() == ""


def test_the_role_records_the_price_and_the_budget_stops_the_instance_once(
    host: Host, api: VastApiDouble, proxy: FakeProxy
) -> None:
    other = INSTANCE + 1  # the first test stopped INSTANCE
    path = f"/api/v0/instances/{other}/"
    price = float(api.state.instances[other]["dph_total"])  # the double's recorded price
    budget = round(price * 3 / 3600, 8)  # about 3 s up
    settings = {
        "vastllm_idle_stop_minutes": 0,
        "vastllm_max_spend_usd": budget,
        "idle_stop_price_per_hour": price,
        "idle_stop_instance_id": str(other),
    }
    no_price = {**settings, "idle_stop_price_per_hour": ""}
    missing = host.playbook(PLAYBOOK, "-e", json.dumps(no_price))
    assert missing.rc != 0
    assert "vastllm_max_spend_usd needs the instance's price" in missing.output

    check = _run(host, api, proxy, "--check", **settings)
    assert "Record the price the budget counts" in check.output
    _run(host, api, proxy, **settings)
    recorded = json.loads(host.sh("cat /etc/vastllm/price.json").stdout)
    assert recorded == {"dph_total": price}
    wait_for(lambda: [c for c in calls(api) if c["path"] == path], timeout=60)
    time.sleep(2)
    assert [c["body"] for c in calls(api) if c["path"] == path] == [{"state": "stopped"}]
    log = host.sh(f"cat /var/log/vastllm/{SERVICE}.log").stdout
    assert log.count("the instance stops at 100 %") == 1
    assert "budget: asked Vast.ai to stop this instance" in log
    spent = json.loads(host.sh("cat /opt/vastllm/idle/spend.json").stdout)
    assert spent["instance_id"] == other
    assert spent["spent_usd"] >= budget

    second = _run(host, api, proxy, **settings)
    assert second.changed == 0, second.changed_tasks()
    off = _run(host, api, proxy, **{**settings, "vastllm_max_spend_usd": 0})
    assert off.changed > 0
    assert host.sh("pgrep -f 'python -m vastllm[.]idle' || true").stdout.strip() == ""
