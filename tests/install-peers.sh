#!/usr/bin/env bash
# Installs the real peers the end-to-end tests and the benchmark drive: Python 3
# (smtplib, sqlite3), swaks, curl, and Postfix (for smtp-source/smtp-sink and a
# private benchmark instance). Idempotent; run as root. Postfix is installed without
# configuration and is never left running as a system service: the benchmark starts
# its own loopback-only instance from a temporary folder.
set -euo pipefail

need=()
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v swaks >/dev/null 2>&1 && perl -MNet::SSLeay -e1 2>/dev/null || need+=(swaks)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v smtp-sink >/dev/null 2>&1 || need+=(postfix)

if [ "${#need[@]}" -gt 0 ]; then
  echo "install-peers: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # "No configuration": Debian's postinst then writes no main.cf and starts nothing.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" libnet-ssleay-perl
else
  echo "install-peers: python3, swaks, curl and postfix already installed"
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

python3 -c 'import smtplib, ssl, sqlite3' 
swaks --support 2>&1 | grep -q "TLS supported"
curl --version | grep -qw smtp
echo "install-peers: ok"
