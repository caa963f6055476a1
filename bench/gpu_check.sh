#!/usr/bin/env bash
# The GPU check for the next session that has a GPU (one H200: < 8 minutes). NOT run yet: no GPU was lent while it
# was written. Prints, per Qwen2.5 shape (random weights), finetune real tokens/s of ours (bf16, padding-free) vs the
# study's pad-to-512 fp32 recipe on the realistic length mix, the speed-up, and MFU against the bf16 dense peak;
# appends one JSON record per run to $OUT/calibration.jsonl (device, date, tokens/s) for the GPU-hours model.
#   bash bench/gpu_check.sh            # PYTHON=... to use another interpreter; OUT=... for the records
# Acceptance (issue 13): 7B speed-up >= 8x, MFU >= 35 %.
set -euo pipefail
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-bench/out/gpu}
mkdir -p "$OUT"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible'; print(torch.cuda.get_device_name())"
# 0.5B: both arms, 8 steps of batch 8 (~1 min). 7B: fp32 pad-512 needs ~60 GB (weights 30 GB + Adam on LoRA only);
# 6 steps of batch 4 (~3-4 min with the model builds).
timeout 180 "$PY" bench/bench_finetune.py --shape qwen2.5-0.5b --mix realistic --dtype bfloat16 --steps 8 \
    --batch-size 8 --no-dynamic --json "$OUT/calibration.jsonl" 2> "$OUT/0.5b.err" | tee "$OUT/0.5b.txt"
timeout 270 "$PY" bench/bench_finetune.py --shape qwen2.5-7b --mix realistic --dtype bfloat16 --steps 6 \
    --batch-size 4 --no-dynamic --json "$OUT/calibration.jsonl" 2> "$OUT/7b.err" | tee "$OUT/7b.txt"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv | tee "$OUT/nvidia-smi.txt"
