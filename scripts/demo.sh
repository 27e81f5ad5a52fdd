#!/usr/bin/env bash
# make demo / make demo-down: a local container stands in for the rented GPU host (sshd as PID 1,
# no systemd, like a Vast.ai SSH instance); site.yml provisions it over real SSH with a real small
# CPU model fetched from a local S3 endpoint, and the answer comes back through an SSH tunnel,
# asked with `vastllm chat`.
# Overridable: VASTLLM_STATE (state and SSH key), VASTLLM_DEMO_NAME (container and host name),
# VASTLLM_DEMO_SSH_PORT, VASTLLM_DEMO_S3_PORT, VASTLLM_DEMO_PROXY_PORT (the workstation gateway,
# what clients use), VASTLLM_DEMO_HOSTS_PORT (the local end of the host's proxy tunnel),
# VASTLLM_DEMO_S3_SECRET (the S3 secret key the host fetches the model with; the local S3 takes
# any, default demo), VASTLLM_DEMO_VARS (a YAML file of more variables for the demo host, e.g.
# llm_proxy_paid_upstreams with their api_key: it becomes the host's host_vars, so no secret is
# ever on a command line), VASTLLM_DEMO_VERBOSE (how many -v `vastllm up` gets: 2 shows every
# task's result). The proxy's API keys come from VASTLLM_PROXY_API_KEYS as for any host;
# `vastllm chat` then sends $VASTLLM_PROXY_API_KEY, by default the first of them.
set -euo pipefail
cd "$(dirname "$0")/.."
state=${VASTLLM_STATE:-$HOME/.cache/vastllm}/demo
name=${VASTLLM_DEMO_NAME:-vastllm-demo}
ssh_port=${VASTLLM_DEMO_SSH_PORT:-2222}
s3_port=${VASTLLM_DEMO_S3_PORT:-45901}
proxy_port=${VASTLLM_DEMO_PROXY_PORT:-8082}  # the workstation gateway listens here
hosts_port=${VASTLLM_DEMO_HOSTS_PORT:-18082}  # the tunnel forwards the host's proxy here
# the tunnel role's settings: the gateway on the proxy forward's local port, the host's proxy
# (on its 8082) tunnelled to hosts_port; the demo's tunnel slots, gateway settings and gateway
# program are its own, so the demo never touches the tunnels of real hosts on this workstation
tunnel_args=(-e "tunnel_forwards=[{\"name\": \"proxy\", \"remote_port\": 8082, \"local_port\": $proxy_port}]"
    -e "tunnel_gateway_hosts_port=$hosts_port" -e "tunnel_slots_file=$state/tunnel-slots.json"
    -e "tunnel_gateway_config=$state/gateway.json" -e "tunnel_gateway_name=$name-gateway")
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
    # more variables of the demo host, from a file: secrets in them stay off every command line
    mkdir -p "$state/host_vars"
    rm -f "$state/host_vars/$name.yml"
    if [ -n "${VASTLLM_DEMO_VARS:-}" ]; then
        ln -s "$(realpath "$VASTLLM_DEMO_VARS")" "$state/host_vars/$name.yml"
    fi
    # a new container on the demo's port: forget the key an earlier demo host left pinned there
    .venv/bin/vastllm -i "$inventory" forget-host "$name" >/dev/null
    # HTTPS from inside the host may be intercepted: trust this machine's CA bundle there too
    if [ -z "${VASTLLM_EXTRA_CA_BUNDLE:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
        export VASTLLM_EXTRA_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
    fi
    log "Running site.yml against it with vastllm up (GPU host roles, then the autossh tunnel here)"
    local verbose=() i
    for ((i = 0; i < ${VASTLLM_DEMO_VERBOSE:-0}; i++)); do verbose+=(-v); done
    .venv/bin/vastllm -i "$inventory" "${tunnel_args[@]}" "${verbose[@]}" up
    log "Asking the model through the workstation gateway, the tunnel and the host's proxy with vastllm chat"
    wait_for_proxy
    # the gateway asks for one of the proxy's keys when they are set (in the environment only)
    if [ -n "${VASTLLM_PROXY_API_KEYS:-}" ] && [ -z "${VASTLLM_PROXY_API_KEY:-}" ]; then
        export VASTLLM_PROXY_API_KEY=${VASTLLM_PROXY_API_KEYS%%,*}
    fi
    local question="What is the capital of France? Answer in one word."
    printf '\n    Q: %s\n    A: ' "$question"
    .venv/bin/vastllm chat "$question" --url "http://127.0.0.1:$proxy_port" \
        --max-tokens 20 --temperature 0
    log "Done in $(( $(date +%s) - start )) s."
    local token=demo
    if [ -n "${VASTLLM_PROXY_API_KEYS:-}" ]; then
        token='"$VASTLLM_PROXY_API_KEY"'  # the key is named, never printed
    fi
    echo "    Claude Code:  ANTHROPIC_BASE_URL=http://127.0.0.1:$proxy_port ANTHROPIC_AUTH_TOKEN=$token claude"
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
        .venv/bin/vastllm -i "$inventory" "${tunnel_args[@]}" tunnel --down >/dev/null 2>&1 || true
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
