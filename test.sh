#!/usr/bin/env bash
# Runs hafront's whole test suite on a Debian 12 machine, as root.
# Installs what the tests need (real MariaDB, Redis, an SMTP sink, keepalived,
# spiped, stunnel, man-db, cargo-deb) when it is missing, without starting their system services.
#
#   sudo ./test.sh            # everything: format, lints, unit, integration, netns
#   sudo ./test.sh relay      # only tests whose name matches "relay"
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" != 0 ]; then
    echo "test.sh: run as root (the tests install packages and create network namespaces)" >&2
    exit 1
fi

# etcd-server/etcd-client: the quorum tests' etcd cluster. protobuf-compiler and
# libprotobuf-dev: the etcd-client crate compiles etcd's protocol files when it builds.
# clang and libbpf-dev: direct/build.rs compiles the eBPF director. ethtool: a
# direct-routing test turns off checksum offload.
packages=(
    mariadb-server mariadb-client redis-server redis-tools python3-aiosmtpd
    keepalived haproxy spiped stunnel4 openssl iproute2 procps systemd man-db
    etcd-server etcd-client protobuf-compiler libprotobuf-dev clang libbpf-dev ethtool
)
./install-packages.sh "${packages[@]}"

if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install cargo-nextest
fi
# tests/package.rs builds the Debian package (dist/build-deb.sh) and installs it.
if ! cargo deb --version >/dev/null 2>&1; then
    cargo install cargo-deb --locked --version 3.8.0
fi

# A test that cannot run here (no root, a peer program missing) fails instead of skipping.
export HAFRONT_REQUIRE_EVERY_TEST=1

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo nextest run --workspace --no-fail-fast ${1:+-E "test(/$1/)"}
