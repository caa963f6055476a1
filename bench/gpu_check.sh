#!/usr/bin/env bash
# The GPU check (issue 23): every GPU figure of docs/gpu.md in one run, ~5 minutes on one H200.
# It prints every figure to $OUT/check.txt, appends records to $OUT/finetune.jsonl and $OUT/generate.jsonl, and
# writes $OUT/gpu_calibration.json (to ship: copy it to src/emgrid/gpu_calibration.json).
#   1. finetune, Qwen2.5-0.5B shape (random weights), realistic length mix, the study's 16 examples per optimizer step:
#      ours (bf16, padding-free, one pass of 16) vs the study's recipe (fp32, pad to 512, 4 passes of 4): real tokens/s,
#      speed-up, MFU against the bf16 dense peak, peak memory.
#   2. the same on the Qwen2.5-7B shape, plus ours with LoRA on all 7 projections; ours' tokens/s becomes the
#      `finetune` calibration of this GPU type.
#   3. generation on the 7B shape with a random LoRA adapter (unmerged): HF batched (batch 64), the same with a steering
#      vector at the middle layer (steering_generate's hook), vLLM when importable; `generate` and `steering_generate`
#      calibrations.
# Where it runs: a GPU image with CUDA torch and no network. What that image lacks travels as wheels in .whl
# (`make gpu-wheelhouse` fills it: transformers, peft, trl, datasets, accelerate and their small dependencies at the
# versions emgrid is tested with, ~16 MB) and is installed with --no-deps into a folder on PYTHONPATH, ahead of the
# image's own versions. With a .venv-vllm (make install-vllm) that one is used instead.
#   bash bench/gpu_check.sh          # PYTHON=..., OUT=... (default bench/out/gpu), WORK=... (where the shapes are built)
# Its CPU path (tiny shapes, seconds): DEVICE=cpu SHAPES="tiny tiny" bash bench/gpu_check.sh
# Each step is bounded by its own timeout and a failed step does not stop the next: the figures of the others still
# come back.
set -uo pipefail
cd "$(dirname "$0")/.."
DEFAULT_PY=python3
[ -x .venv/bin/python ] && DEFAULT_PY=.venv/bin/python
[ -x .venv-vllm/bin/python ] && DEFAULT_PY=.venv-vllm/bin/python
PY=${PYTHON:-$DEFAULT_PY}
OUT=${OUT:-bench/out/gpu}
DEVICE=${DEVICE:-cuda}
WHEELS=${WHEELS:-.whl}
read -r SMALL BIG <<< "${SHAPES:-qwen2.5-0.5b qwen2.5-7b}"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CAL="$OUT/gpu_calibration.json"
LOG="$OUT/check.txt"
ERR="$OUT/check.err"
rm -f "$CAL" "$OUT/finetune.jsonl" "$OUT/generate.jsonl"
: > "$LOG"
: > "$ERR"
say() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$LOG"; }
failed=()
step() {  # step NAME SECONDS CMD...: one bounded step, its stdout into the log, its stderr into the error log
    local name=$1 limit=$2
    shift 2
    say "$name (limit ${limit}s): $*"
    local t0=$SECONDS
    echo "== $name" >> "$ERR"
    timeout "$limit" "$@" 2>> "$ERR" | tee -a "$LOG"
    local rc=${PIPESTATUS[0]}
    say "$name: exit $rc after $((SECONDS - t0)) s"
    [ "$rc" -eq 0 ] || failed+=("$name (exit $rc)")
}

if [ -d "$WHEELS" ] && compgen -G "$WHEELS/*.whl" > /dev/null; then
    SITE=${SITE:-/tmp/emgrid-gpu-site}
    say "installing $(ls "$WHEELS" | wc -l) wheels from $WHEELS into $SITE (--no-deps, ahead of the image's packages)"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl \
        2>> "$ERR" || say "wheel install failed (see check.err)"
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src:$PWD/bench${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# The shapes are built once and shared by the steps: in memory where /dev/shm has room for the 7B (15 GB in bf16)
if [ -z "${WORK:-}" ]; then
    WORK=/tmp/emgrid-gpu-work
    shm_gb=$(df -BG --output=avail /dev/shm 2> /dev/null | tail -1 | tr -dc 0-9)
    [ "${shm_gb:-0}" -ge 40 ] && WORK=/dev/shm/emgrid-gpu-work
fi
mkdir -p "$WORK"
say "python $PY, work dir $WORK, out $OUT"
"$PY" - << 'EOF' 2>> "$ERR" | tee -a "$LOG"
import importlib, platform
print("python", platform.python_version())
for m in ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "tokenizers", "huggingface_hub", "vllm"):
    try:
        mod = importlib.import_module(m)
        print(f"{m} {getattr(mod, '__version__', '?')} ({mod.__file__})")
    except Exception as e:  # noqa: BLE001 - a report, not a check
        print(f"{m}: not importable ({type(e).__name__}: {e})")
import torch
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")
EOF
if [ "$DEVICE" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>> "$ERR" | tee -a "$LOG"
fi

RUN=${RUN:-ft-small ft-big gen}  # which steps (all by default)
FT=(--device "$DEVICE" --skip-steps 2 --mix realistic --dtype bfloat16 --batch-size 4 --grad-accum 4 --fold-accum --no-alt-batching
    --loss-on all --work-dir "$WORK" --json "$OUT/finetune.jsonl")
# 1. 0.5B: 8 optimizer steps of 16 examples per arm
[[ " $RUN " == *" ft-small "* ]] && step "finetune $SMALL" 150 "$PY" bench/bench_finetune.py --shape "$SMALL" --steps 8 "${FT[@]}"
# 2. 7B: pad-512 in fp32 needs ~60 GB (weights 30 GB, activations of 4 x 512 tokens; Adam on LoRA only)
[[ " $RUN " == *" ft-big "* ]] && step "finetune $BIG" 300 "$PY" bench/bench_finetune.py --shape "$BIG" --steps 8 --all-linear --calibration "$CAL" "${FT[@]}"
# 3. generation on the 7B shape: 256 prompts x 128 forced tokens, batch 64, unsteered and steered, then vLLM
[[ " $RUN " == *" gen "* ]] && step "generate $BIG" 200 "$PY" bench/bench_generate.py --device "$DEVICE" --shape "$BIG" --work-dir "$WORK" --lora \
    --dtype bfloat16 --prompts ${GEN_PROMPTS:-256} --new-tokens 128 --batch-size 64 --skip-single --steer --vllm \
    --calibration "$CAL" --json "$OUT/generate.jsonl"

rm -rf "$WORK"
if [ -f "$CAL" ]; then
    say "calibration written: $CAL (ship it: cp $CAL src/emgrid/gpu_calibration.json)"
    cat "$CAL" | tee -a "$LOG"
fi
tail -c 2000000 "$ERR" > "$ERR.tmp" && mv "$ERR.tmp" "$ERR"  # what comes back is bounded
if [ ${#failed[@]} -gt 0 ]; then
    say "FAILED steps: ${failed[*]}"
    exit 1
fi
say "all steps passed"
