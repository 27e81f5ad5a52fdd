"""Fleets: `vastllm provision --count N [--check]` hands the count and check mode to the playbook
and prints what was reused and rented; on several GPU hosts one that fails does not stop the
others (site.yml's plays, vastllm_max_fail_percentage), and the report names the failed hosts and
those that finished; `vastllm up` exits 1 for a partial fleet."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from tests.cli.conftest import (
    assert_clean,
    closed_port_host,
    flat,
    invoke,
    local_host,
    read_record,
    write_inventory,
)
from tests.support import REPO
from vastllm.cli import plays
from vastllm.cli.events import EventLog
from vastllm.cli.progress import make_display
from vastllm.cli.project import Project
from vastllm.cli.report import hosts_line, report
from vastllm.cli.runner import PlaybookRun, RunOutcome, Target, run_playbook

# the stand-in provision.yml: records what it was given and says what it "rented"
_PROVISION = """\
- name: Stand-in provision
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Record provision
      ansible.builtin.copy:
        content: >-
          {{ {'count': vastai_count | default('UNSET'), 'check': ansible_check_mode} | to_json }}
        dest: "{{ record_dir }}/provision.json"
        mode: "0644"
      check_mode: false
    - name: Sum up the fleet
      ansible.builtin.set_fact:
        vastai_fleet_plan: ["f: reuse instance 1", "f-2: would rent offer 7"]
    - name: Show the fleet
      ansible.builtin.debug:
        var: vastai_fleet_plan
"""

# a stand-in site.yml: a GPU play like site.yml's, a host that fails at its second task, and a
# record of each host that got to the end
_SITE = """\
- name: Stand-in GPU play
  hosts: gpu_hosts
  gather_facts: false
  max_fail_percentage: "{{ vastllm_max_fail_percentage | default(100) }}"
  tasks:
    - name: Reach the host
      ansible.builtin.ping:
    - name: Fail on the bad host
      ansible.builtin.fail:
        msg: the bad host failed
      when: inventory_hostname == 'gpu-bad'
    - name: Record the host that finished
      ansible.builtin.copy:
        content: '"done"'
        dest: "{{ record_dir }}/{{ inventory_hostname }}.json"
        mode: "0644"
      delegate_to: localhost

- name: Stand-in tunnel play
  hosts: workstation
  gather_facts: false
  tasks:
    - name: Record the workstation
      ansible.builtin.copy:
        content: '"done"'
        dest: "{{ record_dir }}/workstation.json"
        mode: "0644"
