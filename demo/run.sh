#!/usr/bin/env bash
# The hafront failover demo, in one command (Debian 12, as root):
#
#   sudo demo/run.sh
#
# Builds hafront, then in network namespaces (10.213.0.0/24, no route out) starts a MariaDB
# primary and replica in semi-synchronous replication with hafront co-located on each host,
# a client writing through the VIP, and an SMTP sink; kills the primary's MariaDB and narrates
# the failover: detection, VIP move, promotion, alert mails, a timeline and the writes lost (0).
# Everything it creates is removed on exit, Ctrl-C included.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "demo/run.sh: run as root (it creates network namespaces)" >&2
    exit 1
fi

say() { printf '\n>>> %s\n' "$*"; }

./install-packages.sh mariadb-server mariadb-client python3-aiosmtpd iproute2 \
    protobuf-compiler libprotobuf-dev clang libbpf-dev

say "building hafront and the demo runner (cargo build --release)"
cargo build --release -q -p hafront
cargo build --release -q -p hafront-netns-tests --bin hafront-demo

# Everything the runner creates lives in $work (tmpfs: MariaDB starts in well under a second)
# or in namespaces named hft-<scenario>-<runner pid>-*; both go on every exit path.
work=$(mktemp -d /dev/shm/hafront-demo.XXXXXX)
runner=""
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$runner" ] && kill -0 "$runner" 2>/dev/null; then
        kill -TERM "$runner" 2>/dev/null || true
        sleep 1
        kill -KILL "$runner" 2>/dev/null || true
    fi
    if [ -n "$runner" ]; then
        for namespace in $(ip netns list | awk -v runner="$runner" '$1 ~ ("^hft-[a-z0-9]+-" runner "-") {print $1}'); do
            for pid in $(ip netns pids "$namespace"); do
                kill -KILL "$pid" 2>/dev/null || true
            done
            ip netns del "$namespace"
        done
    fi
    rm -rf "$work"
    echo "demo: cleaned up"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

TMPDIR="$work" HAFRONT_BIN="$PWD/target/release/hafront" target/release/hafront-demo &
runner=$!
wait "$runner"
