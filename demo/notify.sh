#!/bin/bash
# hafront notify script for a MariaDB pair with the VIP on the primary (keepalived style).
# hafront runs it as: notify.sh --socket SOCK [--log FILE] [--catch-up-seconds N] INSTANCE NAME STATE PRIORITY
#
#   MASTER        promote the local server: stop receiving, wait (bounded) until it has
#                 applied every relay-log event it received, then STOP SLAVE and
#                 read_only=OFF. A replica that cannot catch up stays read-only: clients get
#                 errors, never lost writes. A demoted primary (promoted before, read-only
#                 and no replica now) is never promoted again: its data may be stale.
#   BACKUP/FAULT  fence the local server: end its client sessions, then read_only=ON (a
#                 dead server needs nothing: it restarts with read_only=1 from its options).
#
# Every step is appended to --log as "UNIX_TIME NODE WHAT" for the demo's timeline.
set -u
socket="" log=/dev/null catch_up_seconds=10
while [ $# -gt 0 ]; do
    case "$1" in
        --socket) socket="$2"; shift 2 ;;
        --log) log="$2"; shift 2 ;;
        --catch-up-seconds) catch_up_seconds="$2"; shift 2 ;;
        *) break ;;
    esac
done
[ "${1:-}" = INSTANCE ] && [ $# -eq 4 ] || { echo "usage: $0 --socket SOCK [--log FILE] [--catch-up-seconds N] INSTANCE NAME STATE PRIORITY" >&2; exit 2; }
state="$3"
node="${HAFRONT_NODE:-?}"

note() { echo "$(date +%s.%N) $node $*" >> "$log"; echo "$*"; }
sql() { mariadb --socket="$socket" --user=root --batch --connect-timeout=2 "${@:2}" -e "$1"; }

note "notified $state"
case "$state" in
    MASTER)
        status=$(sql "SHOW SLAVE STATUS\G") || { note "cannot reach the local server: not promoted"; exit 1; }
        if [ -z "$status" ]; then
            promotions=$(sql "SELECT COUNT(*) FROM mysql.hafront_promotion" --skip-column-names 2>/dev/null || echo 0)
            if [ "$promotions" != 0 ] && [ "$(sql "SELECT @@global.read_only" --skip-column-names)" = 1 ]; then
                note "demoted primary and no replica: its data may be stale, not promoted (re-clone it as a replica)"
                exit 1
            fi
        else
            # Receive nothing more, then apply everything received: each acknowledged write
            # reached this relay log (semi-synchronous replication), so none is lost.
            sql "STOP SLAVE IO_THREAD" || { note "cannot stop the replication receiver: not promoted"; exit 1; }
            note "replication receiver stopped"
            deadline=$((SECONDS + catch_up_seconds))
            while :; do
                status=$(sql "SHOW SLAVE STATUS\G") || { note "lost the local server: not promoted"; exit 1; }
                field() { awk -v key="$1:" '$1 == key {print $2}' <<<"$status"; }
                read_at="$(field Master_Log_File):$(field Read_Master_Log_Pos)"
                applied_at="$(field Relay_Master_Log_File):$(field Exec_Master_Log_Pos)"
                [ "$read_at" = "$applied_at" ] && break
                if [ "$SECONDS" -ge "$deadline" ]; then
                    note "relay log not applied within ${catch_up_seconds}s ($applied_at of $read_at): not promoted"
                    exit 1
                fi
                sleep 0.02
            done
            note "relay log applied up to $applied_at"
            sql "STOP SLAVE" || { note "cannot stop replication: not promoted"; exit 1; }
        fi
        # Remembered in the server (not replicated): a server promoted once that is no replica
        # now is a demoted primary whose data may be stale; it is never promoted again without
        # a DBA re-cloning it as a replica.
        sql "SET sql_log_bin = 0;
             CREATE TABLE IF NOT EXISTS mysql.hafront_promotion (at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6));
             INSERT INTO mysql.hafront_promotion () VALUES ()" || { note "cannot record the promotion: not promoted"; exit 1; }
        sql "SET GLOBAL read_only = OFF" || { note "promotion failed"; exit 1; }
        note "promoted: read_only=OFF"
        ;;
    BACKUP|FAULT)
        # read_only=ON waits for running commits, and a demoted primary's commits may wait
        # for a replica that is gone: end its client sessions first (a killed session was
        # never acknowledged), then fence; a few rounds in case clients race in.
        fenced=0
        for _ in 1 2 3; do
            kills=$(sql "SELECT CONCAT('KILL CONNECTION ', id, ';') FROM information_schema.processlist
                         WHERE id <> CONNECTION_ID() AND user NOT IN ('system user', 'event_scheduler')
                           AND command NOT IN ('Daemon', 'Binlog Dump', 'Slave_IO', 'Slave_SQL', 'Slave_worker')" \
                    2>/dev/null | tail -n +2)
            [ -n "$kills" ] && sql "$kills" --force 2>/dev/null  # gone already: fine
            if sql "SET SESSION lock_wait_timeout = 1; SET GLOBAL read_only = ON" 2>/dev/null; then
                fenced=1
                break
            fi
        done
        if [ "$fenced" = 1 ]; then
            note "fenced: read_only=ON"
        else
            note "local server unreachable: it restarts read-only"
        fi
        ;;
esac
