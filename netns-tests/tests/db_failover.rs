//! Built-in MariaDB failover on a front node: a primary and two replicas in semi-synchronous
//! GTID replication, a client writing through the front's relay, and faults.

use std::time::Instant;

use hafront_netns_tests::cluster::{Cluster, SETTLE};
use hafront_netns_tests::skip_unless_root;

/// Keys of the failover block every scenario uses unless it says otherwise.
const DEFAULTS: &str = "";

/// Asserts that no acknowledged write is missing on node `primary`, and returns how many
/// were acknowledged.
fn assert_nothing_lost(
    cluster: &Cluster,
    primary: usize,
    log: &hafront_netns_tests::story::WriteLog,
) -> usize {
    let acked = log.acked();
    assert!(
        cluster.wait_for_rows(primary, &acked),
        "acknowledged writes missing on n{primary}: {:?}",
        log.lost(&cluster.server(primary).ids())
    );
    acked.len()
}

#[test]
fn primary_crash_promotes_the_most_advanced_replica_and_repoints_the_other() {
    if skip_unless_root("primary_crash") {
        return;
    }
    let mut cluster = Cluster::start("dbcrash", DEFAULTS);
    let writer = cluster.writer();
    assert!(
        writer.wait_for_acks(50, SETTLE),
        "no writes through the relay"
    );
    // n2 stops receiving: n3, second in pool order, is the most advanced when n1 dies.
    cluster.server(2).query("STOP SLAVE IO_THREAD");
    assert!(
        writer.wait_for_acks(50, SETTLE),
        "no writes with n3 alone acknowledging"
    );
    let crash = Instant::now();
    cluster.server_mut(1).kill();
    assert!(
        cluster.wait_for_topology(3, &[2]),
        "n3 never became the primary with n2 its replica; log:\n{}",
        cluster.front_log()
    );
    assert!(
        writer.wait_for_acks(50, SETTLE),
        "writes did not resume through the relay"
    );
    let log = writer.finish();
    let outage = log.longest_outage_after(crash);
    let acked = assert_nothing_lost(&cluster, 3, &log);
    assert!(
        cluster.wait_for_rows(2, &log.acked()),
        "n2 did not catch up from n3"
    );
    let front = cluster.front_log();
    for step in ["confirmed", "promoted (n3)", "repointed (n2)"] {
        assert!(
            front.contains(step),
            "no {step:?} step in the log:\n{front}"
        );
    }
    eprintln!("crash: {acked} writes acknowledged, 0 lost, write outage {outage:?}");

    // The old primary comes back: fenced, then a replica of n3.
    cluster.server_mut(1).restart();
    assert!(
        cluster.wait_for_topology(3, &[1, 2]),
        "n1 never rejoined as a replica of n3; log:\n{}",
        cluster.front_log()
    );
    assert!(cluster.wait_for_log(&["rejoined (n1)"], SETTLE));
    assert_eq!(cluster.server(1).query("SELECT @@global.read_only"), "1");
    let status = cluster.status();
    let servers = &status["replication"]["db"]["servers"];
    assert_eq!(status["replication"]["db"]["primary"], "n3", "{status}");
    assert_eq!(servers[0]["replicates_from"], "n3", "{status}");
    assert_eq!(servers[0]["fenced"], false, "{status}");
    // The table shows who replicates from whom.
    let (ok, table) = cluster.cli(&["status"]);
    assert!(ok, "{table}");
    let row = |server: &str| {
        table
            .lines()
            .skip_while(|line| *line != "REPLICATION")
            .find(|line| line.split_whitespace().nth(1) == Some(server))
            .unwrap_or_else(|| panic!("no replication row for {server}:\n{table}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(row("n3")[2], "primary", "{table}");
    assert_eq!(&row("n1")[2..4], ["replica", "n3"], "{table}");
    assert!(
        table.contains("db: failover acting on this node, automatic failover blocked until"),
        "{table}"
    );
}

#[test]
fn a_hung_primary_is_failed_over_and_fenced_at_once_when_it_wakes() {
    if skip_unless_root("primary_hang") {
        return;
    }
    let mut cluster = Cluster::start("dbhang", DEFAULTS);
    let writer = cluster.writer();
    assert!(
        writer.wait_for_acks(50, SETTLE),
        "no writes through the relay"
    );
    let hang = Instant::now();
    cluster.server_mut(1).freeze();
    // Frozen mid-write, n1 may have sent its last event to either replica first: the one
    // that has it is promoted.
    let promoted = cluster
        .wait_for_promotion_of_either(&[2, 3])
        .unwrap_or_else(|| {
            panic!(
                "no replica became the primary; log:\n{}",
                cluster.front_log()
            )
        });
    let front = cluster.front_log();
    assert!(
        front.contains(&format!("promoted (n{promoted})")),
        "n{promoted} is writable but hafront did not promote it; log:\n{front}"
    );
    assert!(writer.wait_for_acks(50, SETTLE), "writes did not resume");
    let outage = writer.finish();
    let acked = assert_nothing_lost(&cluster, promoted, &outage);
    eprintln!(
        "hang: {acked} acknowledged, 0 lost, write outage {:?}",
        outage.longest_outage_after(hang)
    );
    // It wakes still believing it is the primary, with the commit it was writing when it
    // froze (never acknowledged) in its binary log, or not: hafront fences it at once, and
    // rejoins it only without such a transaction.
    cluster.server_mut(1).thaw();
    assert!(
        cluster.wait_for_log(&["fenced (n1)", "read_only=ON"], SETTLE),
        "the woken primary was not fenced; log:\n{}",
        cluster.front_log()
    );
    assert!(
        hafront_netns_tests::wait_until(SETTLE, || {
            let log = cluster.front_log();
            log.contains("rejoined (n1)") || log.contains("re-clone it")
        }),
        "neither rejoined nor refused; log:\n{}",
        cluster.front_log()
    );
    assert_eq!(cluster.server(1).query("SELECT @@global.read_only"), "1");
    let status = cluster.status();
    assert_eq!(
        status["pools"][0]["servers"][0]["role"], "replica",
        "{status}"
    );
    assert_eq!(
        status["replication"]["db"]["primary"],
        format!("n{promoted}"),
        "{status}"
    );
}

/// Refusals the front's coordinator logged because only it lost the primary.
fn refusals(cluster: &Cluster) -> usize {
    cluster
        .front_log()
        .lines()
        .filter(|line| {
            line.contains("coordinator") && line.contains("refused (n1): its replicas still")
        })
        .count()
}

#[test]
fn a_front_cut_off_from_the_primary_alone_starts_no_failover() {
    if skip_unless_root("front_cut") {
        return;
    }
    let mut cluster = Cluster::start("dbcut", DEFAULTS);
    cluster.cut_front_from(1);
    assert!(
        cluster.wait_for_log(&["refused (n1)", "only hafront lost it"], SETTLE),
        "no refusal; log:\n{}",
        cluster.front_log()
    );
    // Asked again every second, quietly: still nothing changes while n1 lives.
    assert!(
        hafront_netns_tests::wait_until(SETTLE, || cluster
            .front_log()
            .matches("failover still unconfirmed")
            .count()
            >= 2),
        "not asked again; log:\n{}",
        cluster.front_log()
    );
    for replica in [2, 3] {
        assert_eq!(
            cluster.server(replica).query("SELECT @@global.read_only"),
            "1"
        );
    }
    assert!(!cluster.front_log().contains("promoted (n"));
    assert_eq!(refusals(&cluster), 1, "one refusal, not one per retry");
    cluster.reconnect_front_to(1);
    assert!(cluster.wait_for_topology(1, &[2, 3]));
    assert!(
        hafront_netns_tests::wait_until(SETTLE, || cluster
            .front_log()
            .matches("server up pool=db server=n1 ")
            .count()
            == 2),
        "the front does not see n1 again; log:\n{}",
        cluster.front_log()
    );

    // Cut off again, and this time n1 dies for everyone: the replicas confirm it.
    cluster.cut_front_from(1);
    assert!(
        hafront_netns_tests::wait_until(SETTLE, || refusals(&cluster) == 2),
        "no second refusal; log:\n{}",
        cluster.front_log()
    );
    cluster.server_mut(1).kill();
    assert!(
        cluster.wait_for_log(&["failover of pool db promoted (n"], SETTLE),
        "no failover once the replicas lost n1 too; log:\n{}",
        cluster.front_log()
    );
    cluster.reconnect_front_to(1);
}

#[test]
fn replicas_past_max_lag_are_not_promoted() {
    if skip_unless_root("max_lag") {
        return;
    }
    let mut cluster = Cluster::start("dblag", "      max_lag: 1s\n");
    for replica in [2, 3] {
        cluster
            .server(replica)
            .query("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 30; START SLAVE");
    }
    let writer = cluster.writer();
    assert!(
        writer.wait_for_acks(20, SETTLE),
        "no writes through the relay"
    );
    // Behind by more than max_lag, as the front sees it.
    assert!(
        hafront_netns_tests::wait_until(SETTLE, || {
            let status = cluster.status();
            status["replication"]["db"]["servers"][1]["lag_seconds"]
                .as_u64()
                .is_some_and(|lag| lag >= 2)
        }),
        "the replicas never lagged"
    );
    drop(writer);
    cluster.server_mut(1).kill();
    assert!(
        cluster.wait_for_log(&["refused (n1)", "max_lag"], SETTLE),
        "no refusal for lag; log:\n{}",
        cluster.front_log()
    );
    for replica in [2, 3] {
        assert_eq!(
            cluster.server(replica).query("SELECT @@global.read_only"),
            "1"
        );
    }
    assert!(!cluster.front_log().contains("promoted (n"));
}

#[test]
fn an_old_primary_with_an_errant_transaction_is_not_rejoined() {
    if skip_unless_root("errant") {
        return;
    }
    let mut cluster = Cluster::start("dberrant", DEFAULTS);
    cluster.server_mut(1).kill();
    assert!(
        cluster.wait_for_topology(2, &[3]),
        "no failover; log:\n{}",
        cluster.front_log()
    );
    // Back on its own, someone writes to it directly: a transaction n2 never gets.
    cluster.lab.cut(1);
    cluster.server_mut(1).restart();
    cluster.server(1).query(
        "SET GLOBAL rpl_semi_sync_master_enabled = OFF; SET GLOBAL read_only = OFF;
         INSERT INTO demo.seq (id) VALUES (999999); SET GLOBAL read_only = ON",
    );
    cluster.lab.heal(1);
    assert!(
        cluster.wait_for_log(&["refused (n1)", "re-clone"], SETTLE),
        "no refusal to rejoin; log:\n{}",
        cluster.front_log()
    );
    assert_eq!(cluster.server(1).query("SELECT @@global.read_only"), "1");
    assert_eq!(cluster.replication_of(1), None, "n1 must not replicate");
    let status = cluster.status();
    assert_eq!(
        status["replication"]["db"]["servers"][0]["fenced"], true,
        "{status}"
    );
    let pools = &status["pools"][0]["servers"][0];
    assert_eq!(
        pools["role"], "replica",
        "a fenced server is never a primary: {status}"
    );
}

#[test]
fn switchover_both_ways_under_continuous_writes() {
    if skip_unless_root("switchover") {
        return;
    }
    let cluster = Cluster::start("dbswitch", DEFAULTS);
    let writer = cluster.writer();
    assert!(
        writer.wait_for_acks(50, SETTLE),
        "no writes through the relay"
    );
    for (to, from, other) in [(2, 1, 3), (1, 2, 3)] {
        let started = Instant::now();
        let (ok, text) = cluster.cli(&["switchover", "db", "--to", &format!("n{to}")]);
        assert!(
            ok,
            "switchover to n{to} failed: {text}\nn{to}: {:?}\nlog:\n{}",
            cluster.server(to).try_query("SHOW SLAVE STATUS\\G"),
            cluster.front_log()
        );
        assert!(text.contains("switched over"), "{text}");
        assert!(
            cluster.wait_for_topology(to, &[from, other]),
            "n{to} is not the primary of both; log:\n{}",
            cluster.front_log()
        );
        assert!(
            writer.wait_for_acks(50, SETTLE),
            "writes did not resume on n{to}"
        );
        eprintln!("switchover to n{to}: {} ms", started.elapsed().as_millis());
    }
    let log = writer.finish();
    let acked = assert_nothing_lost(&cluster, 1, &log);
    eprintln!("switchovers: {acked} acknowledged, 0 lost");
    // A switchover inside is no failover: the block window is not armed.
    assert!(cluster.status()["replication"]["db"]["blocked_until"].is_null());
}

#[test]
fn a_second_failure_inside_the_block_window_waits_for_an_acknowledgement() {
    if skip_unless_root("block") {
        return;
    }
    let mut cluster = Cluster::start("dbblock", DEFAULTS);
    cluster.server_mut(1).kill();
    assert!(cluster.wait_for_topology(2, &[3]), "no first failover");
    assert!(!cluster.status()["replication"]["db"]["blocked_until"].is_null());
    cluster.server_mut(2).kill();
    assert!(
        cluster.wait_for_log(
            &["refused (n2)", "blocked until", "failover ack db"],
            SETTLE
        ),
        "no refusal inside the block window; log:\n{}",
        cluster.front_log()
    );
    assert_eq!(cluster.server(3).query("SELECT @@global.read_only"), "1");
    let (ok, text) = cluster.cli(&["failover", "ack", "db"]);
    assert!(ok, "{text}");
    assert!(text.contains("acknowledged"), "{text}");
    assert!(
        cluster.wait_for_log(&["promoted (n3)"], SETTLE),
        "the acknowledged failover did not proceed; log:\n{}",
        cluster.front_log()
    );
    assert_eq!(cluster.server(3).query("SELECT @@global.read_only"), "0");
    // The block survives a restart of hafront: the journal is in state_dir.
    let journal =
        std::fs::read_to_string(cluster.front_state().join("failover-db.json")).expect("journal");
    assert!(journal.contains("\"new_primary\": \"n3\""), "{journal}");
}

#[test]
fn check_connect_names_the_privilege_the_failover_user_lacks() {
    if skip_unless_root("grants") {
        return;
    }
    let mut cluster = Cluster::start("dbgrant", DEFAULTS);
    let (ok, text) = cluster.cli_in_front(&["check", "--connect"]);
    assert!(ok && text.trim() == "OK", "{text}");
    cluster
        .server(2)
        .query("SET sql_log_bin = 0; REVOKE READ_ONLY ADMIN ON *.* FROM 'hafront_admin'@'%'");
    let (ok, text) = cluster.cli_in_front(&["check", "--connect"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains(
            "pools.db.failover.user: n2 (10.213.0.2:3306): user hafront_admin lacks READ_ONLY ADMIN"
        ),
        "{text}"
    );
    assert!(text.contains("hafront.yaml:"), "no file:line: {text}");
    // The daemon says so too, once, when it first sees the server.
    cluster.start_front();
    assert!(
        cluster.wait_for_log(&["problem (n2)", "lacks READ_ONLY ADMIN"], SETTLE),
        "no problem reported; log:\n{}",
        cluster.front_log()
    );
}

#[test]
fn without_gtid_auto_positioning_the_replica_that_read_furthest_is_promoted() {
    if skip_unless_root("no_gtid") {
        return;
    }
    let mut cluster = Cluster::start("dbnogtid", DEFAULTS);
    for replica in [2, 3] {
        cluster
            .server(replica)
            .query("STOP SLAVE; CHANGE MASTER TO MASTER_USE_GTID = no; START SLAVE");
    }
    let writer = cluster.writer();
    assert!(
        writer.wait_for_acks(30, SETTLE),
        "no writes through the relay"
    );
    // n2 stops receiving: n3 read further in n1's binary log.
    cluster.server(2).query("STOP SLAVE IO_THREAD");
    assert!(writer.wait_for_acks(30, SETTLE), "no writes with n3 alone");
    cluster.server_mut(1).kill();
    assert!(
        cluster.wait_for_topology(3, &[2]),
        "n3 never became the primary; log:\n{}",
        cluster.front_log()
    );
    assert!(writer.wait_for_acks(20, SETTLE), "writes did not resume");
    let log = writer.finish();
    assert_nothing_lost(&cluster, 3, &log);
    assert!(
        cluster.wait_for_rows(2, &log.acked()),
        "n2 did not catch up from n3"
    );
}

#[test]
fn a_second_writable_server_is_fenced_and_made_read_only_again() {
    if skip_unless_root("second_writable") {
        return;
    }
    let cluster = Cluster::start("dbtwowritable", DEFAULTS);
    // Someone makes a replica writable by hand: relays must never take it for the primary.
    cluster.server(3).query("SET GLOBAL read_only = OFF");
    assert!(
        cluster.wait_for_log(&["fenced (n3)", "writable beside the primary n1"], SETTLE),
        "n3 not fenced; log:\n{}",
        cluster.front_log()
    );
    assert!(
        hafront_netns_tests::wait_until(SETTLE, || cluster
            .server(3)
            .query("SELECT @@global.read_only")
            == "1"),
        "n3 was not made read-only again; log:\n{}",
        cluster.front_log()
    );
    assert!(cluster.wait_for_topology(1, &[2, 3]));
    let status = cluster.status();
    assert_eq!(
        status["replication"]["db"]["servers"][2]["fenced"], false,
        "{status}"
    );
    assert!(!cluster.front_log().contains("promoted (n"));
}

#[test]
fn under_a_quorum_the_front_fails_over_only_while_it_holds_the_pool_key() {
    let test = "under_a_quorum_the_front_fails_over_only_while_it_holds_the_pool_key";
    if skip_unless_root(test) || hafront_netns_tests::etcd::skip_unless_etcd(test) {
        return;
    }
    use hafront_netns_tests::cluster::ETCD_NODES;
    use hafront_netns_tests::etcd::{block, unblock};
    use std::time::Duration;

    let mut cluster = Cluster::start_with_quorum("dbquorum", DEFAULTS);
    let etcd = cluster.etcd.as_ref().expect("etcd");
    assert!(
        hafront_netns_tests::wait_until(SETTLE, || etcd.get("/hafront/failover/db").as_deref()
            == Some("n4")),
        "the front never took the pool's key; log:\n{}",
        cluster.front_log()
    );
    // The front loses etcd, then the primary dies: without the key it must not promote.
    block(&cluster.lab, 4, &ETCD_NODES);
    assert!(
        hafront_netns_tests::wait_until(SETTLE, || cluster
            .front_log()
            .contains("failover leadership (the pool's quorum key) pool=db leader=false")),
        "the front never let go of the pool's leadership; log:\n{}",
        cluster.front_log()
    );
    cluster.server_mut(1).kill();
    std::thread::sleep(Duration::from_secs(4));
    for replica in [2, 3] {
        assert_eq!(
            cluster
                .server(replica)
                .try_query("SELECT @@global.read_only")
                .as_deref(),
            Ok("1"),
            "n{replica} was promoted without the key; log:\n{}",
            cluster.front_log()
        );
    }
    // etcd back: the front takes the key again and fails over.
    let back = Instant::now();
    unblock(&cluster.lab, 4, &ETCD_NODES);
    assert!(
        cluster.wait_for_promotion_of_either(&[2, 3]).is_some(),
        "no failover once the front held the key again; log:\n{}",
        cluster.front_log()
    );
    eprintln!(
        "failover {:?} after the front reached etcd again",
        back.elapsed()
    );
}
