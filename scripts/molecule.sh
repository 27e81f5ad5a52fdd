#!/usr/bin/env bash
# `make molecule`: every Molecule scenario, in two lanes side by side. Part of a scenario's time
# is waiting (SSH round trips, services starting, health polls), so two lanes take about a third
# less time than one on this 2-core machine (1071 s against about 1400 s). Scenarios share
# nothing that can clash: each has its own containers, its own loopback ports on this machine
# (S3: recovery 45900, vllm 45901, ollama 45902-45903) and its own ephemeral directory; the
# project's wheel is built under a lock.
# Only recovery touches this machine's supervisord (its tunnel), and only its own program.
#
#   scripts/molecule.sh            both lanes
#   scripts/molecule.sh SCENARIO…  these scenarios, one after another
#
# Each scenario's whole output goes to .cache/molecule/SCENARIO.log; a failed one is printed
# whole at its end, a passed one by its last lines. Exit status 1 when any scenario failed.
set -euo pipefail
cd "$(dirname "$0")/.."
# measured here side by side: vllm 563 s, recovery 568 s, ollama 335 s, vast-base-image 168 s,
# gpu-facts-and-services 85 s
LANES=(
    "vllm vast-base-image outbid gpu-facts-and-services"
    "recovery ollama"
)
logs=.cache/molecule
mkdir -p "$logs"

run_lane() {
    local rc=0 scenario start
    for scenario in "$@"; do
        start=$(date +%s)
        echo "[molecule] $scenario: started"
        if molecule test -s "$scenario" >"$logs/$scenario.log" 2>&1 </dev/null; then
            tail -n 25 "$logs/$scenario.log" | sed "s/^/[$scenario] /"
            echo "[molecule] $scenario: passed in $(( $(date +%s) - start )) s"
        else
            sed "s/^/[$scenario] /" "$logs/$scenario.log"
            echo "[molecule] $scenario: FAILED in $(( $(date +%s) - start )) s (whole log above)"
            rc=1
        fi
    done
    return $rc
}

if [ $# -gt 0 ]; then
    run_lane "$@"
    exit
fi

# every scenario is in exactly one lane: a new one is never skipped
have=$(find molecule -mindepth 2 -maxdepth 2 -name molecule.yml | cut -d/ -f2 | sort | xargs)
want=$(printf '%s\n' ${LANES[*]} | sort | xargs)
if [ "$have" != "$want" ]; then
    echo "[molecule] the lanes in $0 ($want) are not the scenarios ($have): add or remove one" >&2
    exit 2
fi

start=$(date +%s)
pids=()
for lane in "${LANES[@]}"; do
    # shellcheck disable=SC2086 # a lane is a list of scenario names
    run_lane $lane &
    pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do
    wait "$pid" || rc=1
done
echo "[molecule] all lanes ended in $(( $(date +%s) - start )) s: $([ $rc -eq 0 ] && echo passed || echo FAILED)"
exit $rc
