#!/usr/bin/env python3
"""One IMAP session with Python's imaplib, for the end-to-end tests.

Usage: imap_client.py SPEC_JSON

SPEC_JSON is an object: host, port, mode ("plain", "starttls" or "tls"), and
steps, a list of objects each with an "op" and its arguments:

  starttls | capability | noop | close | unselect | expunge | logout
  login {user, password}        authenticate {user, password}  (AUTHENTICATE PLAIN)
  list {ref?, pattern?}         lsub {ref?, pattern?}
  create|delete|subscribe|unsubscribe|select|examine {mailbox}
  rename {mailbox, to}          status {mailbox, items}
  append {mailbox, file, flags?, date?}
  fetch {set, items, uid?}      store {set, command, flags, uid?}
  copy|move {set, mailbox, uid?}  uid_expunge {set}
  search {criteria: [str...], charset?, literal?, uid?}
      (literal: a UTF-8 string sent as the last argument, as an IMAP literal)
  idle: IDLE, then "idling" is printed and every response read until an
      untagged EXISTS arrives (the test delivers a message meanwhile); then DONE.

Output, one line per record, tab-separated:
  resp  INDEX HEX     one complete server response (literals included) read during
                      step INDEX, in order; the greeting is step -1
  data  INDEX HEX     one element of the data imaplib returned (a literal tuple is
                      its two parts joined by CRLF)
  step  INDEX OP TYP TEXT   imaplib's verdict: OK, NO, BYE, ERROR when imaplib
                      raised (a BAD answer among others; TEXT is then the error), or
                      ABORT when the connection became unusable (the last step)
  idling INDEX        the server accepted IDLE: deliver now
The certificate is not checked: the servers under test use self-signed ones.
"""

import imaplib
import json
import re
import ssl
import sys

# imaplib knows neither MOVE (RFC 6851) nor IDLE's state; MOVE must be allowed in the
# selected state, for `_simple_command` and for `uid('MOVE', ...)`.
imaplib.Commands.setdefault("MOVE", ("SELECTED",))

TIMEOUT = 30


def context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Recording:
    """Keeps every response imaplib reads, byte for byte, one entry per response."""

    _buffer = b""

    def readline(self):
        line = super().readline()
        self._buffer += line
        return line

    def read(self, size):
        data = super().read(size)
        self._buffer += data
        return data

    def _get_response(self):
        self._buffer = b""
        result = super()._get_response()
        self.responses.append(self._buffer)
        self._buffer = b""
        return result


class Plain(Recording, imaplib.IMAP4):
    def __init__(self, host, port):
        self.responses = []
        super().__init__(host, port, timeout=TIMEOUT)


class Tls(Recording, imaplib.IMAP4_SSL):
    def __init__(self, host, port):
        self.responses = []
        super().__init__(host, port, ssl_context=context(), timeout=TIMEOUT)


def emit(*fields):
    print("\t".join(str(field) for field in fields), flush=True)


def one_line(text):
    return re.sub(r"[\t\r\n]+", " ", text)


def as_bytes(element):
    if isinstance(element, tuple):
        return b"\r\n".join(as_bytes(part) for part in element)
    if isinstance(element, bytes):
        return element
    if element is None:
        return b""
    return str(element).encode()


def raw_idle(client, index):
    """IDLE by hand (imaplib before 3.14 has no idle()): until an EXISTS, then DONE."""
    tag = client._new_tag()
    client.send(tag + b" IDLE\r\n")

    def line():
        client._buffer = b""
        text = client._get_line() + b"\r\n"
        client.responses.append(text)
        client._buffer = b""
        return text

    first = line()
    if not first.startswith(b"+"):
        # Refused: that line was the tagged answer.
        return first.split(b" ", 2)[1].decode(), first.decode(errors="replace")
    emit("idling", index)
    while not re.match(rb"\* \d+ EXISTS", line()):
        pass
    client.send(b"DONE\r\n")
    while True:
        text = line()
        if text.startswith(tag + b" "):
            return text.split(b" ", 2)[1].decode(), text.decode(errors="replace")


