"""playbooks/wake.yml against the Vast.ai API double: a stopped instance gets one start call and is
waited for (GPU, running, a real sshd on its endpoint); a second wake starts nothing; an instance
whose GPU is gone (the double's gpu_taken) moves: the next matching offer is rented under its
label and the old instance destroyed once the new one answers on SSH. The handover (recover.yml,
site.yml) is off: there is no host to configure behind the sshd."""

from __future__ import annotations

import pytest

from tests.doubles.vastai_api_double import FIRST_ID, make_instance
from tests.support import REPO
from tests.vastai.playbook_support import KEY, Controller, real_sshd

WAKE = REPO / "playbooks" / "wake.yml"
LABEL = "sleepy"
SLEEPY = FIRST_ID + 40
NEW_ID = FIRST_ID + 100  # first id the double gives a created instance
CHEAPEST = 11684740  # the double's 1 x RTX A5000 offer at 0.18 $/h
RTX_4090 = 11684738  # the double's 1 x RTX 4090 offer at 0.2467 $/h
QUICK = {
    "vastai_poll_delay": 1,
    "vastai_wake_gpu_timeout": 2,
    "vastllm_wake_handover": False,
    "vastai_wake_labels": [LABEL],
}


@pytest.fixture(autouse=True)
def sleepy(vast: Controller) -> None:
    """The account has one stopped instance labelled LABEL."""
    with vast.api.state.lock:
        vast.api.state.instances[SLEEPY] = make_instance(40, LABEL, status="stopped")


def test_wakes_a_stopped_instance_once(vast: Controller) -> None:
    with real_sshd() as ssh_port:
        vast.api.state.boot_polls = 1  # one look sees "loading"
        vast.api.state.new_instance_ssh = {"host": "127.0.0.1", "port": ssh_port}

        first = vast.playbook(WAKE, QUICK)
        assert first.rc == 0, first.output
        assert [r["path"] for r in vast.starts()] == [f"/api/v0/instances/{SLEEPY}/"]
        assert first.recap()["changed"] == 1  # the start
        assert f"{LABEL}: started instance {SLEEPY}, up on 127.0.0.1:{ssh_port}" in first.stdout
        assert f"{LABEL} (instance {SLEEPY}): ssh -p {ssh_port} root@127.0.0.1" in first.stdout
        assert vast.requests("DELETE") == []
        assert vast.requests("PUT", "/api/v0/asks/") == []
        assert KEY not in first.output

        vast.api.state.requests.clear()
        second = vast.playbook(WAKE, QUICK)
        assert second.rc == 0, second.output
        assert vast.starts() == []
        assert second.recap()["changed"] == 0
        assert f"{LABEL}: instance {SLEEPY} was already running" in second.stdout


def test_a_gone_gpu_moves_the_label_to_the_next_offer(vast: Controller) -> None:
    with real_sshd() as ssh_port:
        vast.api.state.new_instance_ssh = {"host": "127.0.0.1", "port": ssh_port}
        vast.api.state.gpu_taken = [SLEEPY]

        run = vast.playbook(WAKE, QUICK)
        assert run.rc == 0, run.output
        assert len(vast.starts()) == 1
        [create] = vast.requests("PUT", "/api/v0/asks/")
        assert create["path"] == f"/api/v0/asks/{CHEAPEST}/"
        assert create["body"]["label"] == LABEL
        assert "price" not in create["body"]  # on-demand, like the instance it replaces
        # the old instance goes only after the new one answered on SSH
        assert [r["path"] for r in vast.requests("DELETE")] == [f"/api/v0/instances/{SLEEPY}/"]
        with vast.api.state.lock:
            assert SLEEPY not in vast.api.state.instances
            assert vast.api.state.instances[NEW_ID]["label"] == LABEL
        assert (
            f"{LABEL}: moved - the GPU of instance {SLEEPY} was taken (scheduling); "
            f"rented instance {NEW_ID} and destroyed instance {SLEEPY}"
        ) in run.stdout


