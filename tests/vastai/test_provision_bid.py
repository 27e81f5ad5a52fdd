"""playbooks/provision.yml with vastai_interruptible against the Vast.ai API double: the search
asks for bid offers whose min_bid the bid covers, the instance is created with the bid ("price"
of PUT /api/v0/asks/{offer}/) and is interruptible (is_bid, host variable vast_is_bid); with
vastai_fallback_on_demand too few bid offers rent on-demand instead."""

from __future__ import annotations

import json

from tests.doubles.vastai_api_double import FIRST_ID
from tests.support import REPO
from tests.vastai.playbook_support import PROVISION_QUICK, Controller, real_sshd

PROVISION = REPO / "playbooks" / "provision.yml"
LABEL = "bid-box"
NEW_ID = FIRST_ID + 100
RTX_4090 = 11684738  # the double's 1 x RTX 4090 offer (min_bid 0.2 $/h)
QUICK = PROVISION_QUICK
DUMP_PLAYBOOK = """
- name: Provision like playbooks/provision.yml does
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: vastai_instance

- name: Dump whether the host is interruptible
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Write vast_is_bid of each GPU host
      ansible.builtin.copy:
        dest: "{{ dump_path }}"
        mode: "0600"
        content: >-
          {% set out = {} %}{% for h in groups['gpu_hosts'] %}
          {%- set _ = out.update({h: hostvars[h].vast_is_bid}) %}{% endfor %}{{ out | to_json }}
"""


def test_an_interruptible_instance_is_created_with_the_bid(vast: Controller) -> None:
    with real_sshd() as ssh_port:
        vast.api.state.new_instance_ssh = {"host": "127.0.0.1", "port": ssh_port}
        playbook = vast.tmp / "dump.yml"
        playbook.write_text(DUMP_PLAYBOOK)
        dump = vast.tmp / "bid.json"
        run = vast.playbook(
            playbook,
            {
                "vastai_label": LABEL,
                "vastai_gpu_name": "RTX 4090",
                "vastai_interruptible": True,
                "vastai_bid_dph": 0.25,
                "dump_path": str(dump),
                **QUICK,
            },
        )
        assert run.rc == 0, run.output
        [search] = vast.requests("POST", "/api/v0/bundles/")
        assert search["body"]["type"] == "bid"
        assert search["body"]["min_bid"] == {"lte": 0.25}
        assert "dph_total" not in search["body"]
        [create] = vast.requests("PUT", "/api/v0/asks/")
        assert create["path"] == f"/api/v0/asks/{RTX_4090}/"
        assert create["body"]["price"] == 0.25
        with vast.api.state.lock:
            assert vast.api.state.instances[NEW_ID]["is_bid"] is True
        assert "interruptible, bid 0.25 $/h, min_bid 0.2" in run.stdout
        assert json.loads(dump.read_text()) == {LABEL: True}


def test_too_few_bid_offers_fall_back_to_on_demand(vast: Controller) -> None:
    with real_sshd() as ssh_port:
        vast.api.state.new_instance_ssh = {"host": "127.0.0.1", "port": ssh_port}
        run = vast.playbook(
            PROVISION,
            {
                "vastai_label": LABEL,
                "vastai_interruptible": True,
                "vastai_bid_dph": 0.1,
                "vastai_fallback_on_demand": True,
                **QUICK,
            },
        )
        assert run.rc == 0, run.output
        searches = vast.requests("POST", "/api/v0/bundles/")
        assert [s["body"]["type"] for s in searches] == ["bid", "on-demand"]
        [create] = vast.requests("PUT", "/api/v0/asks/")
        assert "price" not in create["body"]
        assert "vastai_fallback_on_demand is on: renting on-demand" in run.stdout
        with vast.api.state.lock:
            assert not vast.api.state.instances[NEW_ID].get("is_bid")


def test_no_bid_offer_and_no_fallback_rents_nothing(vast: Controller) -> None:
    run = vast.playbook(
        PROVISION,
        {"vastai_label": LABEL, "vastai_interruptible": True, "vastai_bid_dph": 0.1, **QUICK},
    )
    assert run.rc != 0
    assert "No Vast.ai offer matches" in run.stdout
    assert "min_bid <= 0.1 $/h" in run.stdout
    assert vast.requests("PUT") == []


def test_interruptible_needs_a_bid(vast: Controller) -> None:
    run = vast.playbook(PROVISION, {"vastai_label": LABEL, "vastai_interruptible": True, **QUICK})
    assert run.rc != 0
    assert "vastai_interruptible needs a bid" in run.stdout
    assert vast.requests("POST") == []  # not even a search
    assert vast.requests("PUT") == []
