"""playbooks/provision.yml against the Vast.ai API double: rent the cheapest matching offer, wait
until the instance runs and a real sshd answers on its endpoint, reuse it on the next run, and
fail readably (no offer, bad key, no label, a stopped namesake, a boot that takes too long)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.doubles.vastai_api_double import FIRST_ID, make_instance
from tests.support import REPO
from tests.vastai.playbook_support import (
    KEY,
    PROVISION_QUICK,
    Controller,
    PlaybookRun,
    real_sshd,
)

PROVISION = REPO / "playbooks" / "provision.yml"
ANSIBLE = REPO / ".venv" / "bin" / "ansible"
LABEL = "vastllm-test"
RENTED_OFFER = 11684738  # the double's 1 x RTX 4090 offer at 0.2467 $/h
NEW_ID = FIRST_ID + 100  # first id the double gives a created instance
QUICK = PROVISION_QUICK

# what the next play sees of the host add_host created: the role, then a look at gpu_hosts
INSPECT_PLAYBOOK = """
- name: Provision like playbooks/provision.yml does
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: vastai_instance

- name: Dump the GPU hosts
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Write gpu_hosts and their connection variables
      ansible.builtin.copy:
        dest: "{{ dump_path }}"
        mode: "0600"
        content: >-
          {% set out = {} %}{% for h in groups['gpu_hosts'] %}{% set _ = out.update({h: dict(keys
          | zip(keys | map('extract', hostvars[h]) | list))}) %}{% endfor %}{{ out | to_json }}
      vars:
        keys: [ansible_host, ansible_port, ansible_user, vast_id, vast_label, vast_ssh_mode]
