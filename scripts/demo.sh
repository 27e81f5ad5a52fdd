#!/usr/bin/env bash
# make demo / make demo-down: a local container stands in for the rented GPU host (sshd as PID 1,
# no systemd, like a Vast.ai SSH instance); site.yml provisions it over real SSH with a real small
# CPU model fetched from a local S3 endpoint, and the answer comes back through an SSH tunnel,
# asked with `vastllm chat`.
# Overridable: VASTLLM_STATE (state and SSH key), VASTLLM_DEMO_NAME (container and host name),
# VASTLLM_DEMO_SSH_PORT, VASTLLM_DEMO_S3_PORT, VASTLLM_DEMO_PROXY_PORT (local end of the tunnel).
set -euo pipefail
cd "$(dirname "$0")/.."
state=${VASTLLM_STATE:-$HOME/.cache/vastllm}/demo
name=${VASTLLM_DEMO_NAME:-vastllm-demo}
ssh_port=${VASTLLM_DEMO_SSH_PORT:-2222}
s3_port=${VASTLLM_DEMO_S3_PORT:-45901}
proxy_port=${VASTLLM_DEMO_PROXY_PORT:-8082}  # the tunnel forwards the host's proxy here
# the tunnel role's forward, with the local port above (the host's proxy listens on 8082)
tunnel_vars="{\"tunnel_forwards\": [{\"name\": \"proxy\", \"remote_port\": 8082, \"local_port\": $proxy_port}]}"
inventory=$state/hosts.yml
key=${VASTLLM_STATE:-$HOME/.cache/vastllm}/testhost_ed25519
log() { printf '\n==> %s\n' "$*"; }

up() {
    local start host tarball
    start=$(date +%s)
    mkdir -p "$state"
    log "Building the real small test model (SmolLM2-135M-Instruct, cached after the first run)"
    tarball=$(python -c 'from tests.model.build_test_model import ensure_test_model_tarball as t; print(t())')
    log "Putting it in a local S3 bucket (moto on 127.0.0.1:$s3_port)"
    python scripts/local_s3.py start --port "$s3_port" --state "$state/s3"
    python scripts/local_s3.py put --port "$s3_port" "$tarball" s3://models/smollm2-135m-instruct.tar.gz
    log "Starting the local GPU host stand-in '$name' (ssh -p $ssh_port root@127.0.0.1)"
    host=$(scripts/testhost up "$name" vast-like "$ssh_port")
    python - "$host" "$inventory" "$s3_port" "$(cat .venv/wheelhouse-path)" <<'PY'
import json, string, sys
host = json.loads(sys.argv[1])
host.update(name=host["instance"], s3_port=sys.argv[3], wheelhouse=sys.argv[4])
tmpl = string.Template(open("templates/demo-inventory.yml.tmpl").read())
open(sys.argv[2], "w").write(tmpl.substitute(host))
PY
    # the project's group_vars apply to the demo inventory as to inventory/hosts.yml: SSH host
    # keys pinned in the project's known_hosts, as for a rented host
    ln -sfn "$PWD/inventory/group_vars" "$state/group_vars"
    # a new container on the demo's port: forget the key an earlier demo host left pinned there
    .venv/bin/vastllm -i "$inventory" forget-host "$name" >/dev/null
    # HTTPS from inside the host may be intercepted: trust this machine's CA bundle there too
    if [ -z "${VASTLLM_EXTRA_CA_BUNDLE:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
        export VASTLLM_EXTRA_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
    fi
    log "Running site.yml against it with vastllm up (GPU host roles, then the autossh tunnel here)"
    .venv/bin/vastllm -i "$inventory" \
        -e "tunnel_forwards=[{\"name\": \"proxy\", \"remote_port\": 8082, \"local_port\": $proxy_port}]" up
    log "Asking the model through the tunnel and the proxy with vastllm chat"
    wait_for_proxy
    local question="What is the capital of France? Answer in one word."
    printf '\n    Q: %s\n    A: ' "$question"
    .venv/bin/vastllm chat "$question" --url "http://127.0.0.1:$proxy_port" \
        --max-tokens 20 --temperature 0
    log "Done in $(( $(date +%s) - start )) s."
    echo "    Claude Code:  ANTHROPIC_BASE_URL=http://127.0.0.1:$proxy_port ANTHROPIC_AUTH_TOKEN=demo claude"
    echo "    Host shell:   ssh -i $key -p $ssh_port root@127.0.0.1"
    echo "    Remove it:    make demo-down"
}

# the proxy answers /health with 200 once its upstream (the model server) is healthy
wait_for_proxy() {
    local i
    for i in $(seq 1 60); do
        curl -fs -o /dev/null "http://127.0.0.1:$proxy_port/health" && return 0
        sleep 1
    done
    echo "the proxy did not answer 200 on http://127.0.0.1:$proxy_port/health within 60 s" >&2
    return 1
}

down() {
    if [ -f "$inventory" ]; then
        ansible-playbook -i "$inventory" -e "$tunnel_vars" site.yml --tags tunnel \
            -e tunnel_state=absent >/dev/null || true
        .venv/bin/vastllm -i "$inventory" forget-host "$name" >/dev/null || true
    fi
    python scripts/local_s3.py stop --state "$state/s3" || true
    scripts/testhost down "$name"
    rm -rf "$state"
    echo "demo removed"
}

case "${1:-up}" in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
