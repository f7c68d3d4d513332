#!/usr/bin/env bash
# Installs the real peers the end-to-end tests and the benchmark drive: Python 3
# (smtplib, sqlite3), swaks, curl, Postfix (for smtp-source/smtp-sink and a
# private benchmark instance) and HAProxy (tests/tests/haproxy.rs). Idempotent; run as
# root. Postfix is installed without configuration and is never left running as a
# system service: the benchmark starts its own loopback-only instance from a temporary
# folder. Likewise HAProxy: the test runs its own foreground `haproxy -db` per test.
# dnsmasq (net/tests/dns_dnsmasq.rs) comes as Debian's dnsmasq-base: the binary
# without the system service, which would hold port 53; each test runs its own.
# dkimpy with PyNaCl (net/tests/dkim_*.rs) is the independent DKIM verifier, from PyPI.
# Dovecot (tests/tests/message_view_vs_dovecot.rs) is the IMAP anchor: the test runs its
# own private `dovecot -F -c FILE`, so the packaged service is disabled, and a system
# user `vmail` owns its mail (Dovecot's mail processes refuse to run as root).
# The IMAP clients of tests/tests/imap_clients.rs: mbsync (isync), fetchmail and neomutt
# from Debian (neomutt runs under util-linux's `script` for a terminal), and imapclient
# from PyPI.
set -euo pipefail

need=()
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v swaks >/dev/null 2>&1 && perl -MNet::SSLeay -e1 2>/dev/null || need+=(swaks)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v smtp-sink >/dev/null 2>&1 || need+=(postfix)
# Debian puts haproxy in /usr/sbin, which may be missing from PATH.
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ] || need+=(dovecot-imapd dovecot-pop3d dovecot-lmtpd)
command -v mbsync >/dev/null 2>&1 || need+=(isync)
command -v fetchmail >/dev/null 2>&1 || need+=(fetchmail)
command -v neomutt >/dev/null 2>&1 || need+=(neomutt)
command -v script >/dev/null 2>&1 || need+=(bsdutils)

if [ "${#need[@]}" -gt 0 ]; then
  echo "install-peers: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # "No configuration": Debian's postinst then writes no main.cf and starts nothing.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" libnet-ssleay-perl
else
  echo "install-peers: python3, swaks, curl, postfix, haproxy, dnsmasq, dovecot, isync, fetchmail and neomutt already installed"
fi

# The system instance must not run: it would hold port 25 and a queue of its own.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now postfix >/dev/null 2>&1 || true
fi
if [ -f /etc/postfix/main.cf ] && postfix status >/dev/null 2>&1; then
  postfix stop || true
fi
if command -v update-rc.d >/dev/null 2>&1; then
  update-rc.d postfix disable >/dev/null 2>&1 || true
fi

# Nor may the system HAProxy: Debian's package enables and starts it. The tests start
# their own from a temporary configuration and need no service.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now haproxy >/dev/null 2>&1 || true
fi
if [ -x /etc/init.d/haproxy ]; then
  /etc/init.d/haproxy stop >/dev/null 2>&1 || true
fi
if command -v update-rc.d >/dev/null 2>&1; then
  update-rc.d haproxy disable >/dev/null 2>&1 || true
fi

# If the full dnsmasq package was installed by someone else, its service must not run
# either: it would answer on port 53 with the system's upstream servers.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now dnsmasq >/dev/null 2>&1 || true
fi
if [ -x /etc/init.d/dnsmasq ]; then
  /etc/init.d/dnsmasq stop >/dev/null 2>&1 || true
fi

# Nor may the system Dovecot: its package enables and starts it on ports 143 and 110.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now dovecot >/dev/null 2>&1 || true
fi
if [ -x /etc/init.d/dovecot ]; then
  /etc/init.d/dovecot stop >/dev/null 2>&1 || true
fi
if command -v update-rc.d >/dev/null 2>&1; then
  update-rc.d dovecot disable >/dev/null 2>&1 || true
fi
if ! id vmail >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin vmail
fi

if ! python3 -c 'import dkim, nacl' >/dev/null 2>&1; then
  echo "install-peers: installing dkimpy (PyPI)"
  # Debian's own python3 refuses pip installs without the flag (PEP 668).
  python3 -m pip install -q 'dkimpy[ed25519]==1.1.8' \
    || python3 -m pip install -q --break-system-packages 'dkimpy[ed25519]==1.1.8'
fi

if ! python3 -c 'import imapclient' >/dev/null 2>&1; then
  echo "install-peers: installing imapclient (PyPI)"
  python3 -m pip install -q 'imapclient==4.1.0' \
    || python3 -m pip install -q --break-system-packages 'imapclient==4.1.0'
fi

python3 -c 'import smtplib, ssl, sqlite3' 
python3 -c 'import dkim, nacl'
python3 -c 'import imaplib, imapclient'
# Whole outputs captured first: `grep -q` closing a pipe early kills the writer with
# SIGPIPE, which pipefail turns into a failure (exit 141) now and then.
[[ "$(mbsync --version)" == isync* ]]
[[ "$(fetchmail --version 2>/dev/null)" == *"fetchmail release"* ]]
[[ "$(neomutt -v)" == NeoMutt* ]]
[[ "$(PATH="$PATH:/usr/sbin" dnsmasq --version)" == *"Dnsmasq version"* ]]
[[ "$(swaks --support 2>&1)" == *"TLS supported"* ]]
[[ " $(curl --version | tr '\n' ' ') " == *" smtp "* ]]
[[ "$(PATH="$PATH:/usr/sbin" haproxy -v)" == *"HAProxy version"* ]]
[[ "$(PATH="$PATH:/usr/sbin" dovecot --version)" == 2.* ]]
echo "install-peers: ok"
