#!/usr/bin/env bash
# Make (idempotently) the Python virtualenv that finetune/ runs in: PyTorch (CPU use; PyPI's wheel brings the CUDA
# libraries, a ~5.4 GB venv, ~35 s to install), numpy, Pillow, tqdm and flatbuffers at the versions pinned in
# finetune/requirements.txt. Also installs Debian's tcmalloc (libtcmalloc-minimal4) when it is missing: PyTorch's CPU
# training runs 2-3x faster with it preloaded (finetune/run.sh does the LD_PRELOAD).
# The venv lives at ${MNQ_FINETUNE_VENV:-.venv-finetune}, relative to the repo root; the last line printed on stdout is
# its python, so `py="$(scripts/finetune-venv.sh | tail -n1)"` works. Tested: CPython 3.11 on x86-64 Debian, as root.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
requirements="$repo_root/finetune/requirements.txt"
venv="${MNQ_FINETUNE_VENV:-.venv-finetune}"
case "$venv" in
    /*) ;;
    *) venv="$repo_root/$venv" ;;
esac
python="$venv/bin/python"
tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4

apt_install() {
    command -v apt-get >/dev/null 2>&1 || { echo "finetune-venv: no apt-get to install $*" >&2; return 1; }
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "finetune-venv: installing Debian's $*" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# Every pinned `name==version` line of requirements.txt is installed at that version.
have_packages() {
    [ -x "$python" ] && "$python" - "$requirements" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
pins = [l.split("#")[0].strip() for l in open(sys.argv[1])]
pins = [p.split("==") for p in pins if p]
sys.exit(0 if all(version(name) == want for name, want in pins) else 1)
PY
}

[ -e "$tcmalloc" ] || apt_install libtcmalloc-minimal4 || echo "finetune-venv: no tcmalloc; training runs 2-3x slower" >&2

if ! have_packages; then
    command -v python3 >/dev/null 2>&1 || { echo "finetune-venv: python3 is not installed" >&2; exit 1; }
    if [ ! -x "$python" ]; then
        rm -rf "$venv"
        if ! python3 -m venv "$venv" >/dev/null 2>&1; then
            rm -rf "$venv"
            apt_install python3-venv
            python3 -m venv "$venv"
        fi
    fi
    echo "finetune-venv: installing finetune/requirements.txt into $venv" >&2
    "$python" -m pip install --quiet --disable-pip-version-check --no-cache-dir -r "$requirements" >&2
    have_packages || { echo "finetune-venv: the packages did not install into $venv" >&2; exit 1; }
fi
echo "$python"
