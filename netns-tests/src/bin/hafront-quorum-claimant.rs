//! A quorum claimant for the netns tests: one `hafront-quorum` session and one claim, run
//! inside a lab namespace. Reads commands on standard input (`want`, `unwant`, `release`:
//! revoke the lease and exit) and prints every state change of the claim as
//! `claim <monotonic ns> <held <until ns> | heldby <holder> | free | unreachable>`.
//!
//! ```text
//! hafront-quorum-claimant --node n4 --key vrrp/vip --ttl 2s --endpoints http://10.213.0.1:2379,...
//! ```

use std::time::{Duration, Instant};

use hafront_netns_tests::etcd::monotonic_nanos;
use hafront_quorum::{ClaimState, Quorum, Settings};
use tokio::io::AsyncBufReadExt;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|arg| arg == name)
            .and_then(|index| args.get(index + 1))
            .unwrap_or_else(|| panic!("{name} is required"))
            .clone()
    };
    let ttl = Duration::from_millis(
        value("--ttl")
            .trim_end_matches('s')
            .parse::<u64>()
            .expect("--ttl in whole seconds, like 2s")
            * 1000,
    );
    let endpoints = value("--endpoints").split(',').map(str::to_owned).collect();
    let settings = Settings::new(endpoints, "/hafront/", ttl, &value("--node"));
    let key = value("--key");
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter("info,hafront_quorum=debug")
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(run(settings, key));
}

async fn run(settings: Settings, key: String) {
    let quorum = Quorum::start(settings);
    let claim = quorum.claim(&key);
    let mut state = claim.state();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    print_state(&state.borrow_and_update());
    loop {
        tokio::select! {
            changed = state.changed() => {
                if changed.is_err() {
                    return;
                }
                print_state(&state.borrow_and_update());
            }
            line = lines.next_line() => match line.ok().flatten().as_deref() {
                Some("want") => claim.want(true),
                Some("unwant") => claim.want(false),
                Some("release") | None => {
                    quorum.release_all().await;
                    println!("released {}", monotonic_nanos());
                    return;
                }
                Some(other) => eprintln!("unknown command {other:?}"),
            },
        }
    }
}

fn print_state(state: &ClaimState) {
    let now = monotonic_nanos();
    let line = match state {
        ClaimState::Held { until } => {
            let left = until.saturating_duration_since(Instant::now());
            format!(
                "held {}",
                now + u64::try_from(left.as_nanos()).unwrap_or(u64::MAX)
            )
        }
        ClaimState::HeldBy { holder } => format!("heldby {holder}"),
        ClaimState::Free => "free".to_owned(),
        ClaimState::Unreachable { .. } => "unreachable".to_owned(),
    };
    println!("claim {now} {line}");
}