"""


def _fleet_inventory(path: Path, records: Path | None = None, **bad: object) -> Path:
    return write_inventory(
        path,
        {"gpu-ok": local_host(), "gpu-bad": local_host(**bad), "gpu-gone": closed_port_host()},
        {"localhost": local_host()},
        {"record_dir": str(records)} if records else None,
    )


def test_provision_count_and_check_reach_the_playbook(stand_in: tuple[Path, Path]) -> None:
    root, records = stand_in
    (root / "playbooks" / "provision.yml").write_text(_PROVISION)
    args = ["--project-dir", str(root), "provision", "--label", "f"]
    result = invoke(*args, "--count", "2", "--check")
    assert_clean(result)
    assert result.exit_code == 0, result.output
    assert read_record(records, "provision") == {"count": 2, "check": True}
    assert result.stdout.splitlines()[-2:] == ["f: reuse instance 1", "f-2: would rent offer 7"]

    # without --count the playbook's default applies (1: the single instance labelled f)
    assert invoke(*args).exit_code == 0
    assert read_record(records, "provision") == {"count": "UNSET", "check": False}

    refused = invoke(*args, "--count", "0")
    assert refused.exit_code == 2
    assert "--count" in flat(refused.output)


def test_provision_play_collects_the_fleet_plan() -> None:
    run = plays.provision(
        label="f",
        gpu=None,
        min_vram_gib=None,
        min_disk_gib=None,
        max_dph=None,
        handover=True,
        count=3,
        check=True,
    )
    assert run.extravars == {
        "vastai_label": "f",
        "vastllm_provision_handover": True,
        "vastai_count": 3,
    }
    assert (run.check, run.collect) == (True, (plays.FLEET_PLAN_VAR,))


@pytest.mark.parametrize("max_fail", [None, 0])
def test_up_on_a_partial_fleet_names_the_failed_hosts_and_exits_1(
    stand_in: tuple[Path, Path], max_fail: int | None
) -> None:
    root, records = stand_in
    (root / "site.yml").write_text(_SITE)
    _fleet_inventory(root / "inventory.yml", records)
    extra = [] if max_fail is None else ["-e", f"vastllm_max_fail_percentage={max_fail}"]
    result = invoke("--project-dir", str(root), *extra, "up")
    assert_clean(result)
    assert result.exit_code == 1, result.output
    err = flat(result.stderr)
    assert "failed: gpu-bad at task 'Fail on the bad host'" in err
    assert "the bad host failed" in err
    assert "unreachable: gpu-gone at task 'Reach the host'" in err
    assert "site.yml: failed after" in err
    if max_fail is None:
        # the others went on to the end: gpu-ok's last task, then the workstation's play
        assert read_record(records, "gpu-ok") == "done"
        assert read_record(records, "workstation") == "done"
        assert (
            "2 of 4 hosts failed: gpu-bad, gpu-gone (unreachable); 2 finished without a "
            "failure: gpu-ok, localhost"
        ) in err
    else:
        # more than 0 % failed: gpu-ok is stopped with them, and the run ends there
        assert read_record(records, "gpu-ok") is None
        assert read_record(records, "workstation") is None
        assert (
            "2 of 3 hosts failed: gpu-bad, gpu-gone (unreachable); the run stopped after "
            "the play 'Stand-in GPU play' with no host left, before these finished: "
            "gpu-ok"
        ) in err


def _site_base(inventory: Path, extravars: dict[str, object]) -> tuple[RunOutcome, str]:
    """The project's site.yml, tag base (the host key check and ca_trust), through the CLI's
    runner, and what `vastllm up` would print about it."""
    project = Project(REPO)
    target = Target(project, [str(inventory)], extravars=extravars)
    out = io.StringIO()
    console = Console(file=out, width=200)
    outcome = run_playbook(target, PlaybookRun(plays.SITE, tags="base"), make_display(console, 0))
    report(console, outcome)
    return outcome, flat(out.getvalue())


def test_site_yml_lets_the_other_gpu_hosts_finish(tmp_path: Path) -> None:
    """One GPU host fails (an extra CA bundle that does not exist), one is unreachable: the
    third finishes site.yml; with vastllm_max_fail_percentage=0 it is stopped with them."""
    missing = tmp_path / "missing.pem"
    inventory = _fleet_inventory(tmp_path / "hosts.yml", vastllm_extra_ca_bundle=str(missing))

    outcome, printed = _site_base(inventory, {})
    assert not outcome.ok
    assert outcome.log.recap is not None
    assert outcome.log.recap["gpu-ok"].failed == 0
    assert "failed: gpu-bad at task 'Check that the extra CA bundle exists on the" in printed
    assert (
        "2 of 4 hosts failed: gpu-bad, gpu-gone (unreachable); 2 finished without a failure: "
        "gpu-ok, localhost"
    ) in printed
    finished = outcome.log.recap["gpu-ok"].ok

    stopped, printed = _site_base(inventory, {"vastllm_max_fail_percentage": 0})
    assert stopped.log.recap is not None
    assert stopped.log.recap["gpu-ok"].ok < finished  # it did not get to the end
    assert stopped.log.stopped_in == "Prepare the GPU hosts"
    assert "before these finished: gpu-ok" in printed


def test_hosts_line_only_for_several_hosts_with_a_failure() -> None:
    def outcome(stats: dict[str, dict[str, int]]) -> RunOutcome:
        log = EventLog()
        log.feed({"event": "playbook_on_stats", "event_data": stats})
        return RunOutcome("site.yml", "failed", 2, log, 1.0)

    assert hosts_line(outcome({"ok": {"a": 3}, "failures": {"a": 1}})) is None  # one host
    assert hosts_line(outcome({"ok": {"a": 3, "b": 3}})) is None  # no failure
    line = hosts_line(
        outcome({"ok": {"a": 3, "b": 1, "c": 1}, "failures": {"b": 1}, "dark": {"c": 1}})
    )
    assert line is not None
    assert line.plain == "2 of 3 hosts failed: b, c (unreachable); 1 finished without a failure: a"
