#!/usr/bin/env python3
"""One SMTP transaction with Python's smtplib, for Sluice's end-to-end tests.

Prints one line per step, `STEP CODE TEXT` (`extensions NAME...` for EHLO's keywords,
`error TEXT` for a client-side failure), so the Rust test decides what is right;
exits 0 when the dialogue ran (whatever the codes), 2 on a client error.
Certificates are not verified: the server under test uses a self-signed one.
"""

import argparse
import smtplib
import ssl
import sys


def reply(pair):
    code, text = pair
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return [code, " / ".join(text.splitlines())]


def report(result):
    for step, value in result.items():
        if step == "extensions":
            print("extensions " + " ".join(value).upper())
        elif step == "error":
            print("error " + value)
        elif step == "rcpt":
            for code, text in value:
                print(f"rcpt {code} {text}")
        elif value is not None:
            print(f"{step} {value[0]} {value[1]}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=["plain", "starttls", "tls"], default="plain")
    parser.add_argument("--auth", choices=["none", "PLAIN", "LOGIN"], default="none")
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    parser.add_argument("--from", dest="sender", default="sender@client.test")
    parser.add_argument("--to", action="append", default=[])
    parser.add_argument("--message", help="file holding the message, CRLF line endings")
    parser.add_argument("--ehlo", default="client.test")
    args = parser.parse_args()

    result = {}
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        if args.mode == "tls":
            client = smtplib.SMTP_SSL(args.host, args.port, local_hostname=args.ehlo,
                                      context=context, timeout=30)
        else:
            client = smtplib.SMTP(args.host, args.port, local_hostname=args.ehlo, timeout=30)
        result["ehlo"] = reply(client.ehlo())
        result["extensions"] = sorted(client.esmtp_features.keys())
        if args.mode == "starttls":
            result["starttls"] = reply(client.starttls(context=context))
            result["ehlo_after_tls"] = reply(client.ehlo())
            result["extensions"] = sorted(client.esmtp_features.keys())
        if args.auth != "none":
            client.user, client.password = args.user, args.password
            method = getattr(client, "auth_" + args.auth.lower())
            try:
                # PLAIN with an initial response, LOGIN through both 334 prompts.
                result["auth"] = reply(client.auth(args.auth, method,
                                                   initial_response_ok=args.auth == "PLAIN"))
            except smtplib.SMTPAuthenticationError as error:
                result["auth"] = [error.smtp_code, str(error.smtp_error)]
        if args.to:
            result["mail"] = reply(client.mail(args.sender))
            result["rcpt"] = [reply(client.rcpt(to)) for to in args.to]
            if args.message and result["mail"][0] == 250 and any(
                    code == 250 for code, _ in result["rcpt"]):
                with open(args.message, "rb") as handle:
                    message = handle.read()
                # Bytes go out as they are, only dot-stuffed: no line-ending repairs.
                try:
                    result["data"] = reply(client.data(message))
                except smtplib.SMTPDataError as error:
                    result["data"] = [error.smtp_code, str(error.smtp_error)]
            else:
                result["rset"] = reply(client.rset())
        try:
            result["quit"] = reply(client.quit())
        except smtplib.SMTPServerDisconnected:
            result["quit"] = None
    except (smtplib.SMTPException, OSError) as error:
        result["error"] = f"{type(error).__name__}: {error}"
        report(result)
        return 2
    report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
