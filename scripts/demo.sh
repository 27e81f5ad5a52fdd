#!/usr/bin/env bash
# make demo / make demo-down: a local container stands in for the rented GPU host (sshd as PID 1,
# no systemd, like a Vast.ai SSH instance) and site.yml provisions it over real SSH.
set -euo pipefail
cd "$(dirname "$0")/.."
state=${VASTLLM_STATE:-$HOME/.cache/vastllm}/demo
name=${VASTLLM_DEMO_NAME:-vastllm-demo}
ssh_port=${VASTLLM_DEMO_SSH_PORT:-2222}
inventory=$state/hosts.yml
log() { printf '\n==> %s\n' "$*"; }

up() {
    local start host
    start=$(date +%s)
    mkdir -p "$state"
    log "Starting the local GPU host stand-in '$name' (ssh -p $ssh_port root@127.0.0.1)"
    host=$(scripts/testhost up "$name" vast-like "$ssh_port")
    python3 - "$host" "$inventory" <<'PY'
import json, string, sys
host = json.loads(sys.argv[1])
host["name"] = host["instance"]
tmpl = string.Template(open("templates/demo-inventory.yml.tmpl").read())
open(sys.argv[2], "w").write(tmpl.substitute(host))
PY
    # HTTPS from inside the host may be intercepted: trust this machine's CA bundle there too
    if [ -z "${VASTLLM_EXTRA_CA_BUNDLE:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
        export VASTLLM_EXTRA_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
    fi
    log "Running site.yml against it"
    ansible-playbook -i "$inventory" site.yml
    log "Done in $(( $(date +%s) - start )) s. Inventory: $inventory"
    echo "    ssh -i ~/.cache/vastllm/testhost_ed25519 -p $ssh_port root@127.0.0.1"
    echo "    make demo-down   # removes it all"
}

down() {
    scripts/testhost down "$name"
    rm -rf "$state"
    echo "demo removed"
}

case "${1:-up}" in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
