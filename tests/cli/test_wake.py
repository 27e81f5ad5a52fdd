"""`vastllm wake` and `vastllm provision --interruptible`: what they hand their playbooks, seen by
the stand-in project (tests/cli/conftest.py), and what wake prints from the playbook's report."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import _playbook, assert_clean, flat, invoke, read_record

_WAKE = """\
- name: Stand-in wake
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Record wake
      ansible.builtin.copy:
        content: >-
          {{ {'labels': vastai_wake_labels | default('UNSET'), 'move': vastai_wake_move}
             | to_json }}
        dest: "{{ record_dir }}/wake.json"
        mode: "0644"
    - name: Report like the role does
      ansible.builtin.set_fact:
        vastai_wake_report: ["gpu-a: started instance 7, up on 127.0.0.1:22", "gpu-b: moved - ..."]
    - name: Show the report like the role does
      ansible.builtin.debug:
        var: vastai_wake_report
"""
_BID_VARS = ("vastai_interruptible", "vastai_bid_dph", "vastai_fallback_on_demand")


def _stand_in_wake(root: Path) -> None:
    (root / "playbooks" / "wake.yml").write_text(_WAKE)


def test_wake_defaults_to_the_playbook_and_prints_its_report(stand_in: tuple[Path, Path]) -> None:
    root, records = stand_in
    _stand_in_wake(root)
    result = invoke("--project-dir", str(root), "wake")
    assert_clean(result)
    assert result.exit_code == 0, result.output
    assert read_record(records, "wake") == {"labels": "UNSET", "move": True}
    assert "gpu-a: started instance 7, up on 127.0.0.1:22" in result.stdout
    assert "gpu-b: moved - ..." in result.stdout


def test_wake_labels_and_no_move(stand_in: tuple[Path, Path]) -> None:
    root, records = stand_in
    _stand_in_wake(root)
    result = invoke("--project-dir", str(root), "wake", "--label", "a", "--label", "b", "--no-move")
    assert result.exit_code == 0, result.output
    assert read_record(records, "wake") == {"labels": ["a", "b"], "move": False}


def _stand_in_bid(root: Path) -> None:
    expr = "{" + ", ".join(f"'{v}': {v} | default('UNSET')" for v in _BID_VARS) + "}"
    (root / "playbooks" / "provision.yml").write_text(_playbook("provision", expr))


def test_provision_interruptible_passes_the_bid(stand_in: tuple[Path, Path]) -> None:
    root, records = stand_in
    _stand_in_bid(root)
    result = invoke(
        "--project-dir",
        str(root),
        "provision",
        "--label",
        "x",
        "--interruptible",
        "--bid",
        "0.15",
        "--fallback-on-demand",
    )
    assert_clean(result)
    assert result.exit_code == 0, result.output
    assert read_record(records, "provision") == {
        "vastai_interruptible": True,
        "vastai_bid_dph": 0.15,
        "vastai_fallback_on_demand": True,
    }

    plain = invoke("--project-dir", str(root), "provision", "--label", "x")
    assert plain.exit_code == 0, plain.output
    assert read_record(records, "provision") == dict.fromkeys(_BID_VARS, "UNSET")


def test_provision_bid_options_go_together(stand_in: tuple[Path, Path]) -> None:
    root, records = stand_in
    _stand_in_bid(root)
    for args, hint in (
        (["--interruptible"], "--bid"),
        (["--bid", "0.2"], "--interruptible"),
        (["--fallback-on-demand"], "--fallback-on-demand"),
    ):
        result = invoke("--project-dir", str(root), "provision", "--label", "x", *args)
        assert_clean(result)
        assert result.exit_code == 2, result.output
        assert hint in flat(result.output)
    assert read_record(records, "provision") is None
