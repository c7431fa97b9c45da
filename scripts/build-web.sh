#!/usr/bin/env bash
# Build the browser page into web/dist: the `web` crate for wasm32-unknown-unknown (release), wasm-bindgen's
# `--target web` glue, and the page itself (index.html, main.js). Then `mnq-gpu serve` serves it.
# Installs what it lacks: the wasm32 target (rustup) and wasm-bindgen-cli at exactly the version Cargo.lock pins
# for the wasm-bindgen crate (the two must match; building the CLI takes several minutes once).
# Usage: scripts/build-web.sh [--dev]   (--dev: an unoptimised, faster build)
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
[ "${1:-}" = "--dev" ] && profile=dev

rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

# The wasm-bindgen crate's version in Cargo.lock; the CLI must be the same.
version="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
[ -n "$version" ] || { echo "build-web: no wasm-bindgen in Cargo.lock (run cargo generate-lockfile?)" >&2; exit 1; }
if ! wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $version"; then
    echo "build-web: installing wasm-bindgen-cli $version (several minutes, once)" >&2
    # --locked reproduces the CLI's own lock file; a registry that lacks one of its pinned versions (yanked)
    # still gets a CLI of the right version from a fresh resolution.
    cargo install wasm-bindgen-cli --version "$version" --locked \
        || cargo install wasm-bindgen-cli --version "$version"
fi

cargo build -p mnq-web --target wasm32-unknown-unknown --profile "$profile"
dir=release
[ "$profile" = dev ] && dir=debug
wasm="target/wasm32-unknown-unknown/$dir/mnq_web.wasm"

rm -rf web/dist
mkdir -p web/dist
wasm-bindgen --target web --no-typescript --out-dir web/dist "$wasm"
cp web/index.html web/main.js web/dist/

bytes=$(stat -c %s web/dist/mnq_web_bg.wasm)
gzipped=$(gzip -9 -c web/dist/mnq_web_bg.wasm | wc -c)
echo "build-web: web/dist/mnq_web_bg.wasm: $bytes bytes, $gzipped gzipped (gzip -9)"
echo "build-web: serve it with: cargo run --release -- serve"