def run_step(client, step, index):
    op = step["op"]
    uid = step.get("uid", False)
    if op == "starttls":
        return client.starttls(ssl_context=context())
    if op == "capability":
        return client.capability()
    if op == "noop":
        return client.noop()
    if op == "login":
        return client.login(step["user"], step["password"])
    if op == "authenticate":
        token = b"\0" + step["user"].encode() + b"\0" + step["password"].encode()
        return client.authenticate("PLAIN", lambda _challenge: token)
    if op == "list":
        return client.list(step.get("ref", '""'), step.get("pattern", "*"))
    if op == "lsub":
        return client.lsub(step.get("ref", '""'), step.get("pattern", "*"))
    if op in ("create", "delete", "subscribe", "unsubscribe"):
        return getattr(client, op)(step["mailbox"])
    if op == "rename":
        return client.rename(step["mailbox"], step["to"])
    if op == "status":
        return client.status(step["mailbox"], step["items"])
    if op == "select":
        return client.select(step["mailbox"])
    if op == "examine":
        return client.select(step["mailbox"], readonly=True)
    if op == "append":
        with open(step["file"], "rb") as file:
            message = file.read()
        return client.append(
            step["mailbox"], step.get("flags"), step.get("date"), message
        )
    if op == "fetch":
        if uid:
            return client.uid("FETCH", step["set"], step["items"])
        return client.fetch(step["set"], step["items"])
    if op == "store":
        if uid:
            return client.uid("STORE", step["set"], step["command"], step["flags"])
        return client.store(step["set"], step["command"], step["flags"])
    if op == "copy":
        if uid:
            return client.uid("COPY", step["set"], step["mailbox"])
        return client.copy(step["set"], step["mailbox"])
    if op == "move":
        if uid:
            return client.uid("MOVE", step["set"], step["mailbox"])
        return client._simple_command("MOVE", step["set"], step["mailbox"])
    if op == "search":
        if step.get("literal") is not None:
            # imaplib sends `literal` after the other arguments as {n} + bytes.
            client.literal = step["literal"].encode("utf-8")
        criteria = step["criteria"]
        if uid:
            if step.get("charset"):
                return client.uid("SEARCH", "CHARSET", step["charset"], *criteria)
            return client.uid("SEARCH", *criteria)
        return client.search(step.get("charset"), *criteria)
    if op == "expunge":
        return client.expunge()
    if op == "uid_expunge":
        return client.uid("EXPUNGE", step["set"])
    if op == "close":
        return client.close()
    if op == "unselect":
        return client.unselect()
    if op == "idle":
        return raw_idle(client, index)
    if op == "logout":
        return client.logout()
    raise SystemExit("unknown op " + op)


def main():
    spec = json.loads(sys.argv[1])
    if spec["mode"] == "tls":
        client = Tls(spec["host"], spec["port"])
    else:
        client = Plain(spec["host"], spec["port"])
    for response in client.responses:
        emit("resp", -1, response.hex())
    if spec["mode"] == "starttls":
        spec["steps"].insert(0, {"op": "starttls"})
    for index, step in enumerate(spec["steps"]):
        seen = len(client.responses)
        try:
            typ, data = run_step(client, step, index)
            if isinstance(data, str):
                data = [data.encode()]
            for element in data or []:
                emit("data", index, as_bytes(element).hex())
            text = b" ".join(as_bytes(element) for element in data or [])
            verdict = (typ, one_line(text.decode("utf-8", errors="replace")))
        except imaplib.IMAP4.abort as error:
            # The connection is unusable (closed, or a response imaplib cannot read).
            verdict = ("ABORT", one_line(str(error)))
        except (imaplib.IMAP4.error, OSError) as error:
            verdict = ("ERROR", one_line("%s: %s" % (type(error).__name__, error)))
        for response in client.responses[seen:]:
            emit("resp", index, response.hex())
        emit("step", index, step["op"], verdict[0], verdict[1])
        if isinstance(client, imaplib.IMAP4) and client.state == "LOGOUT":
            break
        if verdict[0] == "ABORT":
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
