#!/usr/bin/env bash
# Run a finetune/ script in .venv-finetune with tcmalloc preloaded (PyTorch's CPU training is 2-3x slower on
# glibc's malloc) and at the lowest CPU priority: `finetune/run.sh train.py --variant ...`.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${MNQ_FINETUNE_VENV:-$repo_root/.venv-finetune}/bin/python"
tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
[ -x "$python" ] || python="$("$repo_root/scripts/finetune-venv.sh" | tail -n1)"
script="$1"
shift
if [ -e "$tcmalloc" ]; then export LD_PRELOAD="$tcmalloc${LD_PRELOAD:+:$LD_PRELOAD}"; fi
exec nice -n 19 "$python" "$repo_root/finetune/$script" "$@"
