#!/usr/bin/env bash
# Regenerate the Rust types of ONNX's protobuf messages (src/onnx/onnx_generated.rs) from src/onnx/onnx.proto3,
# which is onnx/onnx's file as vendored (Apache-2.0, see src/onnx/mod.rs). scripts/onnx-proto-gen compiles it
# with protox (no system `protoc`) and prost-build (the same prost version as Cargo.toml's); the engine itself
# depends on `prost` only.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --locked --release --manifest-path scripts/onnx-proto-gen/Cargo.toml
rustfmt --edition 2021 src/onnx/onnx_generated.rs
echo "wrote src/onnx/onnx_generated.rs" >&2
