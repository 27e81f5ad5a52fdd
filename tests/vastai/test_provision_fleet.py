"""playbooks/provision.yml with vastai_count against the Vast.ai API double: one instance per
label (LABEL, LABEL-2 ...), all rented before any is waited for and then waited for together,
reused by label on the next run (a higher count rents only the new labels), nothing rented in
check mode or when too few offers match, and an instance that does not come up failing under its
own label while the others join gpu_hosts."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator

import pytest

from tests.doubles.vastai_api_double import make_instance
from tests.support import REPO, free_port
from tests.vastai.playbook_support import PROVISION_QUICK, Controller, real_sshd
from tests.vastai.test_provision import INSPECT_PLAYBOOK, NEW_ID, RENTED_OFFER, run_module

PROVISION = REPO / "playbooks" / "provision.yml"
FLEET = "fleet"
A5000_OFFER = RENTED_OFFER + 2  # the double's cheapest 1-GPU offer (0.18 $/h)
EXTRA_OFFER = RENTED_OFFER + 10  # added by add_offer: a third 1-GPU offer, 0.30 $/h
QUICK = PROVISION_QUICK


@pytest.fixture
def sshd_port(vast: Controller) -> Iterator[int]:
    """A real sshd that every new instance of the double boots with as its SSH endpoint."""
    with real_sshd() as port:
        vast.api.state.new_instance_ssh = {"host": "127.0.0.1", "port": port}
        yield port


def add_offer(vast: Controller) -> None:
    """A third offer of 1 x RTX 4090 (the double has two 1-GPU offers)."""
    offers = vast.api.state.offers
    extra = copy.deepcopy(offers[RENTED_OFFER])
    extra.update(id=EXTRA_OFFER, ask_contract_id=EXTRA_OFFER, machine_id=extra["machine_id"] + 10,
                 dph_total=0.30, rented=False)
    offers[EXTRA_OFFER] = extra


def add_running(vast: Controller, label: str, ssh_port: int) -> int:
    """A running instance labelled label whose direct SSH endpoint is 127.0.0.1:ssh_port."""
    row = make_instance(40, label)
    row.update(public_ipaddr="127.0.0.1",
               ports={"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(ssh_port)}]})
    vast.api.state.instances[row["id"]] = row
    return int(row["id"])


def rents(vast: Controller) -> list[tuple[str, int]]:
    """(label, offer) of each PUT /api/v0/asks/{offer}/, in order."""
    return [(r["body"]["label"], int(r["path"].split("/")[-2])) for r in vast.requests("PUT")]


def test_a_count_of_three_rents_three_labels_and_a_second_run_none(
        vast: Controller, sshd_port: int) -> None:
    vast.api.state.boot_polls = 2  # each new instance is seen loading twice, then running
    add_offer(vast)
    inspect = vast.tmp / "inspect.yml"
    inspect.write_text(INSPECT_PLAYBOOK)
    dump = vast.tmp / "gpu_hosts.json"

    first = vast.playbook(inspect, {"vastai_label": FLEET, "vastai_count": 3,
                                    "dump_path": str(dump), **QUICK})
    assert first.rc == 0, first.output
    # one search, then the cheapest offers, one per label
    assert len(vast.requests("POST", "/api/v0/bundles/")) == 1
    assert rents(vast) == [(FLEET, A5000_OFFER), ("fleet-2", RENTED_OFFER),
                           ("fleet-3", EXTRA_OFFER)]
    ids = [NEW_ID, NEW_ID + 1, NEW_ID + 2]
    # all rented before the first look, then one look at all three per poll
    api = vast.requests(prefix="/api/")
    last_put = max(n for n, r in enumerate(api) if r["method"] == "PUT")
    looks = [(n, r["path"]) for n, r in enumerate(api)
             if r["path"].startswith("/api/v0/instances/")]
    assert looks
    assert looks[0][0] > last_put
    assert [path for _, path in looks] == [f"/api/v0/instances/{i}/" for i in ids] * 3
    assert json.loads(dump.read_text()) == {
        label: {"ansible_host": "127.0.0.1", "ansible_port": sshd_port, "ansible_user": "root",
                "vast_id": i, "vast_label": label, "vast_ssh_mode": "direct"}
        for label, i in zip([FLEET, "fleet-2", "fleet-3"], ids, strict=True)}
    assert first.recap()["changed"] == 2  # the rent and the dump file

    # provision.yml again: each label's instance is reused, nothing is searched or rented
    vast.api.state.requests.clear()
    again = vast.playbook(PROVISION, {"vastai_label": FLEET, "vastai_count": 3, **QUICK})
    assert again.rc == 0, again.output
    assert again.recap()["changed"] == 0
    for label, i in zip([FLEET, "fleet-2", "fleet-3"], ids, strict=True):
        assert f"Instance {i} labelled {label} already exists (running" in again.stdout
        assert f"{label} (instance {i}): ssh -p {sshd_port} root@127.0.0.1" in again.stdout
    assert vast.requests("PUT") == []
    assert vast.requests("POST", "/api/v0/bundles/") == []


def test_raising_the_count_rents_only_the_new_label(vast: Controller, sshd_port: int) -> None:
    two = vast.playbook(PROVISION, {"vastai_label": FLEET, "vastai_count": 2, **QUICK})
    assert two.rc == 0, two.output
    assert rents(vast) == [(FLEET, A5000_OFFER), ("fleet-2", RENTED_OFFER)]

    vast.api.state.requests.clear()
    add_offer(vast)
    three = vast.playbook(PROVISION, {"vastai_label": FLEET, "vastai_count": 3, **QUICK})
    assert three.rc == 0, three.output
    assert rents(vast) == [("fleet-3", EXTRA_OFFER)]
    assert three.recap()["changed"] == 1
    assert f'"fleet: reuse instance {NEW_ID} (running, RTX A5000, 0.18 $/h)"' in three.stdout
    assert (f'"fleet-3: rented offer {EXTRA_OFFER} as instance {NEW_ID + 2} '
            '(1 x RTX 4090, 0.3 $/h)"') in three.stdout
    # the count 1 of before --count: the bare label alone, which the fleet reuses
    vast.api.state.requests.clear()
    one = vast.playbook(PROVISION, {"vastai_label": FLEET, **QUICK})
    assert one.rc == 0, one.output
    assert f"Instance {NEW_ID} labelled {FLEET} already exists" in one.stdout
    assert "fleet-2" not in one.stdout
    assert vast.requests("PUT") == []


def test_check_mode_shows_the_fleet_and_rents_nothing(vast: Controller, sshd_port: int) -> None:
    reused = add_running(vast, FLEET, sshd_port)
    add_offer(vast)
    run = vast.playbook(PROVISION, {"vastai_label": FLEET, "vastai_count": 3, **QUICK},
                        args=["--check"])
    assert run.rc == 0, run.output
    assert f"Would rent offer {A5000_OFFER} (1 x RTX A5000" in run.stdout
    assert "labelled fleet-2" in run.stdout
    assert "labelled fleet-3" in run.stdout
    assert f'"fleet: reuse instance {reused} (running, RTX' in run.stdout
    assert f'"fleet-2: would rent offer {A5000_OFFER} (1 x RTX A5000, 0.18 $/h)"' in run.stdout
    assert f'"fleet-3: would rent offer {RENTED_OFFER} (1 x RTX 4090, 0.247 $/h)"' in run.stdout
    assert vast.requests("PUT") == []
    assert len(vast.requests("POST", "/api/v0/bundles/")) == 1


def test_too_few_offers_rent_nothing(vast: Controller) -> None:
    run = vast.playbook(PROVISION, {"vastai_label": FLEET, "vastai_count": 3, **QUICK})
    assert run.rc != 0
    text = " ".join(run.stdout.split())
    assert ("Only 2 Vast.ai offers match gpu_name = any, num_gpus = 1, gpu_ram >= 24000 MB, "
            "disk_space >= 80 GB, dph_total <= 1.0 $/h, rentable, not rented, on-demand for the "
            "3 instances to rent (fleet, fleet-2, fleet-3); nothing was rented.") in text
    assert "a lower vastai_count (now 3)" in text
    assert vast.requests("PUT") == []


@pytest.mark.parametrize(("label", "count", "message"), [
    (FLEET, 0, "vastai_count is 0: it is the number of instances, 1 or more."),
    ("fleet-2", 2, "vastai_label fleet-2 must end with a letter or digit and not with -<number>"),
    ("fleet_", 3, "the labels are fleet_, fleet_-2 ... fleet_-3: vastai_label fleet_ must end"),
])
def test_a_bad_count_or_prefix_stops_before_any_request(
        vast: Controller, label: str, count: int, message: str) -> None:
    run = vast.playbook(PROVISION, {"vastai_label": label, "vastai_count": count, **QUICK})
    assert run.rc != 0
    assert message in " ".join(run.stdout.split())
    assert vast.requests(prefix="/api/") == []


def test_an_instance_that_does_not_come_up_fails_alone(vast: Controller, sshd_port: int) -> None:
    reused = add_running(vast, FLEET, sshd_port)
    vast.api.state.boot_polls = 1000  # fleet-2 never gets past loading
    run = vast.playbook(PROVISION, {"vastai_label": FLEET, "vastai_count": 2,
                                    "vastai_boot_timeout": 2, "vastai_poll_delay": 1,
                                    "ansible_ssh_retries": 0})
    assert run.rc != 0
    text = " ".join(run.stdout.split())
    assert f"Instance {NEW_ID} labelled fleet-2 did not run within 2 s" in text
    # fleet joined gpu_hosts and site.yml went on with it (nobody may log in to this sshd)
    assert f"{FLEET} (instance {reused}): ssh -p {sshd_port} root@127.0.0.1" in run.stdout
    assert run.recap("fleet-2")["failed"] == 1
    assert run.recap(FLEET)["unreachable"] == 1
    assert run.recap()["failed"] == 0

    # the role alone stops at its end, naming both
    inspect = vast.tmp / "inspect.yml"
    inspect.write_text(INSPECT_PLAYBOOK)
    alone = vast.playbook(inspect, {"vastai_label": FLEET, "vastai_count": 2,
                                    "vastai_boot_timeout": 2, "dump_path": str(vast.tmp / "d"),
                                    **QUICK})
    assert alone.rc != 0
    text = " ".join(alone.stdout.split())
    assert f"Instance {NEW_ID} labelled fleet-2 did not run within 2 s" in text
    assert "In gpu_hosts: fleet." in text
    assert alone.recap()["failed"] == 1
    assert not (vast.tmp / "d").exists()


def test_an_instance_without_ssh_fails_under_its_label(vast: Controller) -> None:
    closed = free_port()
    add_running(vast, FLEET, closed)
    run = vast.playbook(PROVISION, {"vastai_label": FLEET, "vastai_ssh_timeout": 1, **QUICK})
    assert run.rc != 0
    assert (f"labelled {FLEET} runs but no SSH server answered on 127.0.0.1:{closed} (direct) "
            "within 1 s") in " ".join(run.stdout.split())
    assert run.recap(FLEET)["failed"] == 1


def test_offers_taken_since_the_search_are_passed_over(vast: Controller) -> None:
    """The module rents one instance per label from the offers in order; an offer that was
    taken is passed over, and running out names what was rented before."""
    vast.api.state.offers[A5000_OFFER]["rented"] = True  # taken since the search
    run = run_module(vast, {"action": "create", "offer_ids": [A5000_OFFER, RENTED_OFFER],
                            "labels": ["a", "b"], "create": {"image": "img"}})
    assert run.rc != 0
    text = " ".join(run.stdout.split())
    assert (f"No offer left to rent b: 2 offers matched and 1 of them were taken since the search "
            f"([{A5000_OFFER}]). Rented before that: a (instance {NEW_ID}).") in text
    assert rents(vast) == [("a", A5000_OFFER), ("a", RENTED_OFFER)]
    assert '"created": [' in run.stdout
