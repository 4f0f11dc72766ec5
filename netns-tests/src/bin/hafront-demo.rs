//! The narrated demo behind `demo/run.sh`: runs the failover story in network namespaces
//! and prints each step, the alert mails and the timeline. Needs root and `HAFRONT_BIN`.

use hafront_netns_tests::skip_unless_root;
use hafront_netns_tests::story::{FailoverReport, Narrator, front_failure, primary_crash};

fn main() {
    if skip_unless_root("the demo") {
        std::process::exit(1);
    }
    let narrator = Narrator::new(true);
    println!("\n=== Scenario 1: a MariaDB pair with hafront co-located, the primary crashes ===\n");
    let report = primary_crash(narrator);
    print_mails(&report);
    println!("\nTimeline (from the fault):\n{}", report.timeline());
    println!(
        "\nn2 writable: {}; n1 read-only after rejoining: {}",
        report.new_primary_writable, report.old_primary_read_only
    );
    println!(
        "\n=== Scenario 2: two front nodes share a VIP and relay to the pair; front-1 dies ===\n"
    );
    let front = front_failure(Narrator::new(true));
    println!(
        "\nFront tier: outage {} ms, {} writes acknowledged, {} lost, {} replicated to db-b",
        front.outage.as_millis(),
        front.acked,
        front.lost.len(),
        front.replicated
    );
    let ok = report.lost.is_empty()
        && report.new_primary_writable
        && report.old_primary_read_only
        && front.lost.is_empty();
    if !ok {
        eprintln!("demo: the failover did not end as it should (see above)");
        std::process::exit(1);
    }
}

fn print_mails(report: &FailoverReport) {
    for (number, mail) in report.mail_texts.iter().enumerate() {
        println!("\n--- alert mail {} ---\n{}", number + 1, mail.trim_end());
    }
    println!("\nVRRP transitions notified vs mailed, per node:");
    for (node, (notified, mailed)) in &report.mails {
        println!("  {node}: notified {notified:?}, mailed {mailed:?}");
    }
}
