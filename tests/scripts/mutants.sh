#!/usr/bin/env bash
# Mutation testing of core's decision modules with cargo-mutants: each mutant (a
# function body replaced, an operator flipped) must make some test of sluice-core
# fail. A mutant that survives is a decision no test pins down: kill it with a test,
# or list it in the summary with the reason it is equivalent. Not part of CI (it
# rebuilds core once per mutant); run it by hand with a time budget.
#
# Usage: tests/scripts/mutants.sh [BUDGET_SECONDS] [MODULE...]
#   BUDGET_SECONDS  wall-clock budget for the whole run (default 3600); when it is
#                   spent cargo-mutants is stopped and the summary covers the mutants
#                   tested so far (the rest are counted as not run).
#   MODULE          paths under core/src (default: queue router delivery notice
#                   smtp/client), a folder or a file.
# Environment: JOBS (parallel builds, default 1); OUT (output folder, default
#              target/mutants); SUMMARY (summary file, default $OUT/summary.md);
#              TEST_ARGS (what `cargo test` runs per mutant, default "--lib --tests":
#              core's unit and integration tests, for one module e.g.
#              "--lib --test queue_props"); IN_PLACE=1 mutates the working tree
#              itself (no copy, no second build of the dependencies: do not edit
#              core meanwhile; the tree is checked afterwards); BASELINE=skip
#              skips the run of the unmutated tree (after one good baseline);
#              TIMEOUT (seconds for one mutant's tests, default 20: unmutated
#              they take 1 to 2 s, and every mutant that hangs them costs the
#              whole timeout) and BUILD_TIMEOUT (for its build, default 600);
#              FAST=0 builds the mutants with the test profile as it is (debug
#              info, opt-level 1); EXTRA_ARGS more cargo-mutants options, e.g.
#              "--iterate" to go on after an interrupted run without retesting
#              the mutants it caught (the summary then counts only the new ones).
#
# What a mutant costs (measured 2026-12-07 on the shared 2-core machine, load about
# 13, one router mutant, `--lib --test router_props`, in place): the tests run in
# about a second; the rest is cargo rebuilding core, sluice-spec (it depends on core)
# and relinking the test binaries. With the test profile as it is (debug info,
# opt-level 1) a mutant took 22 s wall, 7.1 s CPU; without debug info for core and
# spec 17.5 s, 4.7 s CPU; without debug info and at opt-level 0 9.7 s, 2.3 s CPU
# (the tests at opt-level 0 still finish in about a second). So by default core and
# spec are built that way, through `--config` overrides of the test profile for those
# two packages only: the third-party dependencies keep their builds in target/debug
# (no rebuild of them, unlike a separate [profile.*], whose folder starts empty),
# and the overridden core gets its own file names, so it does not evict the normal
# test build either. Proptest neither shrinks a failure (PROPTEST_MAX_SHRINK_ITERS=0:
# any failure kills the mutant) nor writes regression files into core (which an
# in-place run would leave behind).
#
# Run one module at a time, each with its own OUT and the tests that judge it:
#   router       --lib --test router_props
#   notice       --lib --test notice_build --test notice_props
#   smtp/client  --lib --test client_props
#   delivery     --lib --test delivery_mx_props --test delivery_path_props
#   queue        --lib --test queue_props
# (tests/mutants/2026-12-07-overview.md has the commands). Stopping a run by hand
# (Ctrl-C) makes cargo-mutants exit 1, which this script reports as a failure with no
# summary; the outcome lists in $OUT/mutants.out are still complete up to that point.
# Installs cargo-mutants (`cargo install cargo-mutants --locked`) when missing.
set -euo pipefail

BUDGET=${1:-3600}
shift || true
MODULES=("$@")
if [ ${#MODULES[@]} -eq 0 ]; then
  MODULES=(queue router delivery notice smtp/client)
fi
JOBS=${JOBS:-1}
TIMEOUT=${TIMEOUT:-20}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-600}
BASELINE=${BASELINE:-run}
TEST_ARGS=${TEST_ARGS:---lib --tests}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-$ROOT/target/mutants}
SUMMARY=${SUMMARY:-$OUT/summary.md}
cd "$ROOT"

if ! cargo mutants --version >/dev/null 2>&1; then
  cargo install cargo-mutants --locked
fi

