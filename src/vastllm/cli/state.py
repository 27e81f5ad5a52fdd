"""The workstation's state directory, private to its user.

``~/.cache/vastllm`` (``VASTLLM_STATE`` overrides it) holds Ansible's fact cache (each GPU
host's whole environment), the Vast.ai inventory cache (each instance's ``jupyter_token`` and
``extra_env``) and the test hosts' SSH key: 0700 directories and 0600 files, and whatever a
run writes there is created that way (umask 077 for the run).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STATE_ENV = "VASTLLM_STATE"
PRIVATE_UMASK = 0o077


def state_dir() -> Path:
    return Path(os.environ.get(STATE_ENV) or Path.home() / ".cache" / "vastllm")


def make_private(root: Path) -> None:
    """Create ``root`` if needed and take group and other access away from all below it."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path in [root, *root.rglob("*")]:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            continue
        wanted = 0o700 if stat.S_ISDIR(info.st_mode) else stat.S_IMODE(info.st_mode) & 0o700
        if stat.S_IMODE(info.st_mode) != wanted:
            path.chmod(wanted)


@contextmanager
def private_run() -> Iterator[None]:
    """Around a playbook run: the state directory private, and what the run creates too."""
    make_private(state_dir())
    before = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(before)
