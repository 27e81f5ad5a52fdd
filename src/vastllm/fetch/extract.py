"""Write the members of a streamed tar archive under a directory, safely, hashing each file."""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, cast

from vastllm.fetch.errors import CorruptArchive, UnsafeArchive
from vastllm.fetch.forward import ForwardReader
from vastllm.fetch.marker import FileRecord
from vastllm.fetch.pipeline import BackgroundSink
from vastllm.fetch.tarsafe import DIR_MODE, Entry, EntryKind, check_member

# Member data moves in pieces of 1 MiB - 4 KiB: page-aligned, but off the 1 MiB grid. Writes at
# 1 MiB-aligned offsets make ext4 with large folios (Linux >= 6.16) take high-order page-cache
# folios, which measured 2-3x the system time of the same bytes at other offsets (a .tar.zst
# fetch of 260 MiB: 1.6 s -> 1.15 s; bench/RESULTS.md). Elsewhere the size makes no difference.
COPY_SIZE = 1024 * 1024 - 4096
BACKGROUND_MIN = 4 * 1024 * 1024  # files this big are hashed and written on a thread
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def prepare_parent(root: Path, rel: str) -> Path:
    """Create the parent directories of `rel` under `root`; refuse to go through a symlink."""
    parts = rel.split("/")
    current = root
    for part in parts[:-1]:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current, DIR_MODE)
            os.chmod(current, DIR_MODE)
            continue
        if stat.S_ISLNK(st.st_mode):
            raise UnsafeArchive(f"refusing {rel!r}: its parent {current.name!r} is a symlink")
        if not stat.S_ISDIR(st.st_mode):
            raise CorruptArchive(f"{rel!r}: parent {current.name!r} is not a directory")
    return current / parts[-1]


def _clear(path: Path, rel: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise CorruptArchive(f"{rel!r} would replace a directory of the same name")
    os.unlink(path)


def hash_file(path: Path) -> tuple[int, str]:
    """Size and sha256 of a file on disk."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(COPY_SIZE):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def inside(root: Path, path: Path) -> bool:
    """Whether `path`, with every symlink resolved, is `root` or below it."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root + os.sep)


def _copy_data(
    archive: tarfile.TarFile,
    source: ForwardReader,
    member: tarfile.TarInfo,
    consume: Callable[[bytes], None],
) -> int:
    """Hand the member's bytes to `consume`, in order; return how many there were."""
    done = 0
    if member.sparse is not None:  # rare (tar -S): let tarfile map the holes
        data = archive.extractfile(member)
        if data is None:  # pragma: no cover - sparse members are regular files
            return 0
        while chunk := data.read(COPY_SIZE):
            consume(chunk)
            done += len(chunk)
        return done
    source.seek(member.offset_data)
    while done < member.size:
        chunk = source.read_some(min(member.size - done, COPY_SIZE))
        if not chunk:
            break
        consume(chunk)
        done += len(chunk)
    return done


class TarExtractor:
    """Extract a tar stream under `root`.

    `only`: when set, write just these paths (repair); every member is still checked.
    `link_fallback`: where hard-link sources that were not re-extracted can be found.
    """

    def __init__(
        self, root: Path, only: set[str] | None = None, link_fallback: Path | None = None
    ) -> None:
        self.root = root
        self.only = only
        self.link_fallback = link_fallback
        self.records: dict[str, FileRecord] = {}

    def run(self, stream: BinaryIO, name: str) -> list[FileRecord]:
        source = ForwardReader(stream, name)
        try:
            with tarfile.open(fileobj=cast(BinaryIO, source), mode="r:") as archive:
                for member in archive:
                    entry = check_member(member, str(self.root))
                    if entry is None or not self._wanted(entry):
                        continue
                    self._write(archive, source, member, entry)
        except (tarfile.ReadError, tarfile.StreamError, tarfile.HeaderError, EOFError) as e:
            raise CorruptArchive(f"{name}: not a readable tar archive ({e})") from None
        self._check_symlinks()
        return list(self.records.values())

    def _wanted(self, entry: Entry) -> bool:
        if self.only is None:
            return True
        return entry.kind is not EntryKind.DIR and entry.path in self.only

    def _write(
        self,
        archive: tarfile.TarFile,
        source: ForwardReader,
        member: tarfile.TarInfo,
        entry: Entry,
    ) -> None:
        target = prepare_parent(self.root, entry.path)
        if entry.kind is EntryKind.DIR:
            self._make_dir(target, entry)
            return
        _clear(target, entry.path)
        self.records.pop(entry.path, None)
        if entry.kind is EntryKind.FILE:
            self.records[entry.path] = self._write_file(archive, source, member, entry, target)
        elif entry.kind is EntryKind.SYMLINK:
            link = entry.link or ""
            os.symlink(link, target)
            self.records[entry.path] = FileRecord(entry.path, 0, link=link)
        else:
            self.records[entry.path] = self._hard_link(entry, target)

    def _make_dir(self, target: Path, entry: Entry) -> None:
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            os.mkdir(target, DIR_MODE)
        else:
            if not stat.S_ISDIR(st.st_mode):  # a symlink or a file is in the way
                raise UnsafeArchive(f"refusing directory {entry.path!r}: a non-directory is there")
        os.chmod(target, DIR_MODE)

    def _write_file(
        self,
        archive: tarfile.TarFile,
        source: ForwardReader,
        member: tarfile.TarInfo,
        entry: Entry,
        target: Path,
    ) -> FileRecord:
        digest = hashlib.sha256()
        fd = os.open(target, _OPEN_FLAGS, 0o600)
        with os.fdopen(fd, "wb", buffering=0) as out:

            def consume(chunk: bytes) -> None:
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[out.write(view) or 0 :]

            if member.size < BACKGROUND_MIN:
                size = _copy_data(archive, source, member, consume)
            else:  # hash + write on another thread while this one decompresses
                sink = BackgroundSink(consume, depth=8, name="tar-writer")
                try:
                    size = _copy_data(archive, source, member, sink.put)
                finally:
                    sink.close()
        if size != member.size:
            raise CorruptArchive(f"{entry.path!r}: archive ends inside this member")
        os.chmod(target, entry.mode)
        os.utime(target, (member.mtime, member.mtime))
        return FileRecord(entry.path, size, digest.hexdigest())

    def _hard_link(self, entry: Entry, target: Path) -> FileRecord:
        link = entry.link or ""
        base = self.root
        record = self.records.get(link)
        if record is None or record.link is not None:
            base = self.link_fallback or self.root
            record = None
        source = base / link
        try:
            st = os.lstat(source)
        except FileNotFoundError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode) or not inside(base, source):
            raise UnsafeArchive(
                f"refusing hard link {entry.path!r} -> {link!r}: "
                "the target is not a regular file extracted earlier"
            )
        os.link(source, target, follow_symlinks=False)
        if record is None:
            size, sha = hash_file(target)
            return FileRecord(entry.path, size, sha)
        return FileRecord(entry.path, record.size, record.sha256)

    def _check_symlinks(self) -> None:
        for record in self.records.values():
            if record.link is not None and not inside(self.root, self.root / record.path):
                raise UnsafeArchive(
                    f"refusing symlink {record.path!r} -> {record.link!r}: "
                    "it resolves outside the extraction directory"
                )
