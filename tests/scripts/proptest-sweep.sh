#!/usr/bin/env bash
# The property tests with fresh random seeds, over and over, until a time budget is
# spent. CI runs them once on one fixed seed (PROPTEST_RNG_SEED in .ci/run) so that
# its verdict is repeatable; this is where new cases get explored. A failure prints
# proptest's minimal case and the seed, and proptest saves it under
# `*.proptest-regressions` next to the test: commit that file with the fix.
#
# Usage: tests/scripts/proptest-sweep.sh [BUDGET_SECONDS]   (default 1800)
# Environment: PROPTEST_CASES (cases per property per round, default 1024; tests that
#              fix their own count keep it), PACKAGES (default "sluice-core sluice-sim").
set -euo pipefail

BUDGET=${1:-1800}
export PROPTEST_CASES=${PROPTEST_CASES:-1024}
PACKAGES=${PACKAGES:-"sluice-core sluice-sim"}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

args=()
for package in $PACKAGES; do args+=(-p "$package"); done
cargo test --release --quiet "${args[@]}" --no-run

deadline=$(( $(date +%s) + BUDGET ))
round=0
while [ "$(date +%s)" -lt "$deadline" ]; do
  round=$((round + 1))
  seed=$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')
  echo "== round $round, PROPTEST_RNG_SEED=$seed"
  log=$(mktemp)
  if ! PROPTEST_RNG_SEED=$seed cargo test --release --quiet "${args[@]}" >"$log" 2>&1; then
    # The failure and its minimal case, then proptest's summary.
    grep -a -A 12 -e '^---- ' -e 'Test failed' "$log" | head -n 80
    tail -n 15 "$log"
    rm -f "$log"
    echo "property failure in round $round: rerun with PROPTEST_RNG_SEED=$seed" >&2
    exit 1
  fi
  rm -f "$log"
done
echo "proptest sweep: $round rounds, no failure"
