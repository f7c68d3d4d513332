#!/usr/bin/env python3
"""IMAP timers for bench-vs-dovecot.sh: FETCH, SEARCH and the IDLE wake-up delay.

    bench_imap.py fetch  --server HOST:PORT --user U --password P [--repeat N]
    bench_imap.py search --server HOST:PORT --user U --password P --word W [--repeat N]
    bench_imap.py idle   --server HOST:PORT --user U --password P
                         --deliver smtp|lmtp --via HOST:PORT --rcpt ADDR --count N [--budget S]

Every connection is implicit TLS (imaps), certificate not verified: both servers run
on self-signed certificates on loopback. The client is a small reader of IMAP's
framing (lines and {n} literals) rather than imaplib, so that its own cost stays
small beside the server's: it reads the whole answer, counts the untagged responses,
and keeps their text only where asked (SEARCH). Each measurement prints one line
`RESULT key=value ...`; a failure prints `FAILED reason` and exits 1.
"""

import argparse
import queue
import re
import smtplib
import socket
import ssl
import statistics
import sys
import threading
import time

LITERAL = re.compile(rb"\{(\d+)\+?\}$")


def tls_context():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def parse_address(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


class Imap:
    """One blocking IMAP connection that reads responses by their framing."""

    def __init__(self, address, timeout=300):
        raw = socket.create_connection(parse_address(address), timeout=timeout)
        self.sock = tls_context().wrap_socket(raw)
        self.buf = bytearray()
        self.pos = 0
        self.tag = 0
        greeting = self.response()[0]
        if not greeting.startswith(b"* OK"):
            raise RuntimeError(f"greeting {greeting[:200]!r}")

    def _fill(self):
        # Drop what was consumed before reading more, so the buffer stays small.
        if self.pos:
            del self.buf[: self.pos]
            self.pos = 0
        data = self.sock.recv(1 << 18)
        if not data:
            raise EOFError("the server closed the connection")
        self.buf += data

    def response(self, keep=True):
        """One whole response: (first line, its text with literals elided or None, bytes)."""
        parts = []
        first = None
        size = 0
        while True:
            end = self.buf.find(b"\r\n", self.pos)
            while end < 0:
                self._fill()
                end = self.buf.find(b"\r\n", self.pos)
            line = bytes(self.buf[self.pos : end])
            self.pos = end + 2
            size += len(line) + 2
            if first is None:
                first = line
            if keep:
                parts.append(line)
            literal = LITERAL.search(line)
            if not literal:
                return first, (b"".join(parts) if keep else None), size
            length = int(literal.group(1))
            size += length
            while len(self.buf) - self.pos < length:
                length -= len(self.buf) - self.pos
                self.pos = len(self.buf)
                self._fill()
            self.pos += length

    def send(self, text):
        self.sock.sendall(text.encode() + b"\r\n")

    def command(self, text, keep_untagged=False):
        """Runs one command; returns (tagged line, untagged count, their texts, bytes read)."""
        self.tag += 1
        tag = b"b%d" % self.tag
        self.send(f"{tag.decode()} {text}")
        count, texts, size = 0, [], 0
        while True:
            first, whole, length = self.response(keep=keep_untagged)
            size += length
            if first.startswith(tag + b" "):
                return first, count, texts, size
            if first.startswith(b"*"):
                count += 1
                if keep_untagged:
                    texts.append(whole)

    def ok(self, text, keep_untagged=False):
        tagged, count, texts, size = self.command(text, keep_untagged)
        if b" OK" not in tagged[:16]:
            raise RuntimeError(f"{text.split()[0]}: {tagged[:300]!r}")
        return count, texts, size

    def login(self, user, password):
        self.ok(f"LOGIN {user} {password}")


def fetch(args):
    """EXAMINE INBOX, then FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE), `repeat` times."""
    client = Imap(args.server)
    client.login(args.user, args.password)
    for run in range(args.repeat):
        # Opening the mailbox is timed too: a client does it on every connection.
        started = time.monotonic()
        exists, _, _ = examine(client)
        examined = time.monotonic()
        count, _, size = client.ok("FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE)")
        seconds = time.monotonic() - examined
        print(
            f"RESULT run={run} exists={exists} responses={count} bytes={size} "
            f"examine_ms={(examined - started) * 1000:.1f} seconds={seconds:.3f} "
            f"rate={count / seconds:.0f}",
            flush=True,
        )
    client.ok("LOGOUT")


def examine(client):
    """EXAMINE INBOX: read-only, so that nothing measured changes a flag."""
    _, texts, _ = client.ok("EXAMINE INBOX", keep_untagged=True)
    for text in texts:
        match = re.match(rb"\* (\d+) EXISTS", text)
        if match:
            return int(match.group(1)), texts, None
    raise RuntimeError("EXAMINE gave no EXISTS")


def search(args):
    """UID SEARCH TEXT word, `repeat` times; the hits are printed to compare servers."""
    client = Imap(args.server)
    client.login(args.user, args.password)
    exists, _, _ = examine(client)
    for run in range(args.repeat):
        started = time.monotonic()
        _, texts, _ = client.ok(f"UID SEARCH TEXT {args.word}", keep_untagged=True)
        seconds = time.monotonic() - started
        hits = 0
        for text in texts:
            if text.startswith(b"* SEARCH"):
                hits += len(text.split()) - 2
        print(
            f"RESULT run={run} exists={exists} word={args.word} hits={hits} seconds={seconds:.3f}",
            flush=True,
        )
    client.ok("LOGOUT")


def probe_message(index):
    return (
        "From: prober@sender.bench.test\r\n"
        "To: bench@bench.test\r\n"
        f"Subject: IDLE probe {index}\r\n"
        f"Message-ID: <idle-probe-{index}-{time.time_ns()}@sender.bench.test>\r\n"
        "\r\n"
        "A small message whose arrival an IDLE client waits for.\r\n"
    ).encode()


def idle(args):
    """N deliveries, one at a time; each: the delivery's final reply, then EXISTS in IDLE.

    The delay is from the moment the final reply to the delivery (250 after the data)
    is read to the moment the IDLE connection reads `* n EXISTS`. A reader thread
    stamps every EXISTS as it arrives, so a push that arrives before the sender's
    reply counts as 0 ms (and is counted as `early`).
    """
    watcher = Imap(args.server)
    watcher.login(args.user, args.password)
    watcher.ok("SELECT INBOX")
    watcher.send("i1 IDLE")
    first, _, _ = watcher.response()
    if not first.startswith(b"+"):
        raise RuntimeError(f"IDLE: {first[:200]!r}")
    watcher.sock.settimeout(None)
    arrivals = queue.Queue()

    def read_pushes():
        try:
            while True:
                first, _, _ = watcher.response(keep=False)
                if first.endswith(b" EXISTS"):
                    arrivals.put(time.monotonic())
        except (OSError, EOFError, ValueError):
            arrivals.put(None)

    threading.Thread(target=read_pushes, daemon=True).start()
    host, port = parse_address(args.via)

    def connect():
        client = (smtplib.LMTP if args.deliver == "lmtp" else smtplib.SMTP)(host, port, timeout=30)
        client.ehlo_or_helo_if_needed()
        return client

    sender = connect()
    delays, missed, early = [], 0, 0
    deadline = time.monotonic() + args.budget
    for index in range(args.count):
        if time.monotonic() > deadline:
            break
        try:
            sender.sendmail("prober@sender.bench.test", [args.rcpt], probe_message(index))
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPSenderRefused) as error:
            # A server closes a session after so many messages (421 to MAIL): a new
            # connection and the same message again, as a real client does.
            if isinstance(error, smtplib.SMTPSenderRefused) and error.smtp_code != 421:
                raise
            sender.close()
            sender = connect()
            sender.sendmail("prober@sender.bench.test", [args.rcpt], probe_message(index))
        replied = time.monotonic()
        try:
            arrived = arrivals.get(timeout=args.wait)
        except queue.Empty:
            missed += 1
            continue
        if arrived is None:
            raise RuntimeError("the IDLE connection closed")
        if arrived < replied:
            early += 1
        delays.append(max(0.0, arrived - replied) * 1000)
        # An EXISTS the wait gave up on arrives late; it must not count for the next one.
        while not arrivals.empty():
            arrivals.get_nowait()
    sender.quit()
    if not delays:
        print(f"FAILED no EXISTS seen after {args.count} deliveries (missed {missed})")
        sys.exit(1)
    delays.sort()

    def percentile(p):
        return delays[min(len(delays) - 1, int(round(p / 100 * (len(delays) - 1))))]

    print(
        f"RESULT probes={len(delays) + missed} seen={len(delays)} missed={missed} early={early} "
        f"p50_ms={percentile(50):.1f} p99_ms={percentile(99):.1f} max_ms={delays[-1]:.1f} "
        f"mean_ms={statistics.fmean(delays):.1f}"
    )


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("fetch", "search", "idle"):
        command = sub.add_parser(name)
        command.add_argument("--server", required=True)
        command.add_argument("--user", required=True)
        command.add_argument("--password", required=True)
        command.add_argument("--repeat", type=int, default=3)
        if name == "search":
            command.add_argument("--word", required=True)
        if name == "idle":
            command.add_argument("--deliver", choices=["smtp", "lmtp"], required=True)
            command.add_argument("--via", required=True)
            command.add_argument("--rcpt", required=True)
            command.add_argument("--count", type=int, default=200)
            command.add_argument("--budget", type=float, default=120)
            command.add_argument("--wait", type=float, default=5, help="seconds per EXISTS")
    args = parser.parse_args()
    try:
        {"fetch": fetch, "search": search, "idle": idle}[args.command](args)
    except (OSError, EOFError, RuntimeError, smtplib.SMTPException) as error:
        print(f"FAILED {type(error).__name__}: {error}")
        sys.exit(1)


if __name__ == "__main__":
    main()
