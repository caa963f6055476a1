#!/usr/bin/env bash
# The GPU check (issue 13) for the first session with a GPU: one script, < 8 minutes on one H200. NOT run yet: no GPU
# was lent while it was written; its code path runs on CPU with `DEVICE=cpu SHAPES="tiny tiny" bash bench/gpu_check.sh`.
# It prints every figure and writes $OUT/gpu_calibration.json (to ship: copy it to src/emgrid/gpu_calibration.json).
#   1. finetune, Qwen2.5-0.5B shape (random weights), realistic length mix: ours (bf16, padding-free) vs the study's
#      pad-to-512 fp32 recipe, real tokens/s, speed-up, MFU against the bf16 dense peak (device printed).
#   2. the same on the Qwen2.5-7B shape; its tokens/s of ours becomes the `finetune` calibration of this GPU type.
#   3. generation, 0.5B shape with a LoRA adapter: HF batched vs vLLM; the faster one becomes the `generate` calibration.
# First `make install-vllm` (docs/gpu.md): the default .venv holds a CPU torch, so every step runs in .venv-vllm
# (CUDA torch, vLLM) when it exists; PYTHON=... / VLLM_PYTHON=... override.
# Acceptance: 7B finetune speed-up >= 8x and MFU >= 35 %; vLLM / HF batched >= 5x.
#   bash bench/gpu_check.sh              # PYTHON=..., VLLM_PYTHON=..., OUT=... (default bench/out/gpu)
set -euo pipefail
DEFAULT_PY=.venv/bin/python
[ -x .venv-vllm/bin/python ] && DEFAULT_PY=.venv-vllm/bin/python
PY=${PYTHON:-$DEFAULT_PY}
VPY=${VLLM_PYTHON:-$PY}
OUT=${OUT:-bench/out/gpu}
DEVICE=${DEVICE:-cuda}
read -r SMALL BIG <<< "${SHAPES:-qwen2.5-0.5b qwen2.5-7b}"
CAL="$OUT/gpu_calibration.json"
mkdir -p "$OUT"
rm -f "$CAL"
if [ "$DEVICE" = cuda ]; then
    "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible'; print(torch.cuda.get_device_name())"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.txt"
fi
# 1. 0.5B: 8 optimizer steps of 8 examples per arm (~1 min with the model builds)
timeout 150 "$PY" bench/bench_finetune.py --device "$DEVICE" --shape "$SMALL" --mix realistic --dtype bfloat16 \
    --steps 8 --batch-size 8 --no-alt-batching --json "$OUT/finetune.jsonl" 2> "$OUT/ft-small.err" | tee "$OUT/ft-small.txt"
# 2. 7B: fp32 pad-512 needs ~60 GB (weights 30 GB, activations; Adam on LoRA only); 6 steps of 4 (~3-4 min);
#    ours with the paper grid's whole-sequence loss, so the calibration is the rate its finetunes run at
timeout 270 "$PY" bench/bench_finetune.py --device "$DEVICE" --shape "$BIG" --mix realistic --dtype bfloat16 \
    --steps 6 --batch-size 4 --no-alt-batching --loss-on all --json "$OUT/finetune.jsonl" --calibration "$CAL" \
    2> "$OUT/ft-big.err" | tee "$OUT/ft-big.txt"
# 3. generation with a LoRA adapter: 256 prompts x 128 forced tokens, HF batch 64, then vLLM (engine start not timed)
timeout 180 "$VPY" bench/bench_generate.py --device "$DEVICE" --shape "$SMALL" --lora --dtype bfloat16 --prompts 256 \
    --new-tokens 128 --batch-size 64 --skip-single --vllm --calibration "$CAL" 2> "$OUT/gen.err" | tee "$OUT/gen.txt"
echo "calibration written: $CAL (ship it: cp $CAL src/emgrid/gpu_calibration.json)"
cat "$CAL"
