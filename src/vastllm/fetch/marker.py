"""The marker file `.vastllm-fetch.json`: what was installed, from where, file by file."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MARKER_NAME = ".vastllm-fetch.json"
MARKER_VERSION = 1


@dataclass(frozen=True)
class FileRecord:
    """One installed path: a regular file (size, sha256, ETag for a prefix) or a symlink."""

    path: str
    size: int
    sha256: str | None = None
    etag: str | None = None
    link: str | None = None  # set for symlinks: the stored target

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Marker:
    """Everything needed to answer "is this already installed?" and "what is damaged?"."""

    source: str
    kind: str
    etag: str
    size: int
    sha256: str | None
    files: list[FileRecord]
    layout: dict[str, Any] = field(default_factory=dict)
    fetched_at: str = ""
    version: int = MARKER_VERSION

    @property
    def extracted_bytes(self) -> int:
        return sum(f.size for f in self.files if f.link is None)

    def to_json(self) -> dict[str, Any]:
        return {
            "tool": "vastllm.fetch",
            "version": self.version,
            "source": self.source,
            "kind": self.kind,
            "etag": self.etag,
            "size": self.size,
            "sha256": self.sha256,
            "extracted_bytes": self.extracted_bytes,
            "fetched_at": self.fetched_at,
            "layout": self.layout,
            "files": [f.to_json() for f in self.files],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Marker:
        return cls(
            source=str(data["source"]),
            kind=str(data["kind"]),
            etag=str(data["etag"]),
            size=int(data["size"]),
            sha256=data.get("sha256"),
            files=[
                FileRecord(
                    path=str(f["path"]),
                    size=int(f.get("size", 0)),
                    sha256=f.get("sha256"),
                    etag=f.get("etag"),
                    link=f.get("link"),
                )
                for f in data["files"]
            ],
            layout=dict(data.get("layout", {})),
            fetched_at=str(data.get("fetched_at", "")),
            version=int(data.get("version", MARKER_VERSION)),
        )


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_marker(directory: Path) -> Marker | None:
    """The marker in `directory`, or None when absent or unreadable (treated as "not ours")."""
    try:
        data = json.loads((directory / MARKER_NAME).read_text(encoding="utf-8"))
        return Marker.from_json(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_marker(directory: Path, marker: Marker) -> None:
    """Write the marker atomically (temp file, fsync, rename)."""
    final = directory / MARKER_NAME
    temp = directory / (MARKER_NAME + ".tmp")
    data = json.dumps(marker.to_json(), indent=2, sort_keys=False) + "\n"
    with open(temp, "w", encoding="utf-8") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(temp, 0o644)
    os.replace(temp, final)
