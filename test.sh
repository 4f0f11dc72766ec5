#!/usr/bin/env bash
# Runs hafront's whole test suite on a Debian 12 machine, as root.
# Installs what the tests need (real MariaDB, Redis, an SMTP sink, keepalived,
# spiped, stunnel) when it is missing, without starting their system services.
#
#   sudo ./test.sh            # everything: format, lints, unit, integration, netns
#   sudo ./test.sh relay      # only tests whose name matches "relay"
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" != 0 ]; then
    echo "test.sh: run as root (the tests install packages and create network namespaces)" >&2
    exit 1
fi

packages=(
    mariadb-server mariadb-client redis-server redis-tools python3-aiosmtpd
    keepalived spiped stunnel4 openssl iproute2 procps systemd
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "test.sh: installing ${missing[*]}"
    # Keep the packages' own services from starting: tests run their own instances.
    own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    trap '[ "$own_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install cargo-nextest
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo nextest run --workspace --no-fail-fast ${1:+-E "test(/$1/)"}
