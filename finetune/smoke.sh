#!/usr/bin/env bash
# CI smoke test of finetune/ (never the full training): the refit of dw-linear+relu+l2 (and of its classifier) on 16
# imagenette images and its export run with `run --check`, and again exactly equalized (equalize.py); 6 distillation
# steps of dw-linear+relu+l2 on 32 imagenette images at 96 px, asserting the loss falls; its TF.js export, which
# mnq-gpu must load and run with every int8 layer checked (`run --check`); the same for a few QAT steps (with the
# options tried: --equalize, --mixup, --logit-mse, --weight-lr-steps) and its uint8 TFLite file, which held_out_kl.py
# then compares with the teacher on 4 held-out photos; and the float equivalence of PyTorch's network with mnq-gpu's
# float CPU reference. About 1-2 minutes on 2 cores, the virtualenv's install excluded.
#     finetune/smoke.sh            (MNQ_GPU=path/to/mnq-gpu to use a built binary; default target/release/mnq-gpu,
#                                   built with cargo if absent; FLOAT_LOGITS likewise for examples/float_logits)
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
shared="${MNQ_SHARED:-$repo_root/../shared}"
mnq_gpu="${MNQ_GPU:-target/release/mnq-gpu}"
float_logits="${FLOAT_LOGITS:-target/release/examples/float_logits}"
[ -x "$mnq_gpu" ] || cargo build --release --quiet
[ -x "$float_logits" ] || cargo build --release --quiet --example float_logits
python="$(scripts/finetune-venv.sh | tail -n1)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS

run() { finetune/run.sh train.py --limit-images 32 --cache "$tmp" --batch 16 --size 96 --steps 6 --warmup 1 \
    --lr 1e-3 --log-every 1 --checkpoint-every 3 --data "$shared/imagenette" \
    --model "$shared/models/mobilenet_v1_0.75_224" "$@"; }

echo "smoke: float equivalence with mnq-gpu's float CPU reference"
finetune/run.sh check_float.py --model "$shared/models/mobilenet_v1_0.75_224" --float-logits "$float_logits" \
    "$shared/images/grace_hopper.jpg"

echo "smoke: dw-linear+relu+l2 refitted (refit.py, the classifier too), its export run with every int8 layer checked"
finetune/run.sh refit.py --variant dw-linear+relu+l2 --method full --limit-images 32 --fit-images 16 \
    --refit-classifier 0.1 --classifier-crops 32 --cache "$tmp" --data "$shared/imagenette" \
    --model "$shared/models/mobilenet_v1_0.75_224" --out "$tmp/refit"
echo "$shared/images/grace_hopper.jpg 0" > "$tmp/calibration.txt"  # calibrating on val1300's 100 takes long
"$mnq_gpu" run --check --model "$tmp/refit" --scheme tf8 --calibration "$tmp/calibration.txt" \
    "$shared/images/grace_hopper.jpg"

echo "smoke: the refitted folder exactly equalized (equalize.py fails if the logits move), run with every layer checked"
finetune/run.sh equalize.py "$tmp/refit" "$tmp/refit-equalized" | tail -n2
"$mnq_gpu" run --check --model "$tmp/refit-equalized" --scheme tf8 --calibration "$tmp/calibration.txt" \
    "$shared/images/grace_hopper.jpg"

echo "smoke: dw-linear+relu+l2, 6 steps from the folded variant (--init fold: far from the teacher, so the loss"
echo "falls at a large step; the refitted start needs lr ~1e-5, too small to show in 6 steps)"
run --variant dw-linear+relu+l2 --init fold --run "$tmp/float" --export "$tmp/dw-linear+relu+l2" > "$tmp/float.out"
"$python" - "$tmp/float/log.jsonl" <<'PY'
import json, sys
records = [json.loads(line) for line in open(sys.argv[1])]
losses = [r["loss"] for r in records if "loss" in r]  # the other lines: held-out agreement at checkpoints
first, last = sum(losses[:2]) / 2, sum(losses[-2:]) / 2
print(f"smoke: loss {first:.3f} -> {last:.3f} over {len(losses)} steps")
assert last < first, "the loss did not fall"
PY
"$mnq_gpu" run --check --model "$tmp/dw-linear+relu+l2" --scheme tf8 --calibration "$tmp/calibration.txt" \
    "$shared/images/grace_hopper.jpg"
finetune/run.sh check_float.py --model "$tmp/dw-linear+relu+l2" --float-logits "$float_logits" \
    "$shared/images/grace_hopper.jpg"

echo "smoke: dw-linear+relu, 6 steps along the path from the original network (--init path), its export"
run --variant dw-linear+relu --init path --path-fraction 0.5 --path-width 2 --run "$tmp/path" \
    --export "$tmp/dw-linear+relu" > "$tmp/path.out"
"$mnq_gpu" run --check --model "$tmp/dw-linear+relu" --scheme tf8 --calibration "$tmp/calibration.txt" \
    "$shared/images/grace_hopper.jpg"

echo "smoke: qat-tf8 with the options tried (equalized start, mixup, logit MSE, weight lr in quantization steps),"
echo "3 steps, then resumed for 3 more"
qat_options=(--variant qat-tf8 --equalize --mixup 0.5 --logit-mse 0.5 --weight-lr-steps 0.005 --run "$tmp/qat")
run "${qat_options[@]}" --steps 3 > "$tmp/qat.out"
grep -q "equalized" "$tmp/qat.out"
run "${qat_options[@]}" --export "$tmp/qat-tf8.tflite" > "$tmp/qat.out"
grep -q "resumed qat-tf8 at step 3" "$tmp/qat.out"
"$mnq_gpu" run --check --model "$tmp/qat-tf8.tflite" "$shared/images/grace_hopper.jpg"
finetune/run.sh check_qat.py --checkpoint "$tmp/qat/checkpoint.pt" --tflite "$tmp/qat-tf8.tflite" \
    --mnq-gpu "$mnq_gpu" "$shared/images/grace_hopper.jpg" | grep -E "top-1|check"
finetune/run.sh held_out_kl.py --limit-images 32 --images 4 --cache "$tmp" --data "$shared/imagenette" \
    --model "$shared/models/mobilenet_v1_0.75_224" --mnq-gpu "$mnq_gpu" "$tmp/qat-tf8.tflite" | grep "blends KL"
echo "smoke: ok in $((SECONDS - start)) s"
