#!/usr/bin/env bash
# Regenerate the Rust reader/writer of TFLite flatbuffers (src/tflite/schema_generated.rs) from
# src/tflite/schema.fbs with planus-cli, the code generator of the `planus` crate (same version as Cargo.toml's).
set -euo pipefail
cd "$(dirname "$0")/.."
version=1.3.0
if ! cargo install --list | grep -q "^planus-cli v$version:"; then
    cargo install --locked --version "$version" planus-cli
fi
planus check src/tflite/schema.fbs
planus rust -o src/tflite/schema_generated.rs src/tflite/schema.fbs
echo "wrote src/tflite/schema_generated.rs" >&2
