"""The workstation's state directory is private: 0700 directories, 0600 files, umask 077 for a
run (the fact cache holds each GPU host's environment, the inventory cache instance tokens)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from vastllm.cli import state


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_the_state_directory_and_all_below_it_lose_group_and_other_access(tmp_path: Path) -> None:
    root = tmp_path / "vastllm"
    (root / "facts").mkdir(parents=True, mode=0o755)
    root.chmod(0o755)
    facts = root / "facts" / "gpu1"
    facts.write_text('{"ansible_env": {"AWS_SECRET_ACCESS_KEY": "x"}}')
    facts.chmod(0o644)
    tool = root / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    (root / "link").symlink_to("/etc/hostname")
    state.make_private(root)
    modes = (mode(root), mode(root / "facts"), mode(facts), mode(tool))
    assert modes == (0o700, 0o700, 0o600, 0o700)
    assert (root / "link").is_symlink()  # links are left alone (their target is not ours)


def test_a_missing_state_directory_is_created_private(tmp_path: Path) -> None:
    root = tmp_path / "a" / "vastllm"
    state.make_private(root)
    assert mode(root) == 0o700


def test_a_run_creates_private_files_and_gives_the_umask_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(state.STATE_ENV, str(tmp_path / "state"))
    before = os.umask(0o022)
    try:
        with state.private_run():
            (tmp_path / "inventory-cache").write_text("jupyter_token")
        (tmp_path / "after").write_text("x")
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(before)
    assert mode(tmp_path / "state") == 0o700
    assert mode(tmp_path / "inventory-cache") == 0o600
    assert mode(tmp_path / "after") == 0o644
