"""What each command hands its playbook (tags, variables), seen by a stand-in project whose
playbooks record what they received; inventory defaults and -e/--limit plumbing too."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import assert_clean, flat, invoke, read_record
from vastllm.cli.inventory import group_hosts
from vastllm.cli.project import Project
from vastllm.cli.runner import Target


def test_up_runs_site_yml_with_the_inventory_of_ansible_cfg(
    stand_in: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, records = stand_in
    # the project is found from one of its subdirectories; the inventory is its ansible.cfg's
    monkeypatch.chdir(root / "playbooks")
    result = invoke("-e", "extra_note=5", "up", env={"VASTLLM_PROJECT_DIR": None})
    assert_clean(result)
    assert result.exit_code == 0, result.output
    assert read_record(records, "tunnel") == {"tunnel_state": "present"}
    assert read_record(records, "untagged") == {"ran": True}
    assert "site.yml: done in" in result.stderr
    assert "localhost" in result.stderr.split("recap", 1)[1]


def test_tunnel_down_runs_only_the_tunnel_tag_with_state_absent(
    stand_in: tuple[Path, Path],
) -> None:
    root, records = stand_in
    result = invoke("--project-dir", str(root), "tunnel", "--down")
    assert_clean(result)
    assert result.exit_code == 0, result.output
    assert read_record(records, "tunnel") == {"tunnel_state": "absent"}
    assert read_record(records, "untagged") is None  # --tags tunnel


def test_down_destroy_yes_closes_tunnels_then_destroys_every_gpu_host(
    stand_in: tuple[Path, Path],
) -> None:
    root, records = stand_in
    result = invoke("--project-dir", str(root), "down", "--destroy", "--yes")
    assert_clean(result)
    assert result.exit_code == 0, result.output
    assert read_record(records, "tunnel") == {"tunnel_state": "absent"}
    assert read_record(records, "destroy") == {"labels": ["gpu-a", "gpu-b"], "confirm": False}
    assert read_record(records, "untagged") is None


def test_forget_host_names_an_inventory_host(stand_in: tuple[Path, Path]) -> None:
    root, records = stand_in
    result = invoke("--project-dir", str(root), "forget-host", "gpu-b")
    assert_clean(result)
    assert result.exit_code == 0, result.output
    assert read_record(records, "forget_host") == {"host": "gpu-b"}

    unknown = invoke("--project-dir", str(root), "forget-host", "gpu-z")
    assert_clean(unknown)
    assert unknown.exit_code == 1
    assert "gpu-z is not a host of the inventory: nothing to forget" in unknown.stderr


def test_down_without_destroy_only_closes_the_tunnels(stand_in: tuple[Path, Path]) -> None:
    root, records = stand_in
    result = invoke("--project-dir", str(root), "down")
    assert result.exit_code == 0, result.output
    assert read_record(records, "tunnel") == {"tunnel_state": "absent"}
    assert read_record(records, "destroy") is None


def test_down_destroy_without_yes_and_no_terminal_refuses(stand_in: tuple[Path, Path]) -> None:
    root, records = stand_in
    result = invoke("--project-dir", str(root), "down", "--destroy")
    assert_clean(result)
    assert result.exit_code == 2
    assert "pass --yes" in flat(result.output)
    assert read_record(records, "tunnel") is None  # nothing ran
    assert read_record(records, "destroy") is None


def test_provision_passes_the_offer_filters(stand_in: tuple[Path, Path]) -> None:
    root, records = stand_in
    args = ["--label", "llm-1", "--gpu", "RTX 4090", "--min-vram", "24", "--min-disk", "80"]
    result = invoke("--project-dir", str(root), "provision", *args, "--max-dph", "0.45")
    assert_clean(result)
    assert result.exit_code == 0, result.output
    assert read_record(records, "provision") == {
        "vastai_label": "llm-1",
        "vastai_gpu_name": "RTX 4090",
        "vastai_min_vram_gib": 24,
        "vastai_min_disk_gib": 80,
        "vastai_max_dph": 0.45,
        "vastllm_provision_handover": True,
    }


def test_provision_no_site_and_defaults_left_to_the_playbook(
    stand_in: tuple[Path, Path],
) -> None:
    root, records = stand_in
    result = invoke("--project-dir", str(root), "provision", "--label", "x", "--no-site")
    assert result.exit_code == 0, result.output
    assert read_record(records, "provision") == {
        "vastai_label": "x",
        "vastai_gpu_name": "UNSET",
        "vastai_min_vram_gib": "UNSET",
        "vastai_min_disk_gib": "UNSET",
        "vastai_max_dph": "UNSET",
        "vastllm_provision_handover": False,
    }


def test_gpu_hosts_of_the_inventory_follow_limit(stand_in: tuple[Path, Path]) -> None:
    root, _ = stand_in
    project = Project(root)
    inventories = project.default_inventories()
    assert inventories == [str(root / "inventory.yml")]
    assert group_hosts(Target(project, inventories), "gpu_hosts") == ["gpu-a", "gpu-b"]
    assert group_hosts(Target(project, inventories, limit="gpu-b"), "gpu_hosts") == ["gpu-b"]
    assert group_hosts(Target(project, inventories), "workstation") == ["localhost"]


def test_missing_playbook_is_reported_before_anything_runs(stand_in: tuple[Path, Path]) -> None:
    root, _ = stand_in
    (root / "playbooks" / "provision.yml").unlink()
    result = invoke("--project-dir", str(root), "provision", "--label", "x")
    assert_clean(result)
    assert result.exit_code == 2
    assert "playbooks/provision.yml not found in the project" in flat(result.output)
