#!/usr/bin/env python3
"""One IMAP session with imapclient (PyPI), for the end-to-end tests.

Usage: imapclient_session.py HOST PORT USER PASSWORD FOLDER

Over implicit TLS (certificate not checked: self-signed): select INBOX, fetch
ENVELOPE, BODYSTRUCTURE and FLAGS of every message; flag the first message and
fetch FLAGS CHANGEDSINCE the HIGHESTMODSEQ read before (CONDSTORE, RFC 7162); move
the last message to FOLDER (created if missing); then IDLE, print "idling" and wait
with idle_check until an EXISTS arrives (the test delivers a message meanwhile).

Prints KEY<TAB>VALUE lines; the test judges them.
"""

import ssl
import sys

from imapclient import IMAPClient


def emit(key, value=""):
    print("%s\t%s" % (key, value), flush=True)


def text(value):
    if value is None:
        return "NIL"
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def main():
    host, port, user, password, folder = sys.argv[1:6]
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    client = IMAPClient(host, port=int(port), ssl=True, ssl_context=context, timeout=30)
    client.login(user, password)
    capabilities = [text(c) for c in client.capabilities()]
    emit("capabilities", " ".join(capabilities))
    if "CONDSTORE" in capabilities:
        client.enable("CONDSTORE")
    selected = client.select_folder("INBOX")
    emit("exists", selected[b"EXISTS"])
    emit("uidvalidity", selected[b"UIDVALIDITY"])
    modseq = selected.get(b"HIGHESTMODSEQ")
    emit("highestmodseq", modseq)

    uids = client.search("ALL")
    emit("uids", " ".join(str(uid) for uid in uids))
    fetched = client.fetch(uids, ["ENVELOPE", "BODYSTRUCTURE", "FLAGS"])
    for uid in uids:
        data = fetched[uid]
        envelope = data[b"ENVELOPE"]
        sender = envelope.from_[0]
        emit(
            "envelope",
            "%d|%s|%s@%s|%s"
            % (
                uid,
                text(envelope.subject),
                text(sender.mailbox),
                text(sender.host),
                text(envelope.message_id),
            ),
        )
        structure = data[b"BODYSTRUCTURE"]
        if structure.is_multipart:
            kinds = "multipart/" + text(structure[1]).lower()
        else:
            kinds = "%s/%s" % (text(structure[0]).lower(), text(structure[1]).lower())
        emit("bodystructure", "%d|%s" % (uid, kinds))
        emit("flags", "%d|%s" % (uid, " ".join(text(f) for f in data[b"FLAGS"])))

    first, last = uids[0], uids[-1]
    client.add_flags([first], [b"\\Flagged"])
    if modseq is not None:
        changed = client.fetch(uids, ["FLAGS"], modifiers=["CHANGEDSINCE %d" % modseq])
        for uid, data in sorted(changed.items()):
            emit(
                "changed",
                "%d|%s|%s"
                % (
                    uid,
                    " ".join(text(f) for f in data[b"FLAGS"]),
                    data.get(b"MODSEQ", ("?",))[0],
                ),
            )

    if not client.folder_exists(folder):
        client.create_folder(folder)
    client.move([last], folder)
    emit("inbox_after_move", " ".join(str(u) for u in client.search("ALL")))
    status = client.folder_status(folder, ["MESSAGES"])
    emit("folder_messages", status[b"MESSAGES"])

    client.idle()
    emit("idling")
    exists = None
    # Each idle_check waits for the next responses (or 30 s of nothing); the test's
    # own deadline bounds the whole run.
    while exists is None:
        for response in client.idle_check(timeout=30):
            if len(response) >= 2 and response[1] == b"EXISTS":
                exists = response[0]
    client.idle_done()
    emit("idle_exists", exists)
    client.logout()
    emit("logout", "ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
