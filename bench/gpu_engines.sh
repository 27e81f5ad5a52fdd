#!/usr/bin/env bash
# The engines table (bench/engines_bench.py: vLLM vs the model API vs model.generate, total
# tok/s and p50/p99 TTFT per client count) on a GPU host. Everything stays on 127.0.0.1; nothing
# is downloaded.
#
#   bench/gpu_engines.sh (--model DIR | --random-llama SIZE [--tokenizer DIR])
#                        [--clients 1,4,8,16,32] [--max-tokens 128] [--requests-per-client 2]
#                        [--engines vllm,model_api,generate] [--device cuda] [--dtype bfloat16]
#                        [--python PY] [--vllm-python PY] [--models-dir DIR] [--json OUT]
#                        [-- extra engines_bench.py options, e.g. --append]
#
# --random-llama SIZE (tiny, 1b, 3b, 7b, 8b, 13b) builds a Llama-shaped model with random
# weights (bench/build_random_llama.py: initialised on the GPU in the dtype, safetensors) into
# --models-dir (default ${TMPDIR:-/tmp}), reused on the next run; decode speed does not depend on
# the weights, and every request is fixed-length (ignore_eos). Its tokenizer is --tokenizer
# DIR's (e.g. the test model's), else a byte-level BPE built by `tokenizers`, no download.
#
# Engines: whichever are installed. vLLM runs under --vllm-python, else $VLLM_PYTHON, else
# .venv/vllm-python, else PY; the model API and model.generate under PY (--python, else $PYTHON,
# else .venv/bin/python, else python3), which needs torch and transformers. Missing engines are
# listed before the run and in the table. Goal (informative, never asserted): vLLM >= 10x the
# model API's total tok/s at 32 clients; append the section to bench/RESULTS.md with `-- --append`
# once a GPU host has run it.
#
# Smoke test without a GPU: bench/gpu_engines.sh --random-llama tiny --device cpu --clients 1,2
#   --max-tokens 8 --engines model_api,generate
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

die() {
    echo "gpu_engines.sh: $*" >&2
    exit 2
}

model="" random="" tokenizer="" clients="1,4,8,16,32" max_tokens="128" rpc="2"
engines="" device="cuda" dtype="" python="${PYTHON:-}" vllm_python="${VLLM_PYTHON:-}"
models_dir="${TMPDIR:-/tmp}" json=""
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --model) model=${2:?--model needs a directory}; shift 2 ;;
        --random-llama) random=${2:?--random-llama needs a size}; shift 2 ;;
        --tokenizer) tokenizer=${2:?--tokenizer needs a directory}; shift 2 ;;
        --clients) clients=${2:?}; shift 2 ;;
        --max-tokens) max_tokens=${2:?}; shift 2 ;;
        --requests-per-client) rpc=${2:?}; shift 2 ;;
        --engines) engines=${2:?}; shift 2 ;;
        --device) device=${2:?}; shift 2 ;;
        --dtype) dtype=${2:?}; shift 2 ;;
        --python) python=${2:?}; shift 2 ;;
        --vllm-python) vllm_python=${2:?}; shift 2 ;;
        --models-dir) models_dir=${2:?}; shift 2 ;;
        --json) json=${2:?}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

if [ -n "$model" ] && [ -n "$random" ]; then
    die "give --model DIR or --random-llama SIZE, not both"
fi
if [ -z "$model" ] && [ -z "$random" ]; then
    die "give --model DIR or --random-llama SIZE (tiny, 1b, 3b, 7b, 8b, 13b)"
fi
case "$device" in cpu | cuda) ;; *) die "--device is cpu or cuda" ;; esac
if [ -z "$dtype" ]; then
    if [ "$device" = cuda ]; then dtype=bfloat16; else dtype=float32; fi
fi

if [ -z "$python" ]; then
    if [ -x "$repo/.venv/bin/python" ]; then python="$repo/.venv/bin/python"; else python=python3; fi
fi
vllm_note=""
if [ -z "$vllm_python" ]; then
    if [ -f "$repo/.venv/vllm-python" ] && [ -x "$(cat "$repo/.venv/vllm-python")" ]; then
        vllm_python=$(cat "$repo/.venv/vllm-python")
    else
        if [ -f "$repo/.venv/vllm-python" ]; then
            vllm_note="; .venv/vllm-python names $(cat "$repo/.venv/vllm-python"), missing"
        fi
        vllm_python=$python
    fi
fi

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 VLLM_NO_USAGE_STATS=1
export DO_NOT_TRACK=1 PYTHONUNBUFFERED=1

# -- what is installed ------------------------------------------------------------------------

last_line() { tail -n 1 | cut -c1-200; }

if ! err=$("$python" -c 'import torch, transformers' 2>&1); then
    die "$python cannot import torch and transformers: $(printf '%s\n' "$err" | last_line)"
fi
echo "python: $python ($("$python" -c 'import sys, torch, transformers; print(f"CPython {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}")'))"
if [ "$device" = cuda ]; then
    if ! "$python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
        die "--device cuda but torch.cuda.is_available() is False under $python"
    fi
    if command -v nvidia-smi >/dev/null; then
        echo "gpu: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | paste -sd ';')"
    fi
fi
echo "engines:"
if out=$("$vllm_python" -c 'import vllm; print(vllm.__version__)' 2>&1); then
    echo "  vllm: installed, $(printf '%s\n' "$out" | last_line) ($vllm_python)"
else
    echo "  vllm: not installed ($vllm_python -c 'import vllm' failed: $(printf '%s\n' "$out" | last_line)$vllm_note)"
fi
if out=$(PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}" "$python" -c 'import vastllm.model_api.cli' 2>&1); then
    echo "  model_api: installed (PYTHONPATH=$repo/src $python -m vastllm.model_api)"
else
    echo "  model_api: not installed ($python -c 'import vastllm.model_api.cli' failed: $(printf '%s\n' "$out" | last_line); pip install -e $repo for its dependencies)"
fi
echo "  generate: installed (transformers model.generate under $python)"
if ! "$python" -c 'import aiohttp' 2>/dev/null; then
    echo "client: no aiohttp under $python, engines_bench.py falls back to http.client threads"
fi

# -- the model ----------------------------------------------------------------------------------

if [ -n "$random" ]; then
    if [ -n "$tokenizer" ]; then tok_tag=$(basename "$tokenizer"); else tok_tag=bpe; fi
    model="$models_dir/vastllm-random-llama-$random-$dtype-$tok_tag"
    build=("$python" "$here/build_random_llama.py" --size "$random" --out "$model"
        --device "$device" --dtype "$dtype")
    if [ -n "$tokenizer" ]; then build+=(--tokenizer "$tokenizer"); fi
    echo "+ ${build[*]}"
    "${build[@]}"
fi
[ -f "$model/config.json" ] || die "$model has no config.json"

# -- the run ------------------------------------------------------------------------------------

if [ -z "$json" ]; then
    json="${TMPDIR:-/tmp}/gpu_engines-$(date -u +%Y%m%dT%H%M%SZ).json"
fi
cmd=("$python" "$here/engines_bench.py" --model "$model" --device "$device" --dtype "$dtype"
    --clients "$clients" --max-tokens "$max_tokens" --requests-per-client "$rpc"
    --vllm-python "$vllm_python" --model-api-python "$python" --json "$json")
if [ -n "$engines" ]; then cmd+=(--engines "$engines"); fi
if [ ${#extra[@]} -gt 0 ]; then cmd+=("${extra[@]}"); fi
echo "+ ${cmd[*]}"
exec "${cmd[@]}"
