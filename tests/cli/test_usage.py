"""Usage errors exit 2 with a message saying what to do, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import assert_clean, flat, invoke
from tests.support import REPO


def test_no_project_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("up", env={"VASTLLM_PROJECT_DIR": None})
    assert_clean(result)
    assert result.exit_code == 2
    out = flat(result.output)
    assert "no vastllm project found" in out
    assert "--project-dir" in out


def test_project_dir_without_the_playbooks(tmp_path: Path) -> None:
    (tmp_path / "site.yml").write_text("[]\n")  # no ansible.cfg
    result = invoke("--project-dir", str(tmp_path), "status")
    assert_clean(result)
    assert result.exit_code == 2
    assert "is not a vastllm project: it needs site.yml and ansible.cfg" in flat(result.output)


def test_project_dir_from_the_environment(tmp_path: Path) -> None:
    result = invoke("recover", env={"VASTLLM_PROJECT_DIR": str(tmp_path)})
    assert_clean(result)
    assert result.exit_code == 2
    assert f"{tmp_path} is not a vastllm project" in flat(result.output)


@pytest.mark.parametrize("bad", ["novalue", "=5", "two words=1", "9lives=1"])
def test_bad_extra_vars(bad: str) -> None:
    result = invoke("--project-dir", str(REPO), "-e", bad, "up")
    assert_clean(result)
    assert result.exit_code == 2
    out = flat(result.output)
    assert "--extra-vars" in out
    assert f"bad extra variable '{bad}'" in out
    assert "KEY=VALUE" in out


def test_missing_inventory(tmp_path: Path) -> None:
    result = invoke("--project-dir", str(REPO), "-i", str(tmp_path / "nope.yml"), "up")
    assert_clean(result)
    assert result.exit_code == 2
    assert f"inventory {tmp_path / 'nope.yml'} not found" in flat(result.output)


def test_bad_option_values() -> None:
    for args in (["recover", "--serial", "0"], ["chat", "hi", "--max-tokens", "0"]):
        result = invoke("--project-dir", str(REPO), *args)
        assert_clean(result)
        assert result.exit_code == 2, args
    result = invoke("--project-dir", str(REPO), "provision")
    assert result.exit_code == 2
    assert "--label" in flat(result.output)
