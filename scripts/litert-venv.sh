#!/usr/bin/env bash
# Make (idempotently) the Python virtualenv that scripts/litert_crosscheck.py runs in: LiteRT (Google's TFLite
# runtime, whose reference kernels are the bit-exactness oracle) and numpy, at pinned versions.
# The venv lives at ${MNQ_LITERT_VENV:-.venv-litert}, relative to the repo root; the last line printed on stdout is
# its python, so `py="$(scripts/litert-venv.sh | tail -n1)"` works. Needs a python3 that LiteRT ships wheels for
# (tested: CPython 3.11 on x86-64 Debian); installs Debian's python3-venv with apt-get when `python3 -m venv` lacks it
# (root or sudo).
set -euo pipefail

LITERT_VERSION=2.3.0
NUMPY_VERSION=2.4.6

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MNQ_LITERT_VENV:-.venv-litert}"
case "$venv" in
    /*) ;;
    *) venv="$repo_root/$venv" ;;
esac
python="$venv/bin/python"

have_packages() {
    [ -x "$python" ] && "$python" - "$LITERT_VERSION" "$NUMPY_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if (version("ai-edge-litert"), version("numpy")) == tuple(sys.argv[1:3]) else 1)
EOF
}

install_python3_venv() {
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "litert-venv: 'python3 -m venv' failed and there is no apt-get; install your system's venv package" >&2
        exit 1
    fi
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "litert-venv: installing Debian's python3-venv" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
}

if ! have_packages; then
    command -v python3 >/dev/null 2>&1 || { echo "litert-venv: python3 is not installed" >&2; exit 1; }
    if [ ! -x "$python" ]; then
        rm -rf "$venv"
        if ! python3 -m venv "$venv" >/dev/null 2>&1; then
            rm -rf "$venv"
            install_python3_venv
            python3 -m venv "$venv"
        fi
    fi
    echo "litert-venv: installing ai-edge-litert==$LITERT_VERSION numpy==$NUMPY_VERSION into $venv" >&2
    "$python" -m pip install --quiet --disable-pip-version-check --no-cache-dir \
        "ai-edge-litert==$LITERT_VERSION" "numpy==$NUMPY_VERSION" >&2
    have_packages || { echo "litert-venv: the packages did not install into $venv" >&2; exit 1; }
fi
echo "$python"