def test_a_gone_gpu_without_moving_stops_with_a_message(vast: Controller) -> None:
    vast.api.state.gpu_taken = [SLEEPY]
    run = vast.playbook(WAKE, {**QUICK, "vastai_wake_move": False})
    assert run.rc != 0
    assert f"Instance {SLEEPY} labelled {LABEL} did not get its GPU back within 2 s" in run.stdout
    assert vast.requests("PUT", "/api/v0/asks/") == []
    assert vast.requests("DELETE") == []


def test_a_label_without_an_instance_is_named(vast: Controller) -> None:
    run = vast.playbook(WAKE, {**QUICK, "vastai_wake_labels": ["nobody-here"]})
    assert run.rc != 0
    assert "No Vast.ai instance is labelled nobody-here: nothing to wake." in run.stdout
    assert vast.starts() == []


@pytest.mark.parametrize("machine_offered", [True, False])
def test_an_outbid_instance_is_rented_again_with_its_bid(
    vast: Controller, machine_offered: bool
) -> None:
    """Outbid: rent again, on the same machine when it is offered, else the next matching offer."""
    spot_id = FIRST_ID + 41
    with vast.api.state.lock:
        same = vast.api.state.offers[RTX_4090]
        same["rented"] = not machine_offered
        spot = make_instance(41, "spot")
        spot.update(is_bid=True, machine_id=same["machine_id"])
        vast.api.state.instances[spot_id] = spot
        assert vast.api.state.outbid(spot_id)
    with real_sshd() as ssh_port:
        vast.api.state.new_instance_ssh = {"host": "127.0.0.1", "port": ssh_port}
        run = vast.playbook(
            WAKE,
            {
                **QUICK,
                "vastai_wake_labels": ["spot"],
                "vastai_interruptible": True,
                "vastai_bid_dph": 0.25,
            },
        )
        assert run.rc == 0, run.output
        assert vast.starts() == []  # an outbid instance already intends to run
        [create] = vast.requests("PUT", "/api/v0/asks/")
        assert create["path"] == f"/api/v0/asks/{RTX_4090 if machine_offered else CHEAPEST}/"
        assert create["body"]["price"] == 0.25
        assert create["body"]["label"] == "spot"
        assert [r["path"] for r in vast.requests("DELETE")] == [f"/api/v0/instances/{spot_id}/"]
        assert f"spot: moved - the GPU of instance {spot_id} was taken (outbid)" in run.stdout


def test_wakes_the_vast_hosts_of_the_inventory_by_default(vast: Controller) -> None:
    inventory = vast.inventory(
        {
            "all": {
                "hosts": {
                    "localhost": {
                        "ansible_connection": "local",
                        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                    }
                },
                "children": {
                    "gpu_hosts": {
                        "hosts": {
                            LABEL: {"vast_id": SLEEPY, "vast_label": LABEL},
                            "own-box": {"ansible_host": "192.0.2.7"},  # not a Vast.ai instance
                        }
                    }
                },
            }
        }
    )
    defaults = {k: v for k, v in QUICK.items() if k != "vastai_wake_labels"}
    with real_sshd() as ssh_port:
        vast.api.state.new_instance_ssh = {"host": "127.0.0.1", "port": ssh_port}
        run = vast.playbook(WAKE, defaults, inventory=inventory)
        assert run.rc == 0, run.output
        assert [r["path"] for r in vast.starts()] == [f"/api/v0/instances/{SLEEPY}/"]
        assert f"{LABEL}: started instance {SLEEPY}" in run.stdout
        assert f"Look for instances labelled {LABEL}]" in run.stdout  # not own-box


def test_check_mode_starts_nothing(vast: Controller) -> None:
    run = vast.playbook(WAKE, QUICK, args=["--check"])
    assert run.rc == 0, run.output
    assert vast.starts() == []
    assert f"{LABEL}: would start instance {SLEEPY} (stopped)" in run.stdout
