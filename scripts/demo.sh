#!/usr/bin/env bash
# make demo / make demo-down: a local container stands in for the rented GPU host (sshd as PID 1,
# no systemd, like a Vast.ai SSH instance); site.yml provisions it over real SSH with a real small
# CPU model fetched from a local S3 endpoint, and the answer comes back through an SSH tunnel.
set -euo pipefail
cd "$(dirname "$0")/.."
state=${VASTLLM_STATE:-$HOME/.cache/vastllm}/demo
name=${VASTLLM_DEMO_NAME:-vastllm-demo}
ssh_port=${VASTLLM_DEMO_SSH_PORT:-2222}
s3_port=${VASTLLM_DEMO_S3_PORT:-45901}
proxy_port=8082  # the tunnel role forwards the host's proxy here
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
    # HTTPS from inside the host may be intercepted: trust this machine's CA bundle there too
    if [ -z "${VASTLLM_EXTRA_CA_BUNDLE:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
        export VASTLLM_EXTRA_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
    fi
    log "Running site.yml against it (GPU host roles, then the autossh tunnel on this machine)"
    ansible-playbook -i "$inventory" site.yml
    python - "$proxy_port" <<'PY'
import sys, time, anthropic
port = sys.argv[1]
question = "What is the capital of France? Answer in one word."
client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="demo", max_retries=10)
t0 = time.monotonic()
answer = client.messages.create(model="claude-opus-4-8", max_tokens=20,
    messages=[{"role": "user", "content": question}], extra_body={"temperature": 0})
print(f"\n    Q: {question}\n    A: {answer.content[0].text}   ({time.monotonic() - t0:.2f} s via the autossh tunnel)")
PY
    log "Done in $(( $(date +%s) - start )) s."
    echo "    Claude Code:  ANTHROPIC_BASE_URL=http://127.0.0.1:$proxy_port ANTHROPIC_AUTH_TOKEN=demo claude"
    echo "    Host shell:   ssh -i $key -p $ssh_port root@127.0.0.1"
    echo "    Remove it:    make demo-down"
}

down() {
    if [ -f "$inventory" ]; then
        ansible-playbook -i "$inventory" site.yml --tags tunnel -e tunnel_state=absent >/dev/null || true
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
