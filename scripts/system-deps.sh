#!/usr/bin/env bash
# Install the Debian packages the test suite uses, only if something is missing.
# chromium: real-browser tests; postgresql: the second test run; postfix: smtp-sink
# and smtp-source for benchmarks, and a throwaway MTA for the bounce end-to-end test
# (tests/test_bounces_postfix.py); spamassassin: the digest's spam score
# (tests/test_bounces_spam.py runs spamassassin -L -t on a real digest).
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v spamassassin >/dev/null 2>&1 || need+=(spamassassin)
command -v postfix >/dev/null 2>&1 || [ -x /usr/sbin/postfix ] || need+=(postfix)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${need[*]} (run as root, or install them: apt-get install ${need[*]})" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# Postfix without a system configuration: the tests run their own instances.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
