#!/usr/bin/env bash
# Make (idempotently) the Python virtualenv that scripts/ort_crosscheck.py runs in: ONNX Runtime (the oracle for
# ONNX models, and `quantize_static`, which makes the int8 models it checks), onnx and numpy, at pinned versions.
# The venv lives at ${MNQ_ORT_VENV:-.venv-ort}, relative to the repo root; the last line printed on stdout is
# its python, so `py="$(scripts/ort-venv.sh | tail -n1)"` works. Needs a python3 that onnxruntime ships wheels for
# (tested: CPython 3.11 on x86-64 Debian); installs Debian's python3-venv with apt-get when `python3 -m venv` lacks it
# (root or sudo).
set -euo pipefail

ORT_VERSION=1.31.1
ONNX_VERSION=1.23.2
NUMPY_VERSION=2.4.6

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MNQ_ORT_VENV:-.venv-ort}"
case "$venv" in
    /*) ;;
    *) venv="$repo_root/$venv" ;;
esac
python="$venv/bin/python"

have_packages() {
    [ -x "$python" ] && "$python" - "$ORT_VERSION" "$ONNX_VERSION" "$NUMPY_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if (version("onnxruntime"), version("onnx"), version("numpy")) == tuple(sys.argv[1:4]) else 1)
EOF
}

install_python3_venv() {
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "ort-venv: 'python3 -m venv' failed and there is no apt-get; install your system's venv package" >&2
        exit 1
    fi
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "ort-venv: installing Debian's python3-venv" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
}

if ! have_packages; then
    command -v python3 >/dev/null 2>&1 || { echo "ort-venv: python3 is not installed" >&2; exit 1; }
    if [ ! -x "$python" ]; then
        rm -rf "$venv"
        if ! python3 -m venv "$venv" >/dev/null 2>&1; then
            rm -rf "$venv"
            install_python3_venv
            python3 -m venv "$venv"
        fi
    fi
    echo "ort-venv: installing onnxruntime==$ORT_VERSION onnx==$ONNX_VERSION numpy==$NUMPY_VERSION into $venv" >&2
    "$python" -m pip install --quiet --disable-pip-version-check --no-cache-dir \
        "onnxruntime==$ORT_VERSION" "onnx==$ONNX_VERSION" "numpy==$NUMPY_VERSION" >&2
    have_packages || { echo "ort-venv: the packages did not install into $venv" >&2; exit 1; }
fi
echo "$python"
