#!/usr/bin/env bash
# The float variants of models/finetuned/, one after the other at 2 threads (QAT: its command is in
# models/finetuned/README.md, "How they were made").
#     finetune/train_variants.sh [RUNS_DIR]          (default /work/ft-runs; logs and checkpoints there)
# Each run resumes from RUNS_DIR/NAME/checkpoint.pt if present and exports to models/finetuned/NAME, exactly equalized
# (export.py). Refit start (refit.py), then end to end, Adam lr 1e-5, 160 px, batch 32, gradient norm clipped to 2,
# seed 0:
#   dw-linear+relu+l2, dw-linear+relu  refit on 2,048 imagenette training images (about 15 GB of memory), then 361 and
#                                      362 steps: the files, 2026-12-07;
#   dw-linear                          refit on 384 images, then 294 steps: its file is the 2026-12-05 run, which had
#                                      14 min of training time at 1 thread beside the two others (--minutes 14; the
#                                      steps fixed here make the lr schedule a function of the step, not of the clock).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${1:-/work/ft-runs}"
shared="${MNQ_SHARED:-$repo_root/../shared}"
mkdir -p "$runs"
for recipe in dw-linear+relu+l2:2048:361 dw-linear+relu:2048:362 dw-linear:384:294; do
    IFS=: read -r name fit_images steps <<< "$recipe"
    echo "train_variants: $name (refit on $fit_images images, $steps steps; log $runs/$name.out)"
    "$repo_root/finetune/run.sh" train.py --variant "$name" --run "$runs/$name" --steps "$steps" --lr 1e-5 \
        --warmup 50 --batch 32 --size 160 --clip 2 --seed 0 --threads 2 --fit-images "$fit_images" \
        --checkpoint-every 100 --data "$shared/imagenette" --model "$shared/models/mobilenet_v1_0.75_224" \
        --export "$repo_root/models/finetuned/$name" > "$runs/$name.out" 2>&1
done
