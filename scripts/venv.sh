#!/usr/bin/env bash
# Create .venv with the project and its dev tools, from a wheelhouse cached by a hash of the
# dependency lists: a second run (or a fresh clone on the same machine) downloads nothing.
#
#   VASTLLM_CACHE   cache root (default /var/cache/vastllm)
#   VASTLLM_WHEELS  extra find-links dir with local wheels (default /opt/wheels when present)
set -euo pipefail
cd "$(dirname "$0")/.."
# the system Python builds the venv, never the venv being replaced
PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -v '/\.venv/bin$' | paste -sd:)
cache=${VASTLLM_CACHE:-/var/cache/vastllm}
py=${PYTHON:-python3}
local_wheels=${VASTLLM_WHEELS:-/opt/wheels}
log() { printf '[venv] %s\n' "$*" >&2; }

deps_hash=$("$py" - <<'PY'
import hashlib, json, sys, tomllib
p = tomllib.load(open("pyproject.toml", "rb"))
blob = json.dumps([p["build-system"], p["project"].get("dependencies"),
                   p["project"].get("optional-dependencies"), sys.version_info[:2]], sort_keys=True)
print(hashlib.sha256(blob.encode()).hexdigest()[:16])
PY
)
deps_hash=$(printf '%s %s' "$deps_hash" "$(sha256sum scripts/venv.sh | cut -c1-16)" | sha256sum | cut -c1-16)
wheelhouse=$cache/wheelhouse/$deps_hash
find_links=()
[ -d "$local_wheels" ] && find_links=(--find-links "$local_wheels")

if [ ! -f "$wheelhouse/.complete" ]; then
    log "filling wheelhouse $wheelhouse (first run only)"
    mkdir -p "$wheelhouse"
    # async-timeout: test hosts run Debian bookworm's Python 3.11.2, where redis-py needs it
    # (the wheelhouse is also what Molecule hosts install from, with no index).
    "$py" -m pip wheel -q --wheel-dir "$wheelhouse" "${find_links[@]}" \
        ".[dev]" "setuptools>=68" wheel pip "async-timeout>=4.0.3"
    rm -f "$wheelhouse"/vastllm-*.whl
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
.venv/bin/pip install -q --no-index --find-links "$wheelhouse" --upgrade pip setuptools wheel
.venv/bin/pip install -q --no-index --find-links "$wheelhouse" -e ".[dev]"
touch ".venv/.deps-$deps_hash"
# Molecule hosts install from the same wheels, with no index
echo "$wheelhouse" > .venv/wheelhouse-path
log "done"
