#!/usr/bin/env bash
# Sluice against Postfix (and smtp-sink as a ceiling) in the same run, on this machine:
# 5 KB messages at 1, 10 and 50 concurrent sessions, connections reused, measured by
# sluice-bench. Postfix is a private, loopback-only instance in a temporary folder
# (its own config and queue folders, chroot off, accept-and-discard for bench.test,
# fsync before its 250, like Sluice); nothing is left running afterwards.
#
# Usage: tests/scripts/bench-vs-postfix.sh   (needs tests/install-peers.sh first)
# Environment: MESSAGES (per run, default 4000), SIZE (default 5120),
#              SESSIONS (default "1 10 50"), BENCH_FLAGS (extra sluice-bench flags),
#              KEEP=1 keeps the temporary folder; SLUICE_BIN and BENCH_BIN (both)
#              use prebuilt binaries instead of a release build;
#              SLUICE_DATABASE_URL (postgres://… or mysql://…, an existing empty
#              database) runs Sluice on that database instead of its SQLite default.
# The disk's fsync rate swings from run to run: compare the ratio, not the absolutes.
# The CPU per accepted message is the steadier figure, printed two ways for Sluice
# and Postfix: "machine" is the whole machine's busy time during the run (/proc/stat)
# minus the load tool's own CPU, per message (it includes the kernel's work on the
# server's behalf: loopback, fsync, journal; and anything else running, so read it
# on a quiet machine: the load average is printed with it); "process" is the CPU
# of the server's own processes (utime+stime, Postfix's master and its children).
set -euo pipefail

MESSAGES=${MESSAGES:-4000}
SIZE=${SIZE:-5120}
SESSIONS=${SESSIONS:-"1 10 50"}
BENCH_FLAGS=${BENCH_FLAGS:-}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

for tool in postfix smtp-sink postconf; do
  command -v "$tool" >/dev/null || { echo "$tool missing: run tests/install-peers.sh" >&2; exit 1; }
done

if [ -n "${SLUICE_BIN:-}" ] && [ -n "${BENCH_BIN:-}" ]; then
  SLUICE=$SLUICE_BIN
  BENCH=$BENCH_BIN
else
  echo "== building sluice and sluice-bench (release)"
  (cd "$ROOT" && cargo build --release --quiet -p sluice-net --bin sluice -p sluice-tests --bin sluice-bench)
  # Where cargo put them: CARGO_TARGET_DIR when set, else the workspace's target/.
  TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
  SLUICE=$TARGET/release/sluice
  BENCH=$TARGET/release/sluice-bench
fi

