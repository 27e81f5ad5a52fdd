#!/usr/bin/env bash
# Make this Debian machine ready for `make test` / `make demo`: Debian packages, a running
# Docker daemon. Idempotent and quiet when everything is already there. Needs root.
set -euo pipefail
log() { printf '[setup] %s\n' "$*" >&2; }

# the one list of the machine's Debian packages (package: commands), shared with the preflight
mapfile -t packages < <(sed -n 's/^\([a-z0-9][a-z0-9.+-]*\):.*/\1/p' \
    "$(dirname "$0")/debian-packages.txt")

if [ "$(id -u)" != 0 ]; then
    echo "scripts/host-setup.sh needs root (it installs Debian packages and starts dockerd)" >&2
    exit 1
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # the Debian packages start their daemons where they can; we start our own on test ports
    for svc in redis-server supervisor; do
        if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
            systemctl disable --now "$svc" >/dev/null 2>&1 || true
        fi
    done
fi

if ! docker info >/dev/null 2>&1; then
    if pgrep -x dockerd >/dev/null; then
        log "waiting for the running dockerd"
    else
        log "starting dockerd"
        mkdir -p /var/log
        nohup dockerd >/var/log/vastllm-dockerd.log 2>&1 &
    fi
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { tail -20 /var/log/vastllm-dockerd.log >&2; exit 1; }
fi
log "host ready (docker $(docker info --format '{{.ServerVersion}}'))"
