#!/usr/bin/env python3
"""One POP3 session with Python's poplib, for the end-to-end tests.

Usage: pop3_client.py --host H --port P --mode stls|tls --user U --password W
                      [--auth user|plain] [--end quit|drop|hold] [STEP...]

STEP is one of: stat, list, uidl, capa, rset, top:N:LINES, retr:N, dele:N,
second (a second session to the same maildrop while this one holds it).
Prints one line per step: STEP, ok or err, and its value, tab-separated:
a response or error text, "count octets", list lines joined by "|", or a
message's bytes in hex. --end: quit (QUIT), drop (close without QUIT).
"""

import argparse
import base64
import poplib
import socket
import ssl
import sys


def context():
    # The test server's certificate is self-signed.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect(args):
    if args.mode == "tls":
        client = poplib.POP3_SSL(args.host, args.port, context=context(), timeout=30)
    else:
        client = poplib.POP3(args.host, args.port, timeout=30)
        client.stls(context=context())
    return client


def login(client, args):
    if args.auth == "plain":
        # poplib has no AUTH command; send RFC 5034's initial response by hand.
        token = base64.b64encode(
            b"\0" + args.user.encode() + b"\0" + args.password.encode()
        ).decode()
        return client._shortcmd("AUTH PLAIN " + token)
    client.user(args.user)
    return client.pass_(args.password)


def emit(step, ok, value=""):
    print(step + "\t" + ("ok" if ok else "err") + "\t" + value, flush=True)


def lines_bytes(lines):
    return b"".join(line + b"\r\n" for line in lines).hex()


def run_step(client, step, args):
    name, _, rest = step.partition(":")
    if name == "stat":
        count, octets = client.stat()
        emit(step, True, "%d %d" % (count, octets))
    elif name == "list":
        _, lines, _ = client.list()
        emit(step, True, "|".join(line.decode() for line in lines))
    elif name == "uidl":
        _, lines, _ = client.uidl()
        emit(step, True, "|".join(line.decode() for line in lines))
    elif name == "capa":
        emit(step, True, "|".join(sorted(client.capa().keys())))
    elif name == "rset":
        emit(step, True, client.rset().decode())
    elif name == "dele":
        emit(step, True, client.dele(int(rest)).decode())
    elif name == "retr":
        response, lines, _ = client.retr(int(rest))
        emit(step, True, lines_bytes(lines))
    elif name == "top":
        number, _, count = rest.partition(":")
        response, lines, _ = client.top(int(number), int(count))
        emit(step, True, lines_bytes(lines))
    elif name == "second":
        other = connect(args)
        try:
            login(other, args)
            emit(step, True)
        except poplib.error_proto as error:
            emit(step, False, error.args[0].decode())
        finally:
            other.quit()
    else:
        raise SystemExit("unknown step " + step)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=["stls", "tls"], required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--auth", choices=["user", "plain"], default="user")
    parser.add_argument("--end", choices=["quit", "drop"], default="quit")
    parser.add_argument("steps", nargs="*")
    args = parser.parse_args()
    client = connect(args)
    try:
        emit("login", True, login(client, args).decode())
    except poplib.error_proto as error:
        emit("login", False, error.args[0].decode())
        client.quit()
        return 2
    for step in args.steps:
        try:
            run_step(client, step, args)
        except poplib.error_proto as error:
            emit(step, False, error.args[0].decode())
    if args.end == "quit":
        try:
            emit("quit", True, client.quit().decode())
        except poplib.error_proto as error:
            emit("quit", False, error.args[0].decode())
    else:
        # Close the socket without QUIT: the server must apply no deletion.
        client.sock.shutdown(socket.SHUT_RDWR)
        client.sock.close()
        emit("drop", True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
