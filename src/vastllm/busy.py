"""Busy marks: a fetch, a pull or the cascade says "do not stop this host now".

Each long job runs inside :func:`busy`, which writes one file ``<what>.<pid>`` (its pid and start
time, JSON) into the busy directory and removes it when the job ends, however it ends. The idle
watcher (:mod:`vastllm.idle`) reads :func:`marks` and never stops or destroys the instance while
one is there. A mark whose process is gone (killed hard) counts for nothing; the directory lives
under /run, so a reboot empties it.

The directory is ``VASTLLM_BUSY_DIR``, else :data:`vastllm.defaults.BUSY_DIR`. A job that cannot
write its mark (no such directory and no right to make it) still runs, with one warning logged.
Standard library only: every extra (fetch, cascade, ...) imports it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from vastllm.defaults import BUSY_DIR

ENV = "VASTLLM_BUSY_DIR"
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
log = logging.getLogger(__name__)


class Mark(NamedTuple):
    what: str
    pid: int
    since: float  # time.time() when it began


def busy_dir() -> Path:
    """Where the marks are: ``VASTLLM_BUSY_DIR`` or /run/vastllm/busy."""
    return Path(os.environ.get(ENV) or BUSY_DIR)


@contextlib.contextmanager
def busy(what: str, directory: Path | None = None) -> Iterator[Path | None]:
    """Mark the host busy with ``what`` (``fetch``, ``ollama-pull``, ``cascade``) while the block
    runs; yields the mark's path, or None when it could not be written."""
    if not _NAME.match(what):
        raise ValueError(f"a busy mark is named with lower-case letters, digits and -: {what!r}")
    folder = directory or busy_dir()
    path = folder / f"{what}.{os.getpid()}"
    written: Path | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"what": what, "pid": os.getpid(), "since": time.time()}))
        written = path
    except OSError as exc:
        log.warning("cannot mark the host busy with %s in %s: %s", what, folder, exc.strerror)
    try:
        yield written
    finally:
        if written is not None:
            with contextlib.suppress(FileNotFoundError):
                written.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def marks(directory: Path | None = None) -> list[Mark]:
    """The marks of jobs still running, oldest first. A file that cannot be read as a mark counts
    (better a host left running than one stopped under a job); a dead process's does not."""
    folder = directory or busy_dir()
    try:
        entries = sorted(p for p in folder.iterdir() if p.is_file())
    except OSError:
        return []
    found: list[Mark] = []
    for entry in entries:
        try:
            data = json.loads(entry.read_text())
            mark = Mark(str(data["what"]), int(data["pid"]), float(data["since"]))
        except FileNotFoundError:
            continue  # the job just ended
        except (OSError, ValueError, KeyError, TypeError):
            found.append(Mark(entry.name, 0, 0.0))
            continue
        if _alive(mark.pid):
            found.append(mark)
    return sorted(found, key=lambda m: m.since)
