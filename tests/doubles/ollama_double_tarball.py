"""Package the Ollama TEST DOUBLE (tests/doubles/ollama_double.py) as an Ollama-layout tarball.

Real Ollama Linux releases are ``ollama-linux-ARCH.tar.zst`` (older: ``.tgz``) holding
``bin/ollama`` and ``lib/ollama/`` (its runners and GPU libraries). The double's tarball has the
same layout so the ``ollama`` role installs it through its controller-file path exactly like a
pre-downloaded release: ``bin/ollama`` is the double (Python 3, standard library only) and
``lib/ollama/`` holds a note saying what it is. Nothing in the product refers to this file.

    python -m tests.doubles.ollama_double_tarball OUT_DIR [--format tar.zst|tgz]

prints ``{"path": ..., "sha256": ...}``; the file name carries a hash of the double's source, so
a rebuild happens only when the double changes.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import tarfile
import time
from pathlib import Path

import zstandard

DOUBLE = Path(__file__).with_name("ollama_double.py")
NOTE = (
    b"TEST DOUBLE of Ollama, packaged by tests/doubles/ollama_double_tarball.py for vastllm's "
    b"tests.\nbin/ollama is tests/doubles/ollama_double.py; no model runs here.\n"
)
FORMATS = ("tar.zst", "tgz")


def _tar_bytes(source: bytes) -> bytes:
    buf = io.BytesIO()
    mtime = int(time.mktime((2025, 1, 1, 0, 0, 0, 0, 0, 0)))
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("bin", "lib", "lib/ollama"):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
            tar.addfile(info)
        for name, data, mode in (
            ("bin/ollama", source, 0o755),
            ("lib/ollama/TEST-DOUBLE.txt", NOTE, 0o644),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, mtime
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build(out_dir: Path, fmt: str = "tar.zst", arch: str = "amd64") -> tuple[Path, str]:
    """Write the tarball (once per version of the double); return its path and sha256."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
    source = DOUBLE.read_bytes()
    tag = hashlib.sha256(source).hexdigest()[:12]
    path = out_dir / tag / f"ollama-linux-{arch}.{fmt}"
    if not path.exists():
        raw = _tar_bytes(source)
        if fmt == "tgz":
            data = gzip.compress(raw, mtime=0)
        else:
            data = zstandard.ZstdCompressor(level=10).compress(raw)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".partial")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--format", default="tar.zst", choices=FORMATS)
    args = parser.parse_args()
    path, digest = build(args.out_dir, args.format)
    print(json.dumps({"path": str(path), "sha256": digest}))


if __name__ == "__main__":
    main()