"""


def test_rents_the_cheapest_matching_offer_then_reuses_the_instance(vast: Controller) -> None:
    with real_sshd() as ssh_port:
        vast.api.state.boot_polls = 2  # two looks see "loading" before "running"
        vast.api.state.new_instance_ssh = {"host": "127.0.0.1", "port": ssh_port}

        first = vast.playbook(PROVISION, {"vastai_label": LABEL, "vastai_gpu_name": "RTX_4090",
                                          "vastai_max_dph": 0.3, **QUICK})
        assert first.rc == 0, first.output
        assert first.recap()["changed"] == 1  # the rent; nothing else changes
        requests = vast.requests(prefix="/api/")
        assert all(r["key_ok"] for r in requests)
        searches = [r for r in requests if r["path"] == "/api/v0/bundles/"]
        assert [s["body"] for s in searches] == [{
            "gpu_name": {"eq": "RTX 4090"}, "num_gpus": {"eq": 1}, "gpu_ram": {"gte": 24000},
            "disk_space": {"gte": 80}, "dph_total": {"lte": 0.3}, "rentable": {"eq": True},
            "rented": {"eq": False}, "order": [["dph_total", "asc"]], "type": "on-demand",
            "limit": 10}]
        [create] = vast.requests("PUT")
        assert create["path"] == f"/api/v0/asks/{RENTED_OFFER}/"
        body = create["body"]
        assert {k: body[k] for k in ("client_id", "label", "image", "disk", "runtype")} == {
            "client_id": "me", "label": LABEL, "image": "vastai/base-image:cuda-12.4.1-auto",
            "disk": 80, "runtype": "ssh_direc ssh_proxy"}
        # the onstart runs supervised_service's door, or the image's own boot before it exists
        assert "/usr/local/lib/vastllm/supervisor start" in body["onstart"]
        assert "/opt/instance-tools/bin/entrypoint.sh" in body["onstart"]
        shows = [r for r in requests if r["path"] == f"/api/v0/instances/{NEW_ID}/"]
        assert len(shows) == 3  # loading, loading, running
        assert "Wait until the Vast.ai instances run, labelled vastllm-test (" in first.stdout
        assert f"{LABEL} (instance {NEW_ID}): ssh -p {ssh_port} root@127.0.0.1" in first.stdout
        assert KEY not in first.output

        # the next play sees the instance in gpu_hosts with its SSH endpoint
        vast.api.state.requests.clear()
        inspect = vast.tmp / "inspect.yml"
        inspect.write_text(INSPECT_PLAYBOOK)
        dump = vast.tmp / "gpu_hosts.json"
        again = vast.playbook(inspect, {"vastai_label": LABEL, "dump_path": str(dump), **QUICK})
        assert again.rc == 0, again.output
        assert json.loads(dump.read_text()) == {LABEL: {
            "ansible_host": "127.0.0.1", "ansible_port": ssh_port, "ansible_user": "root",
            "vast_id": NEW_ID, "vast_label": LABEL, "vast_ssh_mode": "direct"}}
        assert again.recap()["changed"] == 1  # only the dump file

        # provision.yml itself: the instance is reused, nothing rented, nothing changed
        vast.api.state.requests.clear()
        third = vast.playbook(PROVISION, {"vastai_label": LABEL, **QUICK})
        assert third.rc == 0, third.output
        assert third.recap()["changed"] == 0
        assert f"Instance {NEW_ID} labelled {LABEL} already exists (running" in third.stdout
        assert vast.requests("PUT") == []
        assert [r for r in vast.requests() if r["path"] == "/api/v0/bundles/"] == []
        assert len(vast.api.state.instances) == 34


def test_a_new_instance_replaces_the_key_pinned_for_its_recycled_address(
        vast: Controller, tmp_path: Path) -> None:
    """Vast.ai hands a new instance a host:port an earlier instance had: provision.yml forgets the
    key pinned there (the first connection pins the new one); a reused instance keeps its pin."""
    stale, other = (tmp_path / "stale", tmp_path / "other")
    for key in (stale, other):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True, capture_output=True, timeout=30)
    known_hosts = vast.home / ".config" / "vastllm" / "known_hosts"
    known_hosts.parent.mkdir(parents=True)

    def pinned(name: str) -> bool:
        return subprocess.run(["ssh-keygen", "-F", name, "-f", str(known_hosts)],
                              capture_output=True, timeout=30, check=False).returncode == 0

    with real_sshd() as ssh_port:
        vast.api.state.new_instance_ssh = {"host": "127.0.0.1", "port": ssh_port}
        recycled, elsewhere = f"[127.0.0.1]:{ssh_port}", "[192.0.2.7]:40022"
        key_of = {k: " ".join(k.with_suffix(".pub").read_text().split()[:2])
                  for k in (stale, other)}
        pins = f"{recycled} {key_of[stale]}\n{elsewhere} {key_of[other]}\n"
        known_hosts.write_text(pins)

        created = vast.playbook(PROVISION, {"vastai_label": LABEL, **QUICK})
        assert created.rc == 0, created.output
        assert "Forget the SSH host keys pinned for the addresses of the new" in created.stdout
        assert not pinned(recycled)
        assert pinned(elsewhere)

        known_hosts.write_text(pins)
        reused = vast.playbook(PROVISION, {"vastai_label": LABEL, **QUICK})
        assert reused.rc == 0, reused.output
        assert f"Instance {NEW_ID} labelled {LABEL} already exists" in reused.stdout
        assert reused.recap()["changed"] == 0
        assert known_hosts.read_text() == pins


def test_check_mode_rents_nothing(vast: Controller) -> None:
    run = vast.playbook(PROVISION, {"vastai_label": LABEL, **QUICK}, args=["--check"])
    assert run.rc == 0, run.output
    # any GPU: the double's A5000 offer is the cheapest
    assert "Would rent offer 11684740 (1 x RTX A5000" in run.stdout
    assert vast.requests("PUT") == []
    assert len(vast.requests("POST", "/api/v0/bundles/")) == 1


def test_no_matching_offer_names_the_filters_to_relax(vast: Controller) -> None:
    run = vast.playbook(PROVISION, {"vastai_label": LABEL, "vastai_gpu_name": "H100 SXM",
                                    "vastai_max_dph": 0.05, **QUICK})
    assert run.rc != 0
    text = " ".join(run.stdout.split())
    assert ("No Vast.ai offer matches gpu_name = H100 SXM, num_gpus = 1, gpu_ram >= 24000 MB, "
            "disk_space >= 80 GB, dph_total <= 0.05 $/h") in text
    for knob in ("vastai_gpu_name=''", "vastai_max_dph (now 0.05)", "vastai_min_disk_gib (now 80)",
                 "vastai_min_vram_gib (now 24", "vastai_num_gpus (now 1)"):
        assert knob in text
    assert vast.requests("PUT") == []


def test_rejected_key_is_one_clear_failure(vast: Controller) -> None:
    vast.write_key_file("wrong-secret-key")
    run = vast.playbook(PROVISION, {"vastai_label": LABEL, **QUICK})
    assert run.rc != 0
    assert "Vast.ai rejected the API key (401 auth_error)" in run.stdout
    assert "wrong-secret-key" not in run.output
    requests = vast.requests(prefix="/api/")
    assert len(requests) == 1  # the listing, not retried; no search, no rent
    assert not requests[0]["key_ok"]


def test_environment_key_wins_and_a_missing_label_is_refused(vast: Controller) -> None:
    vast.write_key_file("stale-file-key")
    no_label = vast.playbook(PROVISION, QUICK, env={"VAST_API_KEY": KEY})
    assert no_label.rc != 0
    assert "vastai_label is required" in no_label.stdout
    assert vast.requests(prefix="/api/") == []

    bad_label = vast.playbook(PROVISION, {"vastai_label": "my box", **QUICK},
                              env={"VAST_API_KEY": KEY})
    assert bad_label.rc != 0
    assert "vastai_label is required" in bad_label.stdout

    # a stopped instance with the label: neither reused nor replaced behind the user's back
    stopped = vast.playbook(PROVISION, {"vastai_label": "old-exited", **QUICK},
                            env={"VAST_API_KEY": KEY})
    assert stopped.rc != 0
    text = " ".join(stopped.stdout.split())
    assert f"Instance {FIRST_ID + 30} labelled old-exited is stopped (actual_status exited" in text
    assert "playbooks/destroy.yml -e vastai_destroy_labels=old-exited" in text
    assert all(r["key_ok"] for r in vast.requests(prefix="/api/"))  # VAST_API_KEY, not the file
    assert vast.requests("PUT") == []


def test_old_variable_names_stop_the_run_before_any_request(vast: Controller) -> None:
    """The role's variables were vast_*: an old name fails the run, naming the new one."""
    run = vast.playbook(PROVISION, {"vast_label": LABEL, "vast_api_key": "old-secret-key",
                                    "vast_max_dph": 0.3, **QUICK})
    assert run.rc != 0
    text = " ".join(run.stdout.split())
    for old, new in (("vast_label", "vastai_label"), ("vast_api_key", "vastai_api_key"),
                     ("vast_max_dph", "vastai_max_dph")):
        assert f"{old} was renamed {new} in this release (docs/upgrading.md)." in text
    assert "vastai_label is required" not in text  # the rename check comes first
    assert "old-secret-key" not in run.output
    assert vast.requests(prefix="/api/") == []


