#!/usr/bin/env python3
"""Time a converged re-run: `vastllm up` against the demo host with nothing to change.

    make demo                                  # once: the demo host, converged
    .venv/bin/python bench/converge_bench.py [--runs 3] [--inventory PATH]

Each run is the CLI's own path (ansible-runner over SSH, site.yml on the GPU host, the tunnel
on this workstation). Prints wall seconds per run and the recap of the last, which must say
changed=0 (else the host was not converged and the figure is not a re-run's).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("VASTLLM_STATE", Path.home() / ".cache" / "vastllm"))
# the CLI's recap table: "host  ok  changed  failed  unreachable  skipped"
_RECAP = re.compile(r"^\s*(\S+)\s+\d+\s+(\d+)\s+\d+\s+\d+\s+\d+\s*$", re.MULTILINE)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--inventory", type=Path, default=STATE / "demo" / "hosts.yml")
    ap.add_argument("--proxy-port", type=int, default=8082, help="the demo tunnel's local port")
    args = ap.parse_args()
    if not args.inventory.exists():
        print(f"no demo inventory at {args.inventory}: run `make demo` first", file=sys.stderr)
        return 2
    forwards = (
        f'tunnel_forwards=[{{"name": "proxy", "remote_port": 8082, '
        f'"local_port": {args.proxy_port}}}]'
    )
    cmd = [str(REPO / ".venv" / "bin" / "vastllm"), "-i", str(args.inventory), "-e", forwards, "up"]
    env = dict(
        os.environ, PY_COLORS="0", ANSIBLE_FORCE_COLOR="0", ANSIBLE_CONFIG=str(REPO / "ansible.cfg")
    )
    times: list[float] = []
    output = ""
    for run in range(1, args.runs + 1):
        started = time.monotonic()
        proc = subprocess.run(
            cmd,
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        times.append(time.monotonic() - started)
        output = proc.stdout + proc.stderr
        changed = dict(_RECAP.findall(output))
        print(f"run {run}: {times[-1]:.1f} s, rc {proc.returncode}, changed per host {changed}")
        if proc.returncode != 0:
            print(output[-3000:], file=sys.stderr)
            return 1
    print(
        f"median {statistics.median(times):.1f} s over {len(times)} runs "
        f"(min {min(times):.1f}, max {max(times):.1f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
