#!/usr/bin/env bash
# The fine-tuning runs as models/finetuned/ was made, one after another: the three float variants, then QAT.
#     finetune/train_variants.sh [RUNS_DIR]          (default /work/finetune-runs; logs and checkpoints there)
# Each run resumes from RUNS_DIR/NAME/checkpoint.pt if present and exports to models/finetuned/NAME[.tflite].
# Budgets in minutes of training time (env MINUTES_L2, MINUTES_RELU, MINUTES_DW, MINUTES_QAT; defaults below), at
# 128 px, batch 16, seed 0: the CPU of the machine they ran on was shared with Rust builds (2 cores).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${1:-/work/finetune-runs}"
mkdir -p "$runs"
for spec in "dw-linear+relu+l2:${MINUTES_L2:-30}:5e-4:" "dw-linear+relu:${MINUTES_RELU:-12}:5e-4:" \
            "dw-linear:${MINUTES_DW:-12}:5e-4:" "qat-tf8:${MINUTES_QAT:-16}:1e-4:.tflite"; do
    IFS=: read -r name minutes lr extension <<< "$spec"
    echo "== $(date -u +%H:%M:%S) $name, $minutes min, lr $lr" >> "$runs/train_variants.log"
    "$repo_root/finetune/run.sh" train.py --variant "$name" --run "$runs/$name" --minutes "$minutes" --lr "$lr" \
        --size 128 --batch 16 --warmup 20 --seed 0 --checkpoint-every 100 \
        --export "$repo_root/models/finetuned/$name$extension" > "$runs/$name.out" 2>&1 \
        || echo "== $(date -u +%H:%M:%S) $name FAILED" >> "$runs/train_variants.log"
    echo "== $(date -u +%H:%M:%S) $name done" >> "$runs/train_variants.log"
done
