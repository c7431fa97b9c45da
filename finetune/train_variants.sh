#!/usr/bin/env bash
# The fine-tuning runs as models/finetuned/ was made: the three float variants side by side (one thread each; the
# machine had 2 cores), then, separately, QAT (its file predates this; see models/finetuned/README.md).
#     finetune/train_variants.sh [RUNS_DIR]          (default /work/ft-runs; logs and checkpoints there)
# Each run resumes from RUNS_DIR/NAME/checkpoint.pt if present and exports to models/finetuned/NAME[.tflite].
# Float variants: refit start (refit.py, 384 imagenette training images), then end to end, 14 min of training time,
# Adam lr 1e-5, 160 px, batch 32, gradient norm clipped to 2, seed 0 (MINUTES to change the budget).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${1:-/work/ft-runs}"
shared="${MNQ_SHARED:-$repo_root/../shared}"
mkdir -p "$runs"
for name in dw-linear+relu+l2 dw-linear+relu dw-linear; do
    "$repo_root/finetune/run.sh" train.py --variant "$name" --run "$runs/$name" --minutes "${MINUTES:-14}" \
        --lr 1e-5 --warmup 50 --batch 32 --size 160 --clip 2 --seed 0 --threads 1 --fit-images 384 \
        --checkpoint-every 100 --data "$shared/imagenette" --model "$shared/models/mobilenet_v1_0.75_224" \
        --export "$repo_root/models/finetuned/$name" > "$runs/$name.out" 2>&1 &
done
wait
# QAT (models/finetuned/qat-tf8.tflite, made by the earlier pipeline at 128 px, batch 16, 20 min, lr 1e-4):
#   finetune/run.sh train.py --variant qat-tf8 --run RUNS/qat-tf8 --minutes 20 --lr 1e-4 --size 128 --batch 16 \
#       --warmup 20 --seed 0 --checkpoint-every 100 --export models/finetuned/qat-tf8.tflite
