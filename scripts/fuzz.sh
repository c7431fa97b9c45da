#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz, libFuzzer, nightly) of every parser that takes user bytes: TF.js model.json
# and shards (tfjs), the quantized-model file (quant_file), the TFLite importer (tflite), the ONNX importer (onnx),
# image decoding and preprocessing (image), --scheme/--requant names (scheme). Targets are in fuzz/fuzz_targets/.
#
#   scripts/fuzz.sh smoke             every target for 20 s from libFuzzer seed 1 (what .ci/run does)
#   scripts/fuzz.sh long [SECONDS]    every target for SECONDS (default 600), one after another, with final stats
#   FUZZ_TARGETS="tfjs image" scripts/fuzz.sh long 600    only those targets
#
# One fuzzer at a time with one job. Bounds on every run: -rss_limit_mb=2048 -malloc_limit_mb=2048 (no input may
# make a loader hold 2 GiB), -timeout=10 (no input may take 10 s), and a per-target -max_len below. A crash,
# timeout or OOM stops the script with libFuzzer's report and the input under fuzz/artifacts/TARGET/.
# fuzz/seed.py writes the seeds from ../shared into the corpus, fuzz/corpus/TARGET/ (ignored by git), each time;
# without ../shared only the committed seeds in fuzz/seeds/ and generated PNGs are used.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-}"
# smoke starts libFuzzer's random generator at a fixed seed from a corpus rebuilt afresh (fuzz/corpus-smoke/), so
# a CI failure replays here with the same command (only how far 20 s gets differs between machines); long
# explores anew each time and keeps growing fuzz/corpus/.
seed=()
corpus=fuzz/corpus
case "$mode" in
    smoke) seconds=20 seed=(-seed=1) corpus=fuzz/corpus-smoke; rm -rf "$corpus" ;;
    long) seconds="${2:-600}" ;;
    *) echo "usage: scripts/fuzz.sh smoke | long [SECONDS]" >&2; exit 2 ;;
esac

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz: SKIPPED: no nightly toolchain (cargo fuzz needs one: rustup toolchain install nightly)"
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# max_len per target, in bytes: scheme names are short; the tiny seeds of the model formats are 14-60 KB; 128 KB
# holds both real model.json files (49 and 123 KB) and every JPEG seed (up to 93 KB); 600,000 holds Google's
# 0.25 × 128 TFLite file (525,598 bytes) whole (the larger ones are cut there, which still exercises the errors).
declare -A max_len=([scheme]=256 [tfjs]=131072 [quant_file]=65536 [tflite]=600000 [image]=131072 [onnx]=131072)
targets="${FUZZ_TARGETS:-scheme tfjs quant_file tflite image onnx}"

# The mnq-gpu binary writes the quantized-model and exported-TFLite seeds; `cargo test` (CI) has built it.
mnq=target/debug/mnq-gpu
if [[ ! -x $mnq ]]; then
    echo "fuzz: no $mnq (run cargo build); seeding without quantized-model or exported TFLite files" >&2
    mnq=""
fi
python3 fuzz/seed.py ../shared "$corpus" $mnq

cargo +nightly fuzz build
mkdir -p fuzz/logs
for target in $targets; do
    log="fuzz/logs/$target.log"
    echo "fuzz: $target for $seconds s (max_len ${max_len[$target]}; log $log)"
    dict=()
    [[ -f fuzz/dicts/$target.dict ]] && dict=("-dict=fuzz/dicts/$target.dict")
    status=0
    cargo +nightly fuzz run "$target" "$corpus/$target" -- \
        -max_total_time="$seconds" -max_len="${max_len[$target]}" -rss_limit_mb=2048 -malloc_limit_mb=2048 \
        -timeout=10 -print_final_stats=1 "${seed[@]}" "${dict[@]}" >"$log" 2>&1 || status=$?
    if ((status != 0)); then
        tail -n 60 "$log"
        # The panic and libFuzzer's verdict come before the backtrace, often more than 60 lines up.
        echo "fuzz: $target: what went wrong (from $log):" >&2
        grep -A1 -E 'panicked at' "$log" | head -n 4 >&2 || true
        grep -m 2 -E '==[0-9]+== ERROR: libFuzzer|^SUMMARY' "$log" >&2 || true
        echo "fuzz: $target FAILED (exit $status); the input is under fuzz/artifacts/$target/" >&2
        exit 1
    fi
    # The last status line (#N DONE cov: ft: corp: exec/s: rss:) and the final stats.
    grep -E '^#[0-9]+' "$log" | tail -n 1
    grep -E '^stat::' "$log"
done
echo "fuzz: every target ran $seconds s without a crash, timeout or OOM"
