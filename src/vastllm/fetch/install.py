"""Put a finished directory in place: partial dirs next to the target, atomic swap, a lock."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vastllm.fetch.errors import DestinationError
from vastllm.fetch.marker import MARKER_NAME
from vastllm.fetch.tarsafe import DIR_MODE


def partial_prefix(dest: Path) -> str:
    return f".{dest.name}.partial-"


def _old_prefix(dest: Path) -> str:
    return f".{dest.name}.old-"


def remove_tree(path: Path) -> None:
    """Remove a directory we created (never follows symlinks out of it)."""
    shutil.rmtree(path, ignore_errors=True)


def make_partial_dir(dest: Path) -> Path:
    """A fresh `.<name>.partial-XXXX` directory beside `dest` (same filesystem)."""
    return Path(tempfile.mkdtemp(prefix=partial_prefix(dest), dir=dest.parent))


def remove_stale(dest: Path) -> list[Path]:
    """Delete partial/old directories a killed earlier run left beside `dest` (lock held)."""
    removed = []
    for entry in dest.parent.iterdir():
        if entry.name.startswith((partial_prefix(dest), _old_prefix(dest))) and entry.is_dir():
            remove_tree(entry)
            removed.append(entry)
    return removed


@contextmanager
def dest_lock(dest: Path) -> Iterator[None]:
    """Serialise runs on the same target with an flock on `.<name>.fetch-lock` beside it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    lock_path = dest.parent / f".{dest.name}.fetch-lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise DestinationError(
                f"another vastllm.fetch is working on {dest} (lock {lock_path} is held)"
            ) from None
        yield
    finally:
        os.close(fd)


def check_destination(dest: Path, force: bool) -> None:
    """Refuse to replace a directory this tool did not create, unless forced."""
    if not os.path.lexists(dest):
        return
    if dest.is_symlink() or not dest.is_dir():
        raise DestinationError(f"{dest} exists and is not a directory")
    if force or (dest / MARKER_NAME).is_file() or not any(dest.iterdir()):
        return
    raise DestinationError(
        f"{dest} exists, is not empty and was not installed by vastllm.fetch "
        f"(no {MARKER_NAME}); move it away or pass --force to replace it"
    )


def swap_into_place(partial: Path, dest: Path) -> None:
    """Rename `partial` to `dest`; an existing `dest` is moved aside first, deleted after."""
    os.chmod(partial, DIR_MODE)
    if not os.path.lexists(dest):
        os.rename(partial, dest)
        return
    aside = Path(tempfile.mkdtemp(prefix=_old_prefix(dest), dir=dest.parent))
    old = aside / "old"
    os.rename(dest, old)
    try:
        os.rename(partial, dest)
    except OSError:
        os.rename(old, dest)  # put the previous version back
        remove_tree(aside)
        raise
    remove_tree(aside)
