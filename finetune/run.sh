#!/usr/bin/env bash
# Run a finetune/ script in .venv-finetune with tcmalloc preloaded (PyTorch's CPU training is 2-3x slower on
# glibc's malloc), at the lowest CPU priority, and with OpenMP's threads sleeping rather than spinning while they
# wait: on a CPU shared with other work, spinning threads of a niced process wait for each other's time slices
# (measured here under Rust builds: 3.1 img/s with 2 spinning threads, 20.5 with OMP_WAIT_POLICY=PASSIVE, 24 with
# 1 thread). `finetune/run.sh train.py --variant ...`.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${MNQ_FINETUNE_VENV:-$repo_root/.venv-finetune}/bin/python"
tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
[ -x "$python" ] || python="$("$repo_root/scripts/finetune-venv.sh" | tail -n1)"
script="$1"
shift
if [ -e "$tcmalloc" ]; then export LD_PRELOAD="$tcmalloc${LD_PRELOAD:+:$LD_PRELOAD}"; fi
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec nice -n 19 "$python" "$repo_root/finetune/$script" "$@"
