"""Decide, member by member, whether a tar entry is safe to write under the target directory.

Checked explicitly (Python's `tarfile.data_filter` runs as well, as a second opinion):
absolute names, `..` components, device files and FIFOs, setuid/setgid bits, symlinks whose
target leaves the directory, hard links to anything but an earlier regular member, and the
marker's reserved name. Modes are normalised to 0644 / 0755.
"""

from __future__ import annotations

import posixpath
import stat
import tarfile
from dataclasses import dataclass
from enum import StrEnum

from vastllm.fetch.errors import UnsafeArchive
from vastllm.fetch.marker import MARKER_NAME

FILE_MODE = 0o644
EXEC_MODE = 0o755
DIR_MODE = 0o755


class EntryKind(StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"


@dataclass(frozen=True)
class Entry:
    """A checked member: where it goes (relative POSIX path) and what it is."""

    kind: EntryKind
    path: str
    mode: int
    link: str | None = None  # symlink target as stored, or hard-link source path


def safe_relpath(name: str, what: str = "member") -> str:
    """Normalise an archive (or S3) name to a relative POSIX path, or raise UnsafeArchive.

    Returns "" for the archive root (`.` / `./`).
    """
    if "\x00" in name:
        raise UnsafeArchive(f"refusing {what} {name!r}: NUL byte in the name")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchive(f"refusing {what} {name!r}: absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"refusing {what} {name!r}: '..' path component")
    return "/".join(parts)


def _symlink_target_inside(path: str, target: str) -> bool:
    if target.startswith("/"):
        return False
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    return resolved != ".." and not resolved.startswith("../") and not resolved.startswith("/")


def check_member(member: tarfile.TarInfo, root: str) -> Entry | None:
    """Check one member; None means "nothing to write" (the root directory itself)."""
    path = safe_relpath(member.name)
    if not path:
        if member.isdir():
            return None
        raise UnsafeArchive(f"refusing member {member.name!r}: a non-directory at the root")
    if path == MARKER_NAME or path.startswith(MARKER_NAME + "/"):
        raise UnsafeArchive(f"refusing member {member.name!r}: {MARKER_NAME} is reserved")
    if member.ischr() or member.isblk():
        raise UnsafeArchive(f"refusing device file {member.name!r}: only files and directories")
    if member.isfifo():
        raise UnsafeArchive(f"refusing FIFO {member.name!r}: only files and directories")
    if member.mode & (stat.S_ISUID | stat.S_ISGID):
        raise UnsafeArchive(f"refusing {member.name!r}: setuid/setgid bit set")
    entry: Entry
    if member.issym():
        if not _symlink_target_inside(path, member.linkname):
            raise UnsafeArchive(
                f"refusing symlink {member.name!r} -> {member.linkname!r}: "
                "target is outside the extraction directory"
            )
        entry = Entry(EntryKind.SYMLINK, path, FILE_MODE, member.linkname)
    elif member.islnk():
        source = safe_relpath(member.linkname, "hard link target")
        if not source:
            raise UnsafeArchive(f"refusing hard link {member.name!r} to the directory root")
        entry = Entry(EntryKind.HARDLINK, path, FILE_MODE, source)
    elif member.isdir():
        entry = Entry(EntryKind.DIR, path, DIR_MODE)
    elif member.isreg():
        mode = EXEC_MODE if member.mode & 0o111 else FILE_MODE
        entry = Entry(EntryKind.FILE, path, mode)
    else:
        raise UnsafeArchive(f"refusing {member.name!r}: unsupported member type {member.type!r}")
    # second opinion where Python has it (3.11.4+; Debian bookworm ships 3.11.2): our checks
    # above already cover what it knows about
    data_filter = getattr(tarfile, "data_filter", None)
    if data_filter is not None:
        try:
            data_filter(member, root)
        except tarfile.FilterError as e:
            raise UnsafeArchive(f"refusing {member.name!r}: {e}") from None
    return entry
