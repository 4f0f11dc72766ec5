#!/usr/bin/env bash
# Installs the Debian packages named on the command line that are missing,
# without letting their system services start: the tests, the demo and the
# benchmarks run their own instances. A policy-rc.d that denies every start
# is in place only while installing, and only if none exists already.
#
#   ./install-packages.sh mariadb-server redis-server
set -euo pipefail

missing=()
for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' ||
        missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing ${missing[*]} (their system services are kept from starting)" >&2
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
