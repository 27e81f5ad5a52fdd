"""`fetch`, `verify` and `repair`: the three things a caller (CLI, Ansible, playbooks) asks for."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vastllm.fetch.archive import stream_archive
from vastllm.fetch.diskspace import (
    FreeSpaceFn,
    ensure_free_space,
    free_bytes,
    mount_point,
    needed_bytes,
)
from vastllm.fetch.errors import (
    ChecksumMismatch,
    CorruptArchive,
    DestinationError,
    DiskFull,
    S3NotFound,
    Unverified,
    UsageError,
)
from vastllm.fetch.extract import prepare_parent
from vastllm.fetch.install import (
    check_destination,
    dest_lock,
    make_partial_dir,
    remove_stale,
    remove_tree,
    swap_into_place,
)
from vastllm.fetch.layout import detect_layout, require_complete
from vastllm.fetch.marker import MARKER_NAME, Marker, now_iso, read_marker, write_marker
from vastllm.fetch.objects import ObjectInfo, get_small_object, head_object, list_prefix
from vastllm.fetch.prefix import (
    SUMS_NAME,
    check_against,
    download_file,
    listing_fingerprint,
    parse_sha256sums,
    relative_files,
)
from vastllm.fetch.progress import ProgressFn, ProgressTracker
from vastllm.fetch.ranged import TransferOptions
from vastllm.fetch.s3client import S3Client, S3Options, make_client
from vastllm.fetch.s3url import S3Url, SourceKind, parse_s3_url
from vastllm.fetch.verify import VerifyReport, verify_installed

log = logging.getLogger("vastllm.fetch")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class FetchResult:
    """What a run did. `bytes` were downloaded by this run; `extracted_bytes` are installed."""

    changed: bool
    dest: str
    source: str
    action: str  # "none" | "fetched" | "repaired" | "verified" | "would-fetch" | "would-repair"
    layout: dict[str, Any] = field(default_factory=dict)
    bytes: int = 0
    extracted_bytes: int = 0
    seconds: float = 0.0
    sha256: str | None = None
    sha256_verified: bool = False
    repaired: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "dest": self.dest,
            "source": self.source,
            "action": self.action,
            "layout": self.layout,
            "bytes": self.bytes,
            "extracted_bytes": self.extracted_bytes,
            "seconds": round(self.seconds, 3),
            "sha256": self.sha256,
            "sha256_verified": self.sha256_verified,
            "repaired": self.repaired,
            "problems": self.problems,
        }


def _expected_sha256(arg: str | None, info: ObjectInfo | None) -> dict[str, str]:
    expected: dict[str, str] = {}
    if arg:
        expected["--sha256"] = arg.strip().lower()
    if info is not None and info.expected_sha256:
        expected["x-amz-meta-sha256"] = info.expected_sha256
    return expected


def _require_reference(src: S3Url, found: bool, allow_unverified: bool) -> None:
    """Refuse a source with no sha256 to check it against, unless unverified is allowed."""
    if found or allow_unverified:
        return
    raise Unverified(
        f"no sha256 to check {src} against, so nothing was fetched: give it with --sha256 "
        "(Ansible: model_fetch_sha256), upload the object with x-amz-meta-sha256 metadata "
        "(aws s3 cp --metadata sha256=...), or put a SHA256SUMS file of every file under a "
        "prefix; or pass --allow-unverified (Ansible: model_fetch_allow_unverified: true) to "
        "install it unchecked"
    )


def _check_sha256(actual: str, expected: dict[str, str], url: S3Url) -> None:
    for source, value in expected.items():
        if value != actual:
            raise ChecksumMismatch(
                f"sha256 mismatch for {url}: expected {value} ({source}), got {actual}; "
                "nothing was installed"
            )


def _disk_full(error: OSError, dest: Path) -> DiskFull:
    return DiskFull(
        f"disk full on {mount_point(dest.parent)} while writing {dest}: the partial files were "
        f"removed and what was there before is untouched; free space or pass a bigger disk "
        f"({os.strerror(error.errno or errno.ENOSPC)})"
    )


class _Run:
    """One fetch/repair of `url` into `dest` (the lock is held by the caller)."""

    def __init__(
        self,
        src: S3Url,
        dest: Path,
        client: S3Client,
        *,
        transfer: TransferOptions,
        progress: ProgressFn | None,
        free_space: FreeSpaceFn,
        started: float,
        check: bool = False,
        allow_unverified: bool = False,
    ) -> None:
        self.src = src
        self.kind = src.kind
        self.dest = dest
        self.client = client
        self.transfer = transfer
        self.progress = progress
        self.free_space = free_space
        self.started = started
        self.check = check  # dry run: decide, pre-check the disk, change nothing
        self.allow_unverified = allow_unverified  # install what has no sha256 to check against

    def result(self, changed: bool, action: str, **extra: Any) -> FetchResult:
        marker = read_marker(self.dest)
        layout = detect_layout(self.dest).to_json() if self.dest.is_dir() else {}
        return FetchResult(
            changed=changed,
            dest=str(self.dest),
            source=str(self.src),
            action=action,
            layout=layout,
            extracted_bytes=marker.extracted_bytes if marker else 0,
            sha256=marker.sha256 if marker else None,
            seconds=time.monotonic() - self.started,
            **extra,
        )

    def _install(self, build: Callable[[Path], int]) -> int:
        """Run `build(partial)` in a fresh partial dir (removed afterwards, whatever happens).

        `build` renames the partial dir into place itself once everything checks out.
        """
        partial = make_partial_dir(self.dest)
        try:
            return build(partial)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise _disk_full(e, self.dest) from None
            raise
        finally:
            if partial.exists():
                remove_tree(partial)

    def _finish(self, partial: Path, marker: Marker) -> None:
        layout = detect_layout(partial)
        require_complete(layout, str(self.src))
        write_marker(partial, replace(marker, layout=layout.to_json(), fetched_at=now_iso()))
        swap_into_place(partial, self.dest)

    # -- tarballs --------------------------------------------------------------------------
    def tarball(
        self, sha256: str | None, force: bool, repair_only: list[str] | None
    ) -> FetchResult:
        info = head_object(self.client, self.src)
        expected = _expected_sha256(sha256, info)
        _require_reference(self.src, bool(expected), self.allow_unverified)
        marker = read_marker(self.dest)
        same = (
            marker is not None
            and marker.source == str(self.src)
            and marker.etag == info.etag
            and marker.size == info.size
            and all(v == marker.sha256 for v in expected.values())
        )
        if marker is not None and same:
            damaged = repair_only
            if damaged is None:
                damaged = verify_installed(self.dest, marker, quick=True).damaged
            if not damaged:
                return self.result(False, "none", sha256_verified=bool(expected))
            if self.check:
                return self.result(True, "would-repair", repaired=sorted(damaged))
            return self._repair_tarball(info, marker, damaged, expected)
        check_destination(self.dest, force or marker is not None)
        need, how = needed_bytes(self.kind, info)
        ensure_free_space(self.dest.parent, need, how, self.free_space)
        if self.check:
            return self.result(True, "would-fetch")
        remove_stale(self.dest)
        tracker = ProgressTracker("download", info.size, self.progress)

        def build(partial: Path) -> int:
            streamed = stream_archive(
                self.client, info, self.kind, partial, transfer=self.transfer, tracker=tracker
            )
            tracker.finish()
            _check_sha256(streamed.sha256, expected, self.src)
            self._finish(
                partial,
                Marker(
                    str(self.src),
                    self.kind.value,
                    info.etag,
                    info.size,
                    streamed.sha256,
                    streamed.records,
                ),
            )
            return streamed.bytes

        downloaded = self._install(build)
        return self.result(True, "fetched", bytes=downloaded, sha256_verified=bool(expected))

    def _repair_tarball(
        self, info: ObjectInfo, marker: Marker, damaged: list[str], expected: dict[str, str]
    ) -> FetchResult:
        wanted = {r.path: r for r in marker.files if r.path in set(damaged)}
        need = sum(r.size for r in wanted.values())
        ensure_free_space(self.dest, need, "size of the damaged files", self.free_space)
        if marker.sha256:
            expected = {**expected, "marker": marker.sha256}
        tracker = ProgressTracker("repair", info.size, self.progress)

        def build(partial: Path) -> int:
            streamed = stream_archive(
                self.client,
                info,
                self.kind,
                partial,
                transfer=self.transfer,
                tracker=tracker,
                only=set(wanted),
                link_fallback=self.dest,
            )
            tracker.finish()
            _check_sha256(streamed.sha256, expected, self.src)
            got = {r.path: r for r in streamed.records}
            for path, want in wanted.items():
                have = got.get(path)
                if have is None:
                    raise CorruptArchive(f"{path!r} is in the marker but not in {self.src}")
                if have.link != want.link or have.sha256 != want.sha256:
                    raise ChecksumMismatch(f"{path!r} in {self.src} differs from the marker")
            self._move_in(partial, sorted(wanted))
            return streamed.bytes

        downloaded = self._install(build)
        return self.result(
            True,
            "repaired",
            bytes=downloaded,
            repaired=sorted(wanted),
            sha256_verified=True,
        )

    def _move_in(self, partial: Path, paths: list[str]) -> None:
        for path in paths:
            target = prepare_parent(self.dest, path)
            os.replace(partial / path, target)

    # -- prefixes --------------------------------------------------------------------------
    def prefix(self, force: bool, repair_only: list[str] | None) -> FetchResult:
        files = relative_files(list_prefix(self.client, self.src), self.src)
        _require_reference(self.src, SUMS_NAME in files, self.allow_unverified)
        fingerprint = listing_fingerprint(files)
        marker = read_marker(self.dest)
        if marker is not None and marker.source == str(self.src) and marker.etag == fingerprint:
            damaged = repair_only
            if damaged is None:
                damaged = verify_installed(self.dest, marker, quick=True).damaged
            if not damaged:
                return self.result(False, "none", sha256_verified=SUMS_NAME in files)
            if self.check:
                return self.result(True, "would-repair", repaired=sorted(damaged))
            return self._repair_prefix(files, marker, damaged)
        check_destination(self.dest, force or marker is not None)
        total = sum(i.size for i in files.values())
        ensure_free_space(self.dest.parent, total, "sum of the file sizes", self.free_space)
        if self.check:
            return self.result(True, "would-fetch")
        remove_stale(self.dest)
        sums = self._sums(files)
        tracker = ProgressTracker("download", total, self.progress)

        def build(partial: Path) -> int:
            records = []
            for rel, info in files.items():
                record = download_file(
                    self.client, info, partial, rel, transfer=self.transfer, tracker=tracker
                )
                check_against(record, sums.get(rel), SUMS_NAME, info.url)
                records.append(record)
            tracker.finish()
            self._finish(
                partial, Marker(str(self.src), self.kind.value, fingerprint, total, None, records)
            )
            return total

        downloaded = self._install(build)
        return self.result(True, "fetched", bytes=downloaded, sha256_verified=bool(sums))

    def _sums(self, files: dict[str, ObjectInfo]) -> dict[str, str]:
        if SUMS_NAME not in files:
            return {}
        text = get_small_object(self.client, files[SUMS_NAME]).decode("utf-8", "replace")
        sums = parse_sha256sums(text)
        absent = sorted(set(sums) - set(files))
        if absent:
            raise S3NotFound(
                f"{SUMS_NAME} in {self.src} lists files that are not there: {', '.join(absent[:5])}"
            )
        unlisted = sorted(set(files) - set(sums) - {SUMS_NAME})
        if unlisted and not self.allow_unverified:
            raise Unverified(
                f"{SUMS_NAME} in {self.src} does not list {', '.join(unlisted[:5])}"
                f"{' and more' if len(unlisted) > 5 else ''}, so nothing was fetched: add them "
                "to it, or pass --allow-unverified (Ansible: model_fetch_allow_unverified: true)"
                " to install them unchecked"
            )
        return sums

    def _repair_prefix(
        self, files: dict[str, ObjectInfo], marker: Marker, damaged: list[str]
    ) -> FetchResult:
        wanted = {r.path: r for r in marker.files if r.path in set(damaged)}
        need = sum(r.size for r in wanted.values())
        ensure_free_space(self.dest, need, "size of the damaged files", self.free_space)
        tracker = ProgressTracker("repair", need, self.progress)

        def build(partial: Path) -> int:
            for rel, want in wanted.items():
                record = download_file(
                    self.client, files[rel], partial, rel, transfer=self.transfer, tracker=tracker
                )
                check_against(record, want.sha256, "marker", files[rel].url)
            tracker.finish()
            self._move_in(partial, sorted(wanted))
            return need

        downloaded = self._install(build)
        return self.result(
            True, "repaired", bytes=downloaded, repaired=sorted(wanted), sha256_verified=True
        )


def _validate_sha256(value: str | None) -> None:
    if value is not None and not _HEX64.match(value.strip().lower()):
        raise UsageError("--sha256 must be 64 hexadecimal characters")


def fetch(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    s3: S3Options | None = None,
    transfer: TransferOptions | None = None,
    progress: ProgressFn | None = None,
    force: bool = False,
    check: bool = False,
    allow_unverified: bool = False,
    client: S3Client | None = None,
    free_space: FreeSpaceFn = free_bytes,
) -> FetchResult:
    """Install `url` (tarball or prefix) at `dest`; do nothing when the marker says it is there.

    The bytes are checked against a sha256: `sha256`, the object's `x-amz-meta-sha256`, or (a
    prefix) its SHA256SUMS, which must list every file. A source with none raises
    :class:`Unverified` before anything is downloaded, unless `allow_unverified`.

    A run whose marker matches the remote object (one HEAD / LIST) returns changed=False after
    a cheap size check of every file; files found missing or resized are re-fetched.
    `force` replaces a non-empty `dest` that this tool did not install. `check` is a dry run
    (Ansible check mode): it reports what would change (action "would-fetch"/"would-repair")
    after the HEAD and the free-disk pre-check, and writes nothing.
    """
    return _run(
        url,
        dest,
        sha256=sha256,
        s3=s3,
        transfer=transfer,
        progress=progress,
        force=force,
        check=check,
        allow_unverified=allow_unverified,
        client=client,
        free_space=free_space,
        repairing=False,
    )


def repair(
    url: str | None,
    dest: str | Path,
    *,
    sha256: str | None = None,
    s3: S3Options | None = None,
    transfer: TransferOptions | None = None,
    progress: ProgressFn | None = None,
    check: bool = False,
    allow_unverified: bool = False,
    client: S3Client | None = None,
    free_space: FreeSpaceFn = free_bytes,
) -> FetchResult:
    """Verify `dest` fully (sha256) and re-fetch only what is missing or corrupt.

    `url` defaults to the marker's source. If the remote object changed since it was
    installed, everything is fetched again. A re-fetch needs a sha256 as :func:`fetch` does.
    """
    marker = read_marker(Path(dest).absolute())
    if marker is None:
        raise DestinationError(f"{dest} has no {MARKER_NAME}: nothing to repair; run a fetch")
    if url is not None and str(parse_s3_url(url)) != marker.source:
        raise UsageError(f"{dest} was installed from {marker.source}, not {url}")
    return _run(
        marker.source,
        dest,
        sha256=sha256,
        s3=s3,
        transfer=transfer,
        progress=progress,
        force=False,
        check=check,
        allow_unverified=allow_unverified,
        client=client,
        free_space=free_space,
        repairing=True,
    )


def _verified(src: S3Url, dest: Path, marker: Marker, started: float) -> FetchResult:
    return FetchResult(
        changed=False,
        dest=str(dest),
        source=str(src),
        action="verified",
        layout=detect_layout(dest).to_json(),
        extracted_bytes=marker.extracted_bytes,
        sha256=marker.sha256,
        seconds=time.monotonic() - started,
    )


def _run(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None,
    s3: S3Options | None,
    transfer: TransferOptions | None,
    progress: ProgressFn | None,
    force: bool,
    check: bool,
    allow_unverified: bool,
    client: S3Client | None,
    free_space: FreeSpaceFn,
    repairing: bool,
) -> FetchResult:
    started = time.monotonic()
    src = parse_s3_url(url)
    kind = src.kind
    _validate_sha256(sha256)
    if sha256 and kind is SourceKind.PREFIX:
        raise UsageError("--sha256 applies to a tarball; a prefix is checked with its SHA256SUMS")
    transfer = transfer or TransferOptions()
    dest = Path(dest).absolute()
    with contextlib.nullcontext() if check else dest_lock(dest):  # a dry run writes nothing
        repair_only: list[str] | None = None
        if repairing:
            marker = read_marker(dest)
            if marker is None:
                raise DestinationError(f"{dest} has no {MARKER_NAME}: nothing to repair")
            report = _verify(dest, marker, False, progress)
            if report.ok:
                return _verified(src, dest, marker, started)
            repair_only = report.damaged
            log.info("repairing %d file(s) in %s", len(repair_only), dest)
        if client is None:
            client = make_client(s3 or S3Options(), transfer.workers + 2)
        run = _Run(
            src,
            dest,
            client,
            transfer=transfer,
            progress=progress,
            free_space=free_space,
            started=started,
            check=check,
            allow_unverified=allow_unverified,
        )
        if kind is SourceKind.PREFIX:
            return run.prefix(force, repair_only)
        return run.tarball(sha256, force, repair_only)


def _verify(dest: Path, marker: Marker, quick: bool, progress: ProgressFn | None) -> VerifyReport:
    tracker = ProgressTracker("verify", marker.extracted_bytes, progress)
    report = verify_installed(dest, marker, quick=quick, tracker=tracker)
    if not quick:
        tracker.finish()
    return report


def verify(
    dest: str | Path, *, quick: bool = False, progress: ProgressFn | None = None
) -> VerifyReport:
    """Check the files at `dest` against its marker (no network): sizes, and sha256 unless quick.

    Raises DestinationError when `dest` has no marker.
    """
    dest = Path(dest).absolute()
    marker = read_marker(dest)
    if marker is None:
        raise DestinationError(f"{dest} has no {MARKER_NAME}: not installed by vastllm.fetch")
    return _verify(dest, marker, quick, progress)
