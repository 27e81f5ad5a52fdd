"""The workstation's state directory, private to its user.

``~/.cache/vastllm`` (``VASTLLM_STATE`` names another) holds what runs leave on the workstation:
the Vast.ai inventory cache (``inventory/``: each instance's ``jupyter_token`` and
``extra_env``), the test hosts' SSH key and the demo's state (scripts/testhost, scripts/demo.sh),
the idle watchers' budget counts as ``vastllm status`` last read them (``budget_counts.json``,
:mod:`vastllm.cli.last_counts`) and, for ``ansible-playbook`` run by hand, Ansible's fact
cache (``facts/``: each GPU host's whole environment). The two caches are where ansible.cfg
(``fact_caching_connection``) and inventory/vast.yml (``cache_connection``) say,
``~/.cache/vastllm`` whatever ``VASTLLM_STATE`` is.

Under the CLI there is no fact cache here: ansible-runner points the cache plugin
(``ANSIBLE_CACHE_PLUGIN_CONNECTION``, over ansible.cfg) at ``artifacts/<ident>/fact_cache`` in
the run's private data dir, the temporary directory :func:`vastllm.cli.runner.run_playbook`
makes for each playbook run and removes when it ends: facts live only as long as one run.

:func:`private_run`, around each CLI run, makes this directory 0700 directories and 0600 files,
and what the run creates (here and in that temporary directory) is created that way (umask 077).
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
