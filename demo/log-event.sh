#!/bin/sh
# A notify hook of the demo: appends one line per hafront event to --log FILE, as
# "UNIX_TIME NODE WHAT", for the demo's timeline. It changes nothing: the failover itself
# is hafront's own (the `failover` block of demo/db-node.yaml). Your own hooks get the same
# environment: HAFRONT_EVENT, HAFRONT_NODE, HAFRONT_POOL, HAFRONT_SERVER, HAFRONT_NEW,
# HAFRONT_MESSAGE... (see docs/operations.md).
#
#   log-event.sh --log FILE [keepalived-style arguments, ignored]
set -u
[ "${1:-}" = --log ] && [ $# -ge 2 ] || { echo "usage: $0 --log FILE" >&2; exit 2; }
log="$2"
case "$HAFRONT_EVENT" in
    vrrp) what="notified ${HAFRONT_NEW} from ${HAFRONT_OLD}" ;;
    failover_*) what="${HAFRONT_EVENT} ${HAFRONT_SERVER:-} ${HAFRONT_REASON:-}" ;;
    *) what="${HAFRONT_EVENT} ${HAFRONT_POOL:-}/${HAFRONT_SERVER:-}" ;;
esac
echo "$(date +%s.%N) ${HAFRONT_NODE} ${what}" >> "$log"