def test_boot_timeout_says_the_instance_is_still_rented(vast: Controller) -> None:
    vast.api.state.boot_polls = 1000
    run = vast.playbook(PROVISION, {"vastai_label": LABEL, "vastai_boot_timeout": 2, **QUICK})
    assert run.rc != 0
    text = " ".join(run.stdout.split())
    assert (f"Instance {NEW_ID} labelled {LABEL} did not run within 2 s (actual_status loading"
            in text)
    assert "It is still rented" in text
    assert len(vast.requests("GET", f"/api/v0/instances/{NEW_ID}/")) == 3  # first look + 2
    # the failure is the instance's, under its label (provision.yml's second play)
    assert run.recap(LABEL)["failed"] == 1
    assert run.recap()["failed"] == 0


def run_module(vast: Controller, args: dict[str, object]) -> PlaybookRun:
    """The vastai_instance module alone (ad hoc, the key on the command line: only the role's
    no_log tasks keep it out of the output), so a test can script the API's answers."""
    proc = subprocess.run(
        [str(ANSIBLE), "localhost", "-i", str(vast.inventory()), "-M",
         str(REPO / "plugins" / "modules"), "-m", "vastai_instance",
         "-a", json.dumps({"api_url": vast.api.url, "api_key": KEY, **args})],
        cwd=REPO, env=vast.env(), capture_output=True, text=True, timeout=120, check=False)
    return PlaybookRun(proc.returncode, proc.stdout, proc.stderr)


def test_refused_create_destroys_what_it_left_behind(vast: Controller) -> None:
    leftover = make_instance(150, "half-made", ssh="proxy", status="created")
    vast.api.state.instances[leftover["id"]] = leftover
    refusal = {"success": False, "error": "invalid_args", "msg": "outbid",
               "new_contract": leftover["id"]}
    vast.api.state.fail_next = [[410, json.dumps(refusal), "application/json"]]
    run = run_module(vast, {"action": "create", "offer_id": RENTED_OFFER,
                            "create": {"image": "img", "label": LABEL}})
    assert run.rc != 0
    assert (f"Vast.ai refused offer {RENTED_OFFER} (invalid_args: outbid); the instance "
            f"{leftover['id']} it left behind was destroyed") in run.stdout
    assert [r["path"] for r in vast.requests("DELETE")] == [f"/api/v0/instances/{leftover['id']}/"]
    assert leftover["id"] not in vast.api.state.instances

    # an offer taken between search and rent: say so
    vast.api.state.offers[RENTED_OFFER]["rented"] = True
    taken = run_module(vast, {"action": "create", "offer_id": RENTED_OFFER,
                              "create": {"image": "img", "label": LABEL}})
    assert taken.rc != 0
    assert "no_such_ask" in taken.stdout
    assert "the offer was taken since the search: run again" in taken.stdout
