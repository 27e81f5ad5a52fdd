"""Each role's defaults/main.yml and meta/argument_specs.yml document the same variables, and
roles/*/README.md and the README index of roles are generated from them (scripts/role_docs.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tests.support import REPO

ROLES = sorted(p.parent.parent for p in REPO.glob("roles/*/meta/argument_specs.yml"))


def test_every_role_with_defaults_has_argument_specs():
    with_defaults = {p.parent.parent for p in REPO.glob("roles/*/defaults/main.yml")}
    assert with_defaults <= set(ROLES)


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_defaults_and_argument_specs_mirror_each_other(role):
    spec = yaml.safe_load((role / "meta/argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"].get("options", {})
    defaults_file = role / "defaults/main.yml"
    defaults = yaml.safe_load(defaults_file.read_text()) if defaults_file.exists() else {}
    defaults = defaults or {}
    assert set(defaults) == set(options), "variables in only one of defaults/ and argument_specs"
    for name, value in defaults.items():
        opt = options[name]
        assert opt.get("description"), f"{name} has no description"
        if opt.get("required"):
            continue
        templated = isinstance(value, str) and "{{" in value
        if not templated and "default" in opt:
            assert opt["default"] == value, f"{name}: spec default {opt['default']!r} != {value!r}"


def test_readme_role_tables_are_up_to_date():
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts/role_docs.py"), "--check"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
