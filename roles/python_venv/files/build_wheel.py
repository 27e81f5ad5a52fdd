#!/usr/bin/env python3
"""Build this checkout's wheel once, safely when several runs build at the same time.

    build_wheel.py REPO WHEEL

WHEEL is the path the wheel must have (named by a hash of the sources). Runs of site.yml side
by side (two fleets, parallel test scenarios) share REPO's in-tree setuptools build directory,
so the build holds a lock on REPO/.cache/dist/.build.lock, looks again for WHEEL under it, and
moves the finished wheel into place with one rename: no run ever copies a half-written wheel.
Prints "built WHEEL" or "present WHEEL". Standard library only (the controller may be a Mac).
"""

import fcntl
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def main(repo: Path, wheel: Path) -> int:
    locks = repo / ".cache" / "dist"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if wheel.is_file():
            print(f"present {wheel}")
            return 0
        wheel.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=wheel.parent, prefix=".build-") as tmp:
            subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                 "--quiet", "--wheel-dir", tmp, str(repo)],
                check=True,
            )
            built = Path(tmp) / wheel.name
            if not built.is_file():
                found = ", ".join(p.name for p in Path(tmp).iterdir()) or "nothing"
                print(f"pip built {found}, not {wheel.name}", file=sys.stderr)
                return 1
            os.replace(built, wheel)
    print(f"built {wheel}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: build_wheel.py REPO WHEEL", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
