#!/usr/bin/env bash
# GPU proof, ready to run (issue 13, item 7). On one CUDA GPU, from a fresh clone, it prints:
#   - bf16 LoRA and QLoRA fine-tuning tokens/s on SmolLM2-135M (our train_lora) with MFU against
#     the card's dense bf16 peak (benchmarks/gpu_check.py says how the FLOPs are counted);
#   - the serving throughput at concurrency 16 (benchmarks/bench_serving.py);
#   - that the adapter trained on the GPU loads and answers on the CPU (CUDA_VISIBLE_DEVICES=).
# Budget: under 8 minutes on one H100/H200 once the venv exists (`make` installs it first on a
# fresh machine; that install, several GB with CUDA torch, is not counted).
#
#     bash benchmarks/gpu_check.sh               # on the GPU host
#     bash benchmarks/gpu_check.sh --cpu-smoke   # every step, tiny model, on CPU (6 min, 2 busy cores)
#     bash benchmarks/gpu_check.sh --help
#     GPU_CHECK_PYTHON=python3 GPU_CHECK_BASE=<model dir> bash benchmarks/gpu_check.sh --no-setup
#         (an image whose python3 already holds CUDA torch and the packages: no `make`)
#
# QLoRA needs bitsandbytes, which the project does not depend on: when it is missing, this
# script installs it from the package index with pip (and says so); with --cpu-smoke it only
# checks that pip can resolve it (--dry-run), leaving the venv as it is.
# The last line printed is one JSON summary.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }
SMOKE=0 SETUP=1
for arg in "$@"; do
  case "$arg" in
    --cpu-smoke) SMOKE=1 ;;
    --no-setup) SETUP=0 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

PY=${GPU_CHECK_PYTHON:-.venv/bin/python}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/llmops-gpu-check-XXXXXX")
RESULTS=$WORK/results.jsonl
# One project home for every step: SmolLM2's GGUF is converted once, then reused.
export LLMOPS_HOME=$WORK/home HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TQDM_DISABLE=1
started=$SECONDS
say() { printf '\n[gpu_check %4ds] %s\n' $((SECONDS - started)) "$*"; }
# step NAME COMMAND...: the command's last output line (its JSON) joins the results; a step that
# fails is recorded as skipped, and the steps after it still run.
step() {
  local name=$1
  shift
  if "$@" >"$WORK/$name.out"; then
    tail -n 1 "$WORK/$name.out" | tee -a "$RESULTS"
  else
    echo "{\"step\": \"$name-skipped\", \"why\": \"failed (exit $?): see the log above\"}" | tee -a "$RESULTS"
  fi
}

if [ "$SETUP" = 1 ]; then
  say "setup: make (creates .venv on a fresh machine, else a no-op)"
  make --no-print-directory .venv/.installed
fi

if [ "$SMOKE" = 1 ]; then
  BASE=tiny-random
  TRAIN=(--steps 6 --batch-size 4 --records 32 --max-seq-len 256 --log-every 2)
  SERVE=(--base tiny-random --requests 16 --max-tokens 4 --repeats 1)
  export CUDA_VISIBLE_DEVICES=  # the smoke run proves the script, on CPU
else
  BASE=${GPU_CHECK_BASE:-smollm2-135m-instruct}
  TRAIN=(--steps 40 --batch-size 32 --records 512 --max-seq-len 512 --log-every 5)
  SERVE=(--base "$BASE" --requests 64 --max-tokens 32 --repeats 1)
  $PY -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else
"no CUDA device visible to the venv torch (" + torch.__version__ + "): a CUDA host and build are needed; --cpu-smoke runs on CPU")'
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi

say "train: LoRA ($BASE; bf16 on CUDA, fp32 on CPU)"
step train-lora $PY benchmarks/gpu_check.py train --base "$BASE" --out "$WORK/lora" "${TRAIN[@]}"

say "train: QLoRA (4-bit NF4 base; bitsandbytes)"
if $PY -c 'import bitsandbytes' 2>/dev/null; then
  have_bnb=1
elif [ "$SMOKE" = 1 ]; then
  say "bitsandbytes missing: checking that pip can install it (--dry-run; the smoke run leaves the venv as it is)"
  $PY -m pip install --quiet --dry-run bitsandbytes && have_bnb=1 || have_bnb=0
else
  say "bitsandbytes missing: installing it from the package index (pip install bitsandbytes)"
  $PY -m pip install --quiet bitsandbytes && have_bnb=1 || have_bnb=0
fi
if [ "$have_bnb" = 1 ]; then
  # On CPU build_lora_model trains the plain LoRA model (quantization is CUDA-only): the smoke
  # run proves the step runs, and its JSON says qlora_applied: false.
  step train-qlora $PY benchmarks/gpu_check.py train --qlora --base "$BASE" --out "$WORK/qlora" "${TRAIN[@]}"
else
  echo '{"step": "train-qlora-skipped", "why": "bitsandbytes could not be installed"}' | tee -a "$RESULTS"
fi

say "serving: benchmarks/bench_serving.py ${SERVE[*]}"
# A failed benchmark is reported in the summary; the adapter check still runs.
$PY benchmarks/bench_serving.py "${SERVE[@]}" 2>&1 | tee "$WORK/serving.txt" || true
step serving $PY benchmarks/gpu_check.py serving "$WORK/serving.txt"

say "the GPU-trained adapter on the CPU (CUDA_VISIBLE_DEVICES=)"
step answer-on-cpu env CUDA_VISIBLE_DEVICES= $PY benchmarks/gpu_check.py answer --base "$BASE" --adapter "$WORK/lora/adapter"

say "done in $((SECONDS - started)) s; files in $WORK"
$PY benchmarks/gpu_check.py summary "$RESULTS"
