"""Every command answers --help without a project, an inventory or a network."""

from __future__ import annotations

import pytest

from tests.cli.conftest import assert_clean, flat, invoke

COMMANDS = {
    "up": ["site.yml"],
    "recover": ["--check", "--serial"],
    "tunnel": ["--down"],
    "down": ["--destroy", "--yes"],
    "provision": ["--label", "--gpu", "--min-vram", "--min-disk", "--max-dph", "--no-site"],
    "status": ["--json"],
    "forget-host": ["NAME", "playbooks/forget_host.yml"],
    "chat": ["--url", "--model", "--max-tokens", "--no-stream"],
}


def test_top_level_help_lists_every_command_and_the_global_options() -> None:
    result = invoke("--help")
    assert_clean(result)
    assert result.exit_code == 0
    out = flat(result.output)
    for command in COMMANDS:
        assert command in out
    for option in ("--project-dir", "--inventory", "--limit", "--extra-vars", "--verbose"):
        assert option in out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_help(command: str) -> None:
    result = invoke(command, "--help", env={"VASTLLM_PROJECT_DIR": "/nonexistent"})
    assert_clean(result)
    assert result.exit_code == 0, result.output
    out = flat(result.output)
    assert f"Usage: vastllm {command}" in out
    for word in COMMANDS[command]:
        assert word in out
