#!/usr/bin/env bash
# The README's test command: `cargo test` with the arguments given, then how many tests skipped and why.
#
# A test skips (and passes) when what it needs is absent: ../shared's data (ImageNet images, Google's other models:
# not redistributable, so an outside clone has none), or a GPU adapter. Each skip says so in one line, but
# `cargo test` hides a passing test's output, so the tests also append that line to $MNQ_SKIP_LOG
# (tests/common/mod.rs, `skip`) and this script counts them at the end: a green run is honest about what it did
# not run. MNQ_REQUIRE_DATA=1 and MNQ_REQUIRE_GPU=1 turn those skips into failures (.ci/run sets both).
set -uo pipefail
cd "$(dirname "$0")/.."
# Mesa's Vulkan loader complains on stderr when this is unset (harmless); give it a private folder.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
MNQ_SKIP_LOG="$(mktemp)"
export MNQ_SKIP_LOG
trap 'rm -f "$MNQ_SKIP_LOG"' EXIT

cargo test "$@"
status=$?

data=$(grep -c '^SKIPPED (no data)' "$MNQ_SKIP_LOG")
gpu=$(grep -c '^SKIPPED (no GPU)' "$MNQ_SKIP_LOG")
echo
if [ "$data" -eq 0 ] && [ "$gpu" -eq 0 ]; then
    echo "test.sh: no test skipped"
else
    echo "test.sh: $data tests skipped for want of ../shared data, $gpu for want of a GPU adapter:"
    sed 's/^/  /' "$MNQ_SKIP_LOG"
    [ "$data" -eq 0 ] || echo "  (../shared is this project's workplace data; MNQ_REQUIRE_DATA=1 makes these skips failures)"
fi
[ "$status" -eq 0 ] && echo "test.sh: passed" || echo "test.sh: FAILED (cargo test exit $status)"
exit "$status"
