#!/usr/bin/env bash
# Outbound delivery throughput, on this machine, with Postfix's smtp-sink as the
# remote (accept and discard, no disk):
#
#   1. drain: MESSAGES messages wait in Sluice's queue (accepted while the remote was
#      down, so deferred); the remote comes up and `sluice queue flush` releases them;
#      timed until the queue is empty, at 1, 10 and 50 connections to the destination
#      (queue.max_attempts_per_destination);
#   2. end to end: sluice-bench sends MESSAGES messages over 10 sessions to an alias
#      that forwards to the remote domain; timed from the first message until the
#      queue is empty again, so every message was accepted, queued, delivered to
#      smtp-sink and its record removed.
#
# Connections to the sink are reused between messages; each delivered message costs
# one write (its last decision removes it), committed together with whatever other
# writes are waiting (the store's group commit).
#
# Usage: tests/scripts/bench-outbound.sh   (needs tests/install-peers.sh first)
# Environment: MESSAGES (default 2000), SIZE (default 5120), CONNECTIONS (default
#              "1 10 50"), SLUICE_BIN and BENCH_BIN (both) use prebuilt binaries.
set -euo pipefail

MESSAGES=${MESSAGES:-2000}
SIZE=${SIZE:-5120}
CONNECTIONS=${CONNECTIONS:-"1 10 50"}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

command -v smtp-sink >/dev/null || { echo "smtp-sink missing: run tests/install-peers.sh" >&2; exit 1; }

if [ -n "${SLUICE_BIN:-}" ] && [ -n "${BENCH_BIN:-}" ]; then
  SLUICE=$SLUICE_BIN
  BENCH=$BENCH_BIN
else
  echo "== building sluice and sluice-bench (release)"
  (cd "$ROOT" && cargo build --release --quiet -p sluice-net --bin sluice -p sluice-tests --bin sluice-bench)
  SLUICE=$ROOT/target/release/sluice
  BENCH=$ROOT/target/release/sluice-bench
fi

WORK=$(mktemp -d /tmp/sluice-outbound.XXXXXX)
chmod 755 "$WORK"
SLUICE_PID=""
SINK_PID=""
cleanup() {
  set +e
  [ -n "$SLUICE_PID" ] && kill "$SLUICE_PID" 2>/dev/null && wait "$SLUICE_PID" 2>/dev/null
  [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null && wait "$SINK_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=tests/scripts/ports.sh
source "$ROOT/tests/scripts/ports.sh"

now() { python3 -c 'import time; print(time.monotonic())'; }

SINK_PORT=$(free_port)

start_sink() {
  smtp-sink -u postfix "127.0.0.1:$SINK_PORT" 1024 >/dev/null 2>&1 &
  SINK_PID=$!
  wait_for_port "$SINK_PORT"
}

stop_sink() {
  kill "$SINK_PID" 2>/dev/null || true
  wait "$SINK_PID" 2>/dev/null || true
  SINK_PID=""
}

# start_sluice NAME CONNECTIONS: a fresh Sluice whose remote.bench.test MX is the sink.
start_sluice() {
  local dir=$WORK/$1
  mkdir -p "$dir/data"
  cat >"$dir/sluice.toml" <<EOF
[server]
hostname = "mx.bench.test"
data_dir = "$dir/data"
[listeners.mx]
address = "127.0.0.1:0"
max_connections_per_ip = 200
[listeners.submission]
address = "127.0.0.1:0"
[listeners.submissions]
address = "127.0.0.1:0"
[queue]
max_attempts_per_destination = $2
max_attempts = 500
[delivery]
mx_port = $SINK_PORT
connect_timeout_seconds = 5
[dns]
nameservers = ["127.0.0.1:9"]
timeout_seconds = 1
attempts = 1
[dns.override."remote.bench.test"]
mx = ["10 sink.remote.bench.test"]
[dns.override."sink.remote.bench.test"]
addresses = ["127.0.0.1"]
[log]
level = "warn"
EOF
  "$SLUICE" domain add bench.test --config "$dir/sluice.toml" >/dev/null
  "$SLUICE" alias add fwd@bench.test sink@remote.bench.test --config "$dir/sluice.toml" >/dev/null
  "$SLUICE" serve --config "$dir/sluice.toml" >"$dir/stdout" 2>"$dir/stderr" &
  SLUICE_PID=$!
  for _ in $(seq 1 100); do grep -q '^ready$' "$dir/stdout" && break; sleep 0.1; done
  SLUICE_ADDRESS=$(awk '$1 == "listening" && $2 == "mx" {print $3}' "$dir/stdout")
  [ -n "$SLUICE_ADDRESS" ] || { cat "$dir/stderr" >&2; exit 1; }
  CONFIG=$dir/sluice.toml
}

stop_sluice() {
  kill "$SLUICE_PID" 2>/dev/null || true
  wait "$SLUICE_PID" 2>/dev/null || true
  SLUICE_PID=""
}

queued() { "$SLUICE" queue list --config "$CONFIG" | grep -c . || true; }

wait_until_empty() {
  while [ "$(queued)" -gt 0 ]; do sleep 0.05; done
}

declare -A DRAIN
echo "== drain: $MESSAGES messages of $SIZE bytes, waiting in the queue, released by a flush"
for connections in $CONNECTIONS; do
  start_sluice "drain-$connections" "$connections"
  # The remote is down: every first attempt is refused and the message deferred.
  "$BENCH" --server "$SLUICE_ADDRESS" --sessions 20 --messages "$MESSAGES" --size "$SIZE" \
    --to fwd@bench.test --label fill >/dev/null
  while [ "$("$SLUICE" queue list --config "$CONFIG" | grep -c deferred || true)" -lt "$MESSAGES" ]; do sleep 0.1; done
  start_sink
  started=$(now)
  "$SLUICE" queue flush --config "$CONFIG" >/dev/null
  wait_until_empty
  finished=$(now)
  DRAIN[$connections]=$(python3 -c "print(round($MESSAGES/($finished-$started)))")
  echo "  $connections connections: ${DRAIN[$connections]} messages/s"
  stop_sink
  stop_sluice
done

echo "== end to end: sluice-bench -> Sluice -> smtp-sink, 10 sessions, 20 connections out"
start_sink
start_sluice end-to-end 20
started=$(now)
line=$("$BENCH" --server "$SLUICE_ADDRESS" --sessions 10 --messages "$MESSAGES" --size "$SIZE" \
  --to fwd@bench.test --label sluice | grep '^RESULT ')
wait_until_empty
finished=$(now)
accept_rate=$(sed -n 's/.* rate=\([^ ]*\).*/\1/p' <<<"$line")
end_to_end=$(python3 -c "print(round($MESSAGES/($finished-$started)))")
stop_sluice
stop_sink

echo
echo "| measure | messages/s |"
echo "|---|---|"
for connections in $CONNECTIONS; do
  echo "| drain to smtp-sink, $connections connections | ${DRAIN[$connections]} |"
done
echo "| end to end (accepted at $accept_rate/s), 10 sessions in, 20 connections out | $end_to_end |"
