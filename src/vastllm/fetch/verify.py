"""Check installed files against the marker: missing, wrong size, wrong sha256."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from vastllm.fetch.marker import FileRecord, Marker
from vastllm.fetch.progress import ProgressTracker

COPY_SIZE = 1024 * 1024


@dataclass
class VerifyReport:
    """The outcome of a check: `missing` and `corrupt` are relative paths, `problems` text."""

    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    checked: int = 0
    bytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.missing and not self.corrupt

    @property
    def damaged(self) -> list[str]:
        return sorted(set(self.missing) | set(self.corrupt))


def _sha256(path: Path, tracker: ProgressTracker | None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(COPY_SIZE):
            digest.update(chunk)
            if tracker is not None:
                tracker.add(len(chunk))
    return digest.hexdigest()


def _check(dest: Path, record: FileRecord, quick: bool, tracker: ProgressTracker | None) -> str:
    """ "" when fine, else why (starting with "missing" or "corrupt")."""
    path = dest / record.path
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "missing"
    except NotADirectoryError:
        return "missing (a parent is not a directory)"
    if record.link is not None:
        if not stat.S_ISLNK(st.st_mode):
            return "corrupt (not a symlink any more)"
        if os.readlink(path) != record.link:
            return f"corrupt (symlink points to {os.readlink(path)!r}, expected {record.link!r})"
        return ""
    if not stat.S_ISREG(st.st_mode):
        return "corrupt (not a regular file)"
    if st.st_size != record.size:
        return f"corrupt (size {st.st_size}, expected {record.size})"
    if not quick and record.sha256 and _sha256(path, tracker) != record.sha256:
        return "corrupt (sha256 differs from the marker)"
    return ""


def verify_installed(
    dest: Path, marker: Marker, quick: bool = False, tracker: ProgressTracker | None = None
) -> VerifyReport:
    """Compare every file the marker lists with what is on disk (`quick`: sizes only)."""
    report = VerifyReport()
    for record in marker.files:
        why = _check(dest, record, quick, tracker)
        report.checked += 1
        if not why:
            report.bytes += record.size
            continue
        (report.missing if why.startswith("missing") else report.corrupt).append(record.path)
        report.problems.append(f"{record.path}: {why}")
    return report