files=()
for module in "${MODULES[@]}"; do
  path="core/src/$module"
  if [ -d "$path" ]; then
    files+=(--file "$path/**/*.rs")
  elif [ -f "$path" ] || [ -f "$path.rs" ]; then
    files+=(--file "${path%.rs}.rs")
  else
    echo "mutants.sh: no module core/src/$module" >&2
    exit 2
  fi
done

mkdir -p "$OUT"
started=$(date +%s)
# cargo-mutants writes its outcome lists as it goes, so a run stopped by the budget
# still leaves what it learned. Only sluice-core's own tests judge the mutants.
# Shuffled, so that a run the budget cuts short is a fair sample of every file.
place=(--jobs "$JOBS")
if [ "${IN_PLACE:-0}" = 1 ]; then place=(--in-place); fi
# The test selection goes to every cargo call (the build of each mutant too), so
# that only those test targets are rebuilt.
selection=()
for arg in $TEST_ARGS; do selection+=("--cargo-arg=$arg"); done
if [ "${FAST:-1}" = 1 ]; then
  for package in sluice-core sluice-spec; do
    for setting in debug=false opt-level=0; do
      selection+=("--cargo-arg=--config=profile.test.package.$package.$setting")
    done
  done
fi
export PROPTEST_MAX_SHRINK_ITERS=0 PROPTEST_DISABLE_FAILURE_PERSISTENCE=1
status=0
timeout --signal=INT --kill-after=120 "$BUDGET" \
  cargo mutants --package sluice-core "${files[@]}" "${place[@]}" "${selection[@]}" \
  --output "$OUT" --shuffle --baseline "$BASELINE" \
  --timeout "$TIMEOUT" --build-timeout "$BUILD_TIMEOUT" ${EXTRA_ARGS:-} \
  || status=$?
elapsed=$(( $(date +%s) - started ))
# cargo-mutants exits 2 when mutants were missed and 3 on timeouts (what this script
# reports); 1 is a usage error and 4 a failing unmutated tree (nothing to report).
if [ "$status" -eq 1 ] || [ "$status" -eq 4 ]; then
  echo "mutants.sh: cargo-mutants failed (exit $status)" >&2
  exit "$status"
fi
if [ "${IN_PLACE:-0}" = 1 ] && [ -n "$(git status --porcelain -- core)" ]; then
  echo "mutants.sh: core differs from git after an in-place run: inspect 'git status core'" >&2
fi
results="$OUT/mutants.out"

count() { # count FILE PREFIX: lines of an outcome list for one module
  [ -f "$results/$1" ] || { echo 0; return; }
  grep -c "^$2" "$results/$1" || true
}

{
  echo "# Mutation testing of sluice-core"
  echo
  echo "cargo-mutants $(cargo mutants --version 2>/dev/null | awk '{print $2}'), $(date -u +%Y-%m-%d),"
  echo "budget ${BUDGET} s, ran ${elapsed} s$([ "$status" -eq 124 ] && echo ' (stopped by the budget)');"
  echo "tests per mutant: \`cargo test -p sluice-core $TEST_ARGS\`$([ "${FAST:-1}" = 1 ] && echo ' (core and spec without debug info, opt-level 0)')."
  total=$(cargo mutants --list --package sluice-core "${files[@]}" 2>/dev/null | wc -l)
  tested=$(cat "$results"/{caught,missed,timeout,unviable}.txt 2>/dev/null | wc -l)
  echo "Mutants in scope: $total; tested: $tested (a sample, in random order, when the"
  echo "budget stopped the run)."
  echo
  echo "| module | caught | missed | timed out | unviable | caught share |"
  echo "|---|---:|---:|---:|---:|---:|"
  for module in "${MODULES[@]}"; do
    prefix="core/src/${module%.rs}"
    caught=$(count caught.txt "$prefix")
    missed=$(count missed.txt "$prefix")
    timeout=$(count timeout.txt "$prefix")
    unviable=$(count unviable.txt "$prefix")
    judged=$(( caught + missed + timeout ))
    share="-"
    if [ "$judged" -gt 0 ]; then
      # Timed-out mutants count as caught (the mutant hangs the tests).
      share="$(( 100 * (caught + timeout) / judged )) %"
    fi
    echo "| $module | $caught | $missed | $timeout | $unviable | $share |"
  done
  echo
  echo "## Missed mutants"
  echo
  if [ -s "$results/missed.txt" ]; then
    sed 's/^/- /' "$results/missed.txt"
  else
    echo "(none)"
  fi
} >"$SUMMARY"
cat "$SUMMARY"