WORK=$(mktemp -d /tmp/sluice-bench.XXXXXX)
chmod 755 "$WORK"
SLUICE_PID=""
SINK_PID=""
cleanup() {
  set +e
  [ -n "$SLUICE_PID" ] && kill "$SLUICE_PID" 2>/dev/null && wait "$SLUICE_PID" 2>/dev/null
  [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null && wait "$SINK_PID" 2>/dev/null
  [ -f "$WORK/postfix/etc/main.cf" ] && postfix -c "$WORK/postfix/etc" stop >/dev/null 2>&1
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# shellcheck source=tests/scripts/ports.sh
source "$ROOT/tests/scripts/ports.sh"

echo "== Postfix $(postconf -d -h mail_version): private instance in $WORK/postfix"
POSTFIX_PORT=$(free_port)
PF=$WORK/postfix
mkdir -p "$PF/etc" "$PF/queue" "$PF/data"
# Postfix's daemons run as the postfix user and write their locks there.
chown postfix:postfix "$PF/data"
cat >"$PF/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $PF/queue
data_directory = $PF/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
mydomain = bench.test
myorigin = bench.test
mydestination = bench.test
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
# Accept any local part of bench.test, and discard after the queue file is fsynced.
local_recipient_maps =
local_transport = discard:
default_transport = discard:
relay_transport = discard:
alias_maps =
alias_database =
biff = no
# 50 sessions from one address must not hit the per-client limits.
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
default_process_limit = 200
maillog_file_prefixes = /var, /dev/stdout, $WORK
maillog_file = $WORK/postfix.log
EOF
cat >"$PF/etc/master.cf" <<EOF
127.0.0.1:$POSTFIX_PORT inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
local     unix  - n n -  - local
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
if ! postfix -c "$PF/etc" check || ! postfix -c "$PF/etc" start; then
  echo "postfix did not start; its log:" >&2
  cat "$WORK/postfix.log" >&2 2>/dev/null || true
  exit 1
fi
wait_for_port "$POSTFIX_PORT"

echo "== smtp-sink (accept and discard, no disk): the ceiling"
SINK_PORT=$(free_port)
smtp-sink -u postfix "127.0.0.1:$SINK_PORT" 256 >/dev/null 2>&1 &
SINK_PID=$!
wait_for_port "$SINK_PORT"

echo "== Sluice: $WORK/sluice"
mkdir -p "$WORK/sluice/data"
cat >"$WORK/sluice/sluice.toml" <<EOF
[server]
hostname = "mx.bench.test"
data_dir = "$WORK/sluice/data"
[listeners.mx]
address = "127.0.0.1:0"
max_connections_per_ip = 200
[listeners.submission]
address = "127.0.0.1:0"
[listeners.submissions]
address = "127.0.0.1:0"
# Only loopback: client reverse lookups go to the discard port and fail at once.
[dns]
nameservers = ["127.0.0.1:9"]
timeout_seconds = 1
attempts = 1
[log]
level = "warn"
EOF
if [ -n "${SLUICE_DATABASE_URL:-}" ]; then
  printf '[database]\nurl = "%s"\n' "$SLUICE_DATABASE_URL" >>"$WORK/sluice/sluice.toml"
  echo "   on ${SLUICE_DATABASE_URL%%://*}"
fi
"$SLUICE" domain add bench.test --config "$WORK/sluice/sluice.toml" >/dev/null
"$SLUICE" user add bench@bench.test --password bench --config "$WORK/sluice/sluice.toml" >/dev/null
"$SLUICE" serve --config "$WORK/sluice/sluice.toml" >"$WORK/sluice/stdout" 2>"$WORK/sluice/stderr" &
SLUICE_PID=$!
for _ in $(seq 1 100); do grep -q '^ready$' "$WORK/sluice/stdout" && break; sleep 0.1; done
SLUICE_ADDRESS=$(awk '$1 == "listening" && $2 == "mx" {print $3}' "$WORK/sluice/stdout")
[ -n "$SLUICE_ADDRESS" ] || { cat "$WORK/sluice/stderr" >&2; exit 1; }

CLK_TCK=$(getconf CLK_TCK)
POSTFIX_MASTER=$(tr -d ' ' <"$PF/queue/pid/master.pid")
# The machine's busy time so far, in ticks: every CPU's user, nice, system, irq,
# softirq and steal time (guest time is inside user).
machine_busy_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
# utime+stime of a process and its live descendants, plus what they reaped
# (cutime+cstime): Postfix's short-lived cleanup and smtpd processes end up in
# their master's reaped time.
tree_ticks() {
  python3 - "$1" <<'PY'
import os, sys
root = int(sys.argv[1])
parent, ticks = {}, {}
for name in os.listdir("/proc"):
    if not name.isdigit():
        continue
    try:
        with open(f"/proc/{name}/stat") as stat:
            text = stat.read()
    except OSError:
        continue
    fields = text[text.rindex(")") + 2:].split()  # fields[0] is field 3, the state
    parent[int(name)] = int(fields[1])
    ticks[int(name)] = sum(int(value) for value in fields[11:15])
def within(pid):
    while pid > 1:
        if pid == root:
            return True
        pid = parent.get(pid, 0)
    return False
print(sum(value for pid, value in ticks.items() if within(pid)))
PY
}
server_pid() { # label
  case $1 in
    sluice) echo "$SLUICE_PID" ;;
    postfix) echo "$POSTFIX_MASTER" ;;
    *) echo "" ;;
  esac
}

