#!/usr/bin/env bash
# Soak and concurrency: `mnq-gpu soak` (10,000 inferences through one GPU plan, then 1,000 plan creations and
# drops, every output checked; RSS and live GPU objects at the start and end of each), then two processes using
# the GPU at once, each checking every layer of its images against the CPU integer reference (`eval --check`).
# A benchmark, not a test: it reports what it measured and exits non-zero only if a result differs or a
# command fails.
#
# usage: scripts/soak.sh [--mnq BIN] [--model MODEL] [--inferences N] [--plans N] [--images N]
#   MODEL defaults to Google's uint8 MobileNetV1 0.25 × 128 (../shared/models/tflite), the quickest real model.
set -euo pipefail
cd "$(dirname "$0")/.."

mnq=target/release/mnq-gpu
model=../shared/models/tflite/mobilenet_v1_0.25_128_quant.tflite
inferences=10000
plans=1000
images=200
while [ $# -gt 0 ]; do
    case "$1" in
        --mnq) mnq="$2"; shift 2 ;;
        --model) model="$2"; shift 2 ;;
        --inferences) inferences="$2"; shift 2 ;;
        --plans) plans="$2"; shift 2 ;;
        --images) images="$2"; shift 2 ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "soak: unknown argument $1 (see --help)" >&2; exit 1 ;;
    esac
done
[ -x "$mnq" ] || { echo "soak: no binary at $mnq: build it with \`cargo build --release\` or pass --mnq" >&2; exit 1; }

echo "== soak: $inferences inferences, $plans plans ($model)"
"$mnq" soak --model "$model" --inferences "$inferences" --plans "$plans"

echo "== two processes at once: eval --check on $images images each"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for p in 1 2; do
    "$mnq" eval --model "$model" --limit "$images" --check --csv >"$work/$p.csv" 2>"$work/$p.err" &
    pids[$p]=$!
done
failed=0
for p in 1 2; do
    rc=0
    wait "${pids[$p]}" || rc=$?
    case "$rc" in
        0) echo "process $p: every layer of $images images matched the CPU integer reference" ;;
        3) echo "process $p: results DIFFER from the CPU integer reference"; failed=1 ;;
        *) echo "process $p: failed (exit $rc):"; cat "$work/$p.err"; failed=1 ;;
    esac
done
# Both computed the same accuracy and checked the same bytes (every column but the wall time).
if [ "$failed" -eq 0 ] && ! diff <(cut -d, -f1-7,9-10 "$work/1.csv") <(cut -d, -f1-7,9-10 "$work/2.csv") >/dev/null; then
    echo "the two processes' accuracies differ:"; cat "$work/1.csv" "$work/2.csv"; failed=1
fi
cat "$work/1.csv"
exit "$failed"
