"""The pytest process keeps Python's own ``sys.intern``: importing ``ansible.errors`` (or
``ansible.module_utils.basic``) in-process replaces it with Ansible's patch, and torch then
fails to import model classes (``substitute_in_graph expects a function``), so every test that
loads a model after it errors. Ansible code runs in ansible-playbook subprocesses instead."""

from __future__ import annotations

import builtins
import sys


def test_sys_intern_is_pythons_own_after_collection() -> None:
    assert type(sys.intern) is type(builtins.len), (
        f"sys.intern was replaced by {type(sys.intern)!r}: a test module or plugin imported "
        "ansible.errors or ansible.module_utils.basic in the pytest process"
    )
