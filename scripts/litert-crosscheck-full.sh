#!/usr/bin/env bash
# The full LiteRT cross-check behind RESULTS.md (issue 8): every layer of mnq-gpu, on the GPU and on the CPU
# integer reference, against LiteRT's reference kernels (BUILTIN_REF), fed the same uint8 inputs.
#   1. Google's four uint8 TFLite models on the first IMAGES (default 300) evaluation images:
#      results/litert_crosscheck.json (about 20 minutes on 2 cores);
#   2. models mnq-gpu exported (`mnq-gpu export`) on the first EXPORT_IMAGES (default 100):
#      results/litert_crosscheck_export.json;
#   3. (issue 11) mnq-gpu's float requantization, `--requant fp32`, on Google's four models against LiteRT's default
#      path, the XNNPACK delegate, on the first IMAGES: results/litert_crosscheck_fp32.json;
#   4. (issue 19) the two MobileNetV2 files (Google's QAT uint8, TF2's per-channel int8), graphs with residual ADDs,
#      on the first V2_IMAGES (default 100): results/litert_crosscheck_v2.json, and under `--requant fp32` against
#      XNNPACK, results/litert_crosscheck_v2_fp32.json (RESULTS.md's conventions table counts them).
# Then `cargo run --release -- report` renders them into RESULTS.md (the third in its `requant` section).
set -euo pipefail
cd "$(dirname "$0")/.."
images="${IMAGES:-300}"
export_images="${EXPORT_IMAGES:-100}"
export_schemes="${EXPORT_SCHEMES:-tf8,tf8-zero-var,per-channel+sym}"
v2_images="${V2_IMAGES:-100}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
cargo build --release
mnq=target/release/mnq-gpu
py="$(scripts/litert-venv.sh | tail -n1)"
mkdir -p results
tflite=../shared/models/tflite
google="$tflite/mobilenet_v1_1.0_224_quant.tflite,$tflite/mobilenet_v1_0.75_192_quant.tflite"
google="$google,$tflite/mobilenet_v1_0.5_160_quant.tflite,$tflite/mobilenet_v1_0.25_128_quant.tflite"
"$py" scripts/litert_crosscheck.py --mnq "$mnq" --models "$google" --images "$images" --summary \
    --json results/litert_crosscheck.json

exported="$(mktemp -d)"
trap 'rm -rf "$exported"' EXIT
"$mnq" export --scheme "$export_schemes" -o "$exported"
"$py" scripts/litert_crosscheck.py --mnq "$mnq" --models "$(ls "$exported"/*.tflite | paste -sd,)" \
    --images "$export_images" --json results/litert_crosscheck_export.json

"$py" scripts/litert_crosscheck.py --mnq "$mnq" --models "$google" --images "$images" --requant fp32 \
    --json results/litert_crosscheck_fp32.json

v2="$tflite/mobilenet_v2_1.0_224_quant.tflite,$tflite/tf2_mobilenet_v2_1.0_224_ptq.tflite"
"$py" scripts/litert_crosscheck.py --mnq "$mnq" --models "$v2" --images "$v2_images" \
    --json results/litert_crosscheck_v2.json
"$py" scripts/litert_crosscheck.py --mnq "$mnq" --models "$v2" --images "$v2_images" --requant fp32 \
    --json results/litert_crosscheck_v2_fp32.json
