#!/usr/bin/env bash
# The full ONNX Runtime cross-check (issue 17): mnq-gpu's float export of the TF.js 0.75 model, quantized by
# ORT's quantize_static (calibrated on calibration.txt, preprocessed as mnq-gpu does) as QDQ per tensor, QDQ per
# channel, QDQ uint8 and QOperator; every layer of mnq-gpu, on the GPU and on the CPU integer reference, against
# ORT's default CPU session on the first IMAGES (default 100) evaluation images: results/ort_crosscheck.json. Then
# mnq-gpu's own schemes (EXPORT_SCHEMES) exported as QDQ under --requant fp32, likewise:
# results/ort_crosscheck_export.json.
# MNQ (default: target/release/mnq-gpu, built here; its examples/preprocess_npy beside it), OUT (default: a
# temporary folder for the models), JSON and EXPORT_JSON (the two results' paths) may be set.
set -euo pipefail
cd "$(dirname "$0")/.."
images="${IMAGES:-100}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
if [ -z "${MNQ:-}" ]; then
    cargo build --release --bin mnq-gpu --example preprocess_npy
    MNQ=target/release/mnq-gpu
fi
preprocess="$(dirname "$MNQ")/examples/preprocess_npy"
py="$(scripts/ort-venv.sh | tail -n1)"
out="${OUT:-$(mktemp -d)}"
mkdir -p "$out" results
model=mobilenet_v1_0.75_224
"$MNQ" export --model "../shared/models/$model" --format onnx --float -o "$out/$model.onnx"
"$preprocess" ../shared/imagenet/val1300/calibration.txt 224 "$out/calibration.npy"
"$py" scripts/ort_quantize.py --float "$out/$model.onnx" --calibration "$out/calibration.npy" --out "$out"
models="$out/${model}_qdq.onnx,$out/${model}_qdq_pc.onnx,$out/${model}_qdq_u8.onnx,$out/${model}_qop.onnx"
"$py" scripts/ort_crosscheck.py --mnq "$MNQ" --models "$models" --images "$images" \
    --json "${JSON:-results/ort_crosscheck.json}"
exported="$out/exported"
mkdir -p "$exported"
"$MNQ" export --model "../shared/models/$model" --scheme "${EXPORT_SCHEMES:-tf8,tf8+sym,per-channel+sym,tf8-zero-var}" \
    --requant fp32 --format onnx -o "$exported"
"$py" scripts/ort_crosscheck.py --mnq "$MNQ" --models "$(ls "$exported"/*.onnx | paste -sd,)" --images "$images" \
    --json "${EXPORT_JSON:-results/ort_crosscheck_export.json}"