declare -A RATE P50 P99 ERRORS MACHINE_US PROCESS_US LOAD
run_bench() { # label address sessions
  local line pid server_before=0 server_after=0 busy_before busy_after
  pid=$(server_pid "$1")
  [ -n "$pid" ] && server_before=$(tree_ticks "$pid")
  busy_before=$(machine_busy_ticks)
  # shellcheck disable=SC2086
  line=$("$BENCH" --server "$2" --sessions "$3" --messages "$MESSAGES" --size "$SIZE" \
    --to bench@bench.test --label "$1" $BENCH_FLAGS | tee -a "$WORK/bench.log" | grep '^RESULT ')
  busy_after=$(machine_busy_ticks)
  [ -n "$pid" ] && server_after=$(tree_ticks "$pid")
  local key="$1/$3"
  field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
  RATE[$key]=$(field rate)
  P50[$key]=$(field p50_ms)
  P99[$key]=$(field p99_ms)
  ERRORS[$key]=$(field errors)
  LOAD[$key]=$(cut -d' ' -f1-3 /proc/loadavg)
  local ok client
  ok=$(field ok)
  client=$(field cpu_ticks)
  MACHINE_US[$key]=$(python3 -c "print(round(($busy_after - $busy_before - $client) * 1e6 / $CLK_TCK / $ok) if $ok > 0 and $client >= 0 else 'n/a')")
  PROCESS_US[$key]=$(python3 -c "print(round(($server_after - $server_before) * 1e6 / $CLK_TCK / $ok) if $ok > 0 else 'n/a')")
  echo "  $1 at $3 sessions: ${RATE[$key]} messages/s, p50 ${P50[$key]} ms, p99 ${P99[$key]} ms, ${ERRORS[$key]} errors;" \
    "CPU µs/message: machine ${MACHINE_US[$key]}, server processes ${PROCESS_US[$key]}; load ${LOAD[$key]}"
}

echo "== runs: $MESSAGES messages of $SIZE bytes per run, connections reused $BENCH_FLAGS"
for sessions in $SESSIONS; do
  # Interleaved per concurrency level, so a drift in the disk's speed hits both.
  run_bench postfix "127.0.0.1:$POSTFIX_PORT" "$sessions"
  run_bench sluice "$SLUICE_ADDRESS" "$sessions"
  run_bench smtp-sink "127.0.0.1:$SINK_PORT" "$sessions"
done

echo
printf '%-9s | %-26s | %-26s | %-26s | %s\n' sessions \
  "Sluice msg/s (p50/p99 ms)" "Postfix msg/s (p50/p99 ms)" "smtp-sink msg/s (p50/p99)" "Sluice/Postfix"
printf '%s\n' "----------|----------------------------|----------------------------|----------------------------|---------------"
for sessions in $SESSIONS; do
  s="sluice/$sessions" p="postfix/$sessions" k="smtp-sink/$sessions"
  ratio=$(python3 -c "print(f'{${RATE[$s]}/${RATE[$p]}:.2f}' if ${RATE[$p]} else 'n/a')")
  printf '%-9s | %8s (%6s/%7s) | %8s (%6s/%7s) | %8s (%6s/%7s) | %s\n' "$sessions" \
    "${RATE[$s]}" "${P50[$s]}" "${P99[$s]}" "${RATE[$p]}" "${P50[$p]}" "${P99[$p]}" \
    "${RATE[$k]}" "${P50[$k]}" "${P99[$k]}" "$ratio"
done
echo
echo "CPU per accepted message, µs: machine = whole machine's busy time minus the load tool's;"
echo "process = the server's own processes; load average after each Sluice run"
printf '%-9s | %-18s | %-18s | %-14s | %s\n' sessions "Sluice machine/proc" "Postfix machine/proc" "Postfix/Sluice" "load (1/5/15 min)"
printf '%s\n' "----------|--------------------|--------------------|----------------|------------------"
for sessions in $SESSIONS; do
  s="sluice/$sessions" p="postfix/$sessions"
  cpu_ratio=$(python3 -c "m, n = '${MACHINE_US[$p]}', '${MACHINE_US[$s]}'; print(f'{int(m)/int(n):.2f}' if m.lstrip('-').isdigit() and n.isdigit() and int(n) > 0 else 'n/a')")
  printf '%-9s | %8s / %7s | %8s / %7s | %-14s | %s\n' "$sessions" \
    "${MACHINE_US[$s]}" "${PROCESS_US[$s]}" "${MACHINE_US[$p]}" "${PROCESS_US[$p]}" "$cpu_ratio" "${LOAD[$s]}"
done
total_errors=0
for key in "${!ERRORS[@]}"; do total_errors=$((total_errors + ERRORS[$key])); done
echo "errors over all runs: $total_errors"
