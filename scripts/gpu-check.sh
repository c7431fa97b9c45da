#!/usr/bin/env bash
# One call on a real GPU: every layer of the first 300 evaluation images checked bit for bit against the CPU
# integer reference for two schemes (tf8, cle-bc; MobileNetV1 0.75 × 224), then `bench --json` for 0.75 × 224
# (Google's weights, tf8) and 1.0 × 224 (synthetic weights: the 1.0 TF.js model lacks a shard) at batch 1, 8, 64
# and 256, written as one JSON summary.
#
# It needs only a release binary and the data, no Rust toolchain and no network:
#   - the binary: target/release/mnq-gpu (`cargo build --release` elsewhere), or --mnq;
#   - the data: ../shared (or --shared) with models/mobilenet_v1_0.75_224 and imagenet/val1300;
#   - where the machine has no Vulkan loader (`ldconfig -p | grep libvulkan` prints nothing), the packages that
#     ../shared/device/prepare-gl.sh downloads into .gl/: they are unpacked into / (as root) before anything runs.
# On NVIDIA machines whose driver ships its ICD under /usr/local/nvidia, VK_DRIVER_FILES is pointed at it.
#
# usage: scripts/gpu-check.sh [--mnq BIN] [--shared DIR] [--out FILE] [--images N] [--batches 1,8,64,256]
#                             [--iterations N]
# Exit: 0 when every layer matched, 3 when some differ (the summary says where), 1 on any other failure.
set -euo pipefail
cd "$(dirname "$0")/.."

mnq=target/release/mnq-gpu
shared=../shared
out=gpu-check.json
images=300
batches=1,8,64,256
iterations=10
while [ $# -gt 0 ]; do
    case "$1" in
        --mnq) mnq="$2"; shift 2 ;;
        --shared) shared="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --images) images="$2"; shift 2 ;;
        --batches) batches="$2"; shift 2 ;;
        --iterations) iterations="$2"; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu-check: unknown argument $1 (see --help)" >&2; exit 1 ;;
    esac
done
say() { echo "gpu-check: $*" >&2; }
[ -x "$mnq" ] || { say "no binary at $mnq: build it with \`cargo build --release\` or pass --mnq"; exit 1; }
model="$shared/models/mobilenet_v1_0.75_224"
val="$shared/imagenet/val1300"
[ -f "$model/model.json" ] && [ -f "$val/evaluation.txt" ] || { say "no data under $shared (see --shared)"; exit 1; }

# The Vulkan/EGL loaders, where the machine lacks them and .gl/ holds them.
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
    if compgen -G ".gl/*.deb" >/dev/null; then
        say "no Vulkan loader here: unpacking .gl/*.deb into /"
        for deb in .gl/*.deb; do dpkg -x "$deb" /; done
        ldconfig
    else
        say "ldconfig lists no Vulkan loader and there are no .gl/ packages (../shared/device/prepare-gl.sh fetches them); trying anyway"
    fi
fi
nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$nvidia_icd" ]; then
    export VK_DRIVER_FILES="$nvidia_icd"
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
data=(--model "$model" --calibration "$val/calibration.txt")

say "quantizing tf8 and cle-bc (100 calibration images)"
"$mnq" quantize "${data[@]}" --scheme tf8,cle-bc -o "$work"
tf8="$work/mobilenet_v1_0.75_224_tf8.safetensors"
cle_bc="$work/mobilenet_v1_0.75_224_cle-bc.safetensors"

say "checking every layer of $images evaluation images, tf8 and cle-bc, against the CPU integer reference"
check_rc=0
"$mnq" eval --model "$model" --quantized "$tf8,$cle_bc" --list "$val/evaluation.txt" --limit "$images" --check \
    --json >"$work/check.json" || check_rc=$?
[ "$check_rc" -eq 0 ] || [ "$check_rc" -eq 3 ] || { say "eval failed (exit $check_rc)"; exit 1; }

# bench measures batch 1 and one larger batch per call.
bench=()
for b in ${batches//,/ }; do
    [ "$b" -gt 1 ] || continue
    say "bench 0.75 x 224 (tf8) and 1.0 x 224 (synthetic) at batch 1 and $b"
    "$mnq" bench --model "$model" --quantized "$tf8" --batch "$b" --iterations "$iterations" --json \
        >"$work/bench-0.75-$b.json"
    "$mnq" bench --arch 1.0x224 --batch "$b" --iterations "$iterations" --json >"$work/bench-1.0-$b.json"
    bench+=("$work/bench-0.75-$b.json" "$work/bench-1.0-$b.json")
done

{
    printf '{\n"date": "%s",\n"host": "%s",\n"binary": "%s",\n' "$(date -u +%FT%TZ)" "$(uname -n)" "$("$mnq" --version)"
    printf '"images": %s,\n"check_exit_code": %s,\n"check": ' "$images" "$check_rc"
    cat "$work/check.json"
    printf ',\n"bench": [\n'
    sep=""
    for f in "${bench[@]}"; do
        printf '%s' "$sep"
        cat "$f"
        sep=","
    done
    printf ']\n}\n'
} >"$out"
if [ "$check_rc" -eq 0 ]; then
    say "every layer matched the CPU integer reference; summary in $out"
else
    say "some layers DIFFER from the CPU integer reference (exit 3); summary in $out"
fi
exit "$check_rc"
