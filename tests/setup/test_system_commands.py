"""The machine's Debian packages are one list (scripts/debian-packages.txt): every system command
that a test, a bench or a script execs on this machine must be on it, so that a fresh machine's
`make setup` installs it and the preflight checks it before any test starts.

Commands are found in the Python sources by what names them: a `shutil.which("X")`, the head of a
`subprocess` argv list, or an absolute path such as "/usr/sbin/sshd". Paths inside test hosts
(testinfra's `host.*` calls) belong to the image lists under tests/images/, not here.
"""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO

PACKAGE_LIST = REPO / "scripts" / "debian-packages.txt"
SCANNED = ["tests", "bench", "scripts", "molecule"]
_ABSOLUTE = re.compile(r"^\^?/(?:usr/)?(?:local/)?s?bin/([A-Za-z0-9_.+-]+)")
_SUBPROCESS = {"run", "Popen", "check_output", "check_call", "call"}

# Commands that are no Debian package of this machine, each with the reason.
NOT_DEBIAN = {
    "python3": "the Python that runs the suite",
    "python3.11": "the Python that runs the suite",
    "nvidia-smi": "only ever the test double (tests/doubles/nvidia_smi_double)",
    "ollama": "only ever the test double (tests/doubles/ollama_double_tarball.py)",
    "sh": "POSIX shell, part of every Debian system (dash, Essential)",
    "bash": "Essential on Debian",
    "true": "coreutils, Essential on Debian",
    "env": "coreutils, Essential on Debian",
    "ansible-playbook": "installed in .venv by scripts/venv.sh",
    "ansible-inventory": "installed in .venv by scripts/venv.sh",
}


def package_commands() -> dict[str, str]:
    """command -> Debian package, from the list file."""
    commands: dict[str, str] = {}
    for line in PACKAGE_LIST.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        package, _, names = line.partition(":")
        assert _, f"{PACKAGE_LIST.name}: '{line}' is not 'package: command ...'"
        for name in names.split():
            commands[name] = package.strip()
    return commands


def _host_call_strings(tree: ast.AST) -> set[int]:
    """ids of string constants passed to testinfra's host.* (paths inside a test host)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "host"):
            inside.update(id(sub) for sub in ast.walk(node) if isinstance(sub, ast.Constant))
        if isinstance(node, ast.JoinedStr):  # f"{venv}/bin/python": a suffix, not a system path
            inside.update(id(part) for part in node.values[1:])
    return inside


def named_commands(source: str) -> Iterator[tuple[int, str]]:
    """(line, command) for each system command a Python source names."""
    tree = ast.parse(source)
    skip = _host_call_strings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            owner_name = owner.id if isinstance(owner, ast.Name) else ""
            first = node.args[0] if node.args else None
            if (owner_name == "shutil" and node.func.attr == "which"
                    and isinstance(first, ast.Constant) and isinstance(first.value, str)):
                yield node.lineno, first.value
            if (owner_name == "subprocess" and node.func.attr in _SUBPROCESS
                    and isinstance(first, ast.List) and first.elts
                    and isinstance(first.elts[0], ast.Constant)
                    and isinstance(first.elts[0].value, str)):
                yield node.lineno, Path(first.elts[0].value).name
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in skip):
            match = _ABSOLUTE.match(node.value)
            if match:
                yield node.lineno, match.group(1)


def sources() -> Iterator[Path]:
    for top in SCANNED:
        yield from sorted((REPO / top).rglob("*.py"))


def test_every_command_the_suite_execs_is_on_the_package_list() -> None:
    known = package_commands()
    unlisted = [
        f"{path.relative_to(REPO)}:{line}: {command}"
        for path in sources()
        for line, command in named_commands(path.read_text())
        if command not in known and command not in NOT_DEBIAN
    ]
    assert not unlisted, (
        f"system commands with no package in {PACKAGE_LIST.relative_to(REPO)} "
        f"(add 'package: command' there):\n" + "\n".join(unlisted))


@pytest.mark.parametrize(("source", "expected"), [
    ('SSHD = Path("/usr/sbin/sshd")', ["sshd"]),
    ('shutil.which("wrk")', ["wrk"]),
    ('subprocess.run(["redis-cli", "-p", "1"], check=True)', ["redis-cli"]),
    ('subprocess.Popen(["/usr/bin/autossh", "-M", "0"])', ["autossh", "autossh"]),
    ('subprocess.run(["pkill", "-f", "^/usr/bin/ssh .*:8082:"])', ["pkill", "ssh"]),
    ('host.file("/usr/bin/supervisorctl").exists', []),
    ('x = "/usr/share/doc"', []),
    ('p = f"{venv}/bin/python"', []),
])
def test_the_scanner_finds_each_way_a_command_is_named(source: str, expected: list[str]) -> None:
    assert sorted(c for _, c in named_commands(source)) == sorted(expected)


def test_a_command_missing_from_the_list_fails_the_scan() -> None:
    known = package_commands()
    found = [c for _, c in named_commands('subprocess.run(["no-such-tool-xyz"])')]
    assert found == ["no-such-tool-xyz"]
    assert found[0] not in known


def test_host_setup_installs_exactly_the_listed_packages() -> None:
    """host-setup.sh takes its package names from the list, nowhere else."""
    listed = sorted(line.partition(":")[0].strip() for line in PACKAGE_LIST.read_text().splitlines()
                    if line.strip() and not line.startswith("#"))
    assert set(package_commands().values()) <= set(listed)
    script = REPO / "scripts" / "host-setup.sh"
    proc = subprocess.run(
        ["bash", "-c", 'eval "$(sed -n "/^mapfile/,/debian-packages.txt\\")/p" "$0")"; '
         'printf "%s\\n" "${packages[@]}"', str(script)],
        capture_output=True, text=True, check=True, cwd=script.parent)
    assert sorted(proc.stdout.split()) == listed


def test_preflight_names_the_package_of_a_missing_command(tmp_path: Path) -> None:
    """The preflight reads the same list; a command it cannot find is reported with its package."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "preflight.sh").write_text((REPO / "scripts" / "preflight.sh").read_text())
    (scripts / "debian-packages.txt").write_text(
        "# test list\ncoreutils: sha256sum\nvastllm-missing-pkg: vastllm-no-such-command\n")
    proc = subprocess.run(["bash", str(scripts / "preflight.sh")], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 1
    assert "missing commands: vastllm-no-such-command" in proc.stderr
    assert "apt-get install vastllm-missing-pkg" in proc.stderr
    (scripts / "debian-packages.txt").write_text("coreutils: sha256sum\n")
    ok = subprocess.run(["bash", str(scripts / "preflight.sh")], capture_output=True, text=True,
                        check=False)
    assert ok.returncode == 0, ok.stderr
