#!/usr/bin/env bash
# Accuracy of a fine-tuned model with mnq-gpu, on val1300's 1,200 evaluation images and separately on those of
# them whose class is one of imagenette's 20 (the fine-tuning classes; the rest is the difference of the two runs).
#     finetune/evaluate.sh MODEL [SCHEMES] [EXTRA eval ARGS...]
# SCHEMES default: tf8,tf8-zero-var,per-channel for a TF.js folder, tflite for a .tflite file. MNQ_GPU: the binary.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared="${MNQ_SHARED:-$repo_root/../shared}"
mnq_gpu="${MNQ_GPU:-$repo_root/target/release/mnq-gpu}"
model="$1"
case "$model" in
    *.tflite) schemes="${2:-tflite}" ;;
    *) schemes="${2:-tf8,tf8-zero-var,per-channel}" ;;
esac
shift $(( $# < 2 ? $# : 2 ))
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
val="$shared/imagenet/val1300"
awk '{print $2}' "$shared/imagenette/labels.txt" | sort -un > "$tmp/classes"
awk -v d="$val/images" 'NR == FNR { c[$1] = 1; next } ($2 in c) { print d "/" $1, $2 }' "$tmp/classes" \
    "$val/evaluation.txt" > "$tmp/evaluation-20.txt"
echo "== all: $mnq_gpu eval --model $model --scheme $schemes $*"
nice -n 19 "$mnq_gpu" eval --model "$model" --scheme "$schemes" "$@"
echo "== the $(wc -l < "$tmp/evaluation-20.txt") evaluation images of imagenette's 20 classes"
nice -n 19 "$mnq_gpu" eval --model "$model" --scheme "$schemes" --list "$tmp/evaluation-20.txt" "$@"
