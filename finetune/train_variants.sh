#!/usr/bin/env bash
# The three float variants' fine-tuning, one after another, as models/finetuned/ was made:
#     finetune/train_variants.sh [RUNS_DIR]          (default /work/finetune-runs; logs and checkpoints there)
# Each run resumes from RUNS_DIR/VARIANT/checkpoint.pt if present and exports to models/finetuned/VARIANT.
# Budgets in minutes of training time (env MINUTES_<variant>, defaults below) at 160 px, batch 32, seed 0.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${1:-/work/finetune-runs}"
mkdir -p "$runs"
for spec in "dw-linear+relu+l2:${MINUTES_L2:-35}" "dw-linear+relu:${MINUTES_RELU:-25}" "dw-linear:${MINUTES_DW:-25}"; do
    variant="${spec%%:*}"
    minutes="${spec##*:}"
    echo "== $(date -u +%H:%M:%S) $variant, $minutes min" >> "$runs/train_variants.log"
    "$repo_root/finetune/run.sh" train.py --variant "$variant" --run "$runs/$variant" --minutes "$minutes" \
        --size 160 --batch 32 --seed 0 --export "$repo_root/models/finetuned/$variant" \
        > "$runs/$variant.out" 2>&1
    echo "== $(date -u +%H:%M:%S) $variant done" >> "$runs/train_variants.log"
done
