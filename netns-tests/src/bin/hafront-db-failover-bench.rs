//! The runner behind `bench/db-failover`: client-visible write outage and acknowledged
//! writes lost through hafront's built-in MariaDB failover, for a primary crash, a cut of
//! the primary's host link and a planned switchover, each from a fresh [`Cluster`], `RUNS`
//! times (default 5), the scenarios interleaved round by round. Prints every run as it ends,
//! then the median and worst per scenario against the targets, and the published failover
//! times of other tools (not measured here). Needs root and `HAFRONT_BIN`.
//!
//! `SCENARIOS=crash,linkcut,switchover` chooses (default: all three); `KEEP_LOGS=DIR` keeps
//! each run's front log as `DIR/<round>-<scenario>.log`.
//!
//! Exit status: 0 when every run completed (targets met or not), 1 when a run failed.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hafront_netns_tests::cluster::{Cluster, SETTLE};
use hafront_netns_tests::skip_unless_root;
use hafront_netns_tests::story::WriteLog;

/// Acknowledged writes before the fault: the client is past connecting and steady.
const STEADY_ACKS: usize = 100;
/// Acknowledged writes after the fault before the run ends.
const RESUMED_ACKS: usize = 50;
/// Target: client-visible write outage after a primary crash.
const CRASH_TARGET: Duration = Duration::from_millis(600);
/// Target: write pause of a planned switchover.
const SWITCHOVER_TARGET: Duration = Duration::from_millis(300);
/// Target: failed client writes during a switchover (the one that ends the old connection;
/// the reconnect after it must work).
const SWITCHOVER_ERRORS: usize = 1;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Crash,
    LinkCut,
    Switchover,
}

impl Scenario {
    const ALL: [Scenario; 3] = [Scenario::Crash, Scenario::LinkCut, Scenario::Switchover];

    fn name(self) -> &'static str {
        match self {
            Scenario::Crash => "primary crash (kill -9)",
            Scenario::LinkCut => "host link cut",
            Scenario::Switchover => "planned switchover",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Scenario::Crash => "crash",
            Scenario::LinkCut => "linkcut",
            Scenario::Switchover => "switchover",
        }
    }

    /// The hafront log steps worth timing from the fault, in order.
    fn steps(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Scenario::Crash | Scenario::LinkCut => &[
                ("down", "server down"),
                ("started", "failover of pool db started"),
                ("confirmed", "failover of pool db confirmed"),
                ("promoted", "failover of pool db promoted"),
            ],
            Scenario::Switchover => &[
                ("started", "failover of pool db switchover_started"),
                ("promoted", "failover of pool db promoted"),
                ("switched", "failover of pool db switched_over"),
            ],
        }
    }
}

/// One run's figures.
struct Run {
    /// Longest time without an acknowledged write from the fault on.
    outage: Duration,
    /// Writes acknowledged over the run.
    acked: usize,
    /// Acknowledged writes missing on the new primary.
    lost: usize,
    /// Failed write attempts (each one drops the connection; the next attempt reconnects).
    errors: usize,
    /// Maximal sequences of failed attempts: how many times the client lost its session.
    breaks: usize,
    /// Milliseconds from the fault to the first and the last failed attempt's start.
    failing: Option<(i64, i64)>,
    /// The promoted node.
    new_primary: usize,
    /// Milliseconds from the fault to each logged step (None: not in the log).
    steps: Vec<(&'static str, Option<i64>)>,
    /// Milliseconds from the fault to the first acknowledged write after the client's
    /// first failure.
    resumed: Option<i64>,
    /// How long `hafront switchover` took (switchover only).
    command: Option<Duration>,
}

fn main() {
    if skip_unless_root("the db-failover benchmark") {
        std::process::exit(1);
    }
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|value| value.parse().ok())
        .filter(|&runs| runs > 0)
        .unwrap_or(5);
    let chosen = std::env::var("SCENARIOS").unwrap_or_default();
    let scenarios: Vec<Scenario> = Scenario::ALL
        .into_iter()
        .filter(|s| chosen.is_empty() || chosen.split(',').any(|name| name.trim() == s.short()))
        .collect();
    if scenarios.is_empty() {
        eprintln!("SCENARIOS names none of crash, linkcut, switchover: {chosen:?}");
        std::process::exit(2);
    }
    println!(
        "db-failover: {runs} runs of each scenario, interleaved; a fresh 3-server cluster per run"
    );
    let mut results: Vec<(Scenario, Result<Run, String>)> = Vec::new();
    for round in 1..=runs {
        for &scenario in &scenarios {
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| run(scenario, round)))
                .unwrap_or_else(|panic| Err(panic_text(&*panic)));
            match &outcome {
                Ok(figures) => println!(
                    "round {round}/{runs} {:<24} {}",
                    scenario.name(),
                    describe(scenario, figures)
                ),
                Err(problem) => println!(
                    "round {round}/{runs} {:<24} FAILED: {problem}",
                    scenario.name()
                ),
            }
            results.push((scenario, outcome));
        }
    }
    let complete = summary(&results, &scenarios, runs);
    std::process::exit(if complete { 0 } else { 1 });
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panic".to_owned());
    // A front log attached to an assertion can be long: the first lines say what failed.
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() > 40 {
        format!(
            "{}\n... ({} more lines)",
            lines[..40].join("\n"),
            lines.len() - 40
        )
    } else {
        text
    }
}

/// One run of `scenario` from a fresh cluster.
fn run(scenario: Scenario, round: usize) -> Result<Run, String> {
    let mut cluster = Cluster::start(&format!("dbb{}", scenario.short()), "");
    let writer = cluster.writer();
    if !writer.wait_for_acks(STEADY_ACKS, SETTLE) {
        return Err("no steady writes through the relay".to_owned());
    }
    let fault = Instant::now();
    let fault_wall = SystemTime::now();
    let mut command = None;
    let new_primary = match scenario {
        Scenario::Crash | Scenario::LinkCut => {
            if scenario == Scenario::Crash {
                cluster.server_mut(1).kill();
            } else {
                cluster.lab.cut(1);
            }
            // The log file only (cheap to read): polling the command line or the servers
            // here would take CPU from the failover being measured.
            if !cluster.wait_for_log(&["failover of pool db promoted (n"], SETTLE) {
                return Err(format!("no promotion; log:\n{}", cluster.front_log()));
            }
            promoted_node(&cluster.front_log())
                .ok_or_else(|| "promotion line without a node".to_owned())?
        }
        Scenario::Switchover => {
            let (ok, text) = cluster.cli(&["switchover", "db", "--to", "n2"]);
            command = Some(fault.elapsed());
            if !ok || !text.contains("switched over") {
                return Err(format!(
                    "switchover failed: {text}\nlog:\n{}",
                    cluster.front_log()
                ));
            }
            2
        }
    };
    if !writer.wait_for_acks(RESUMED_ACKS, SETTLE) {
        return Err(format!(
            "writes did not resume on n{new_primary}; log:\n{}",
            cluster.front_log()
        ));
    }
    let replicas: Vec<usize> = match scenario {
        Scenario::Switchover => vec![1, 3],
        _ => [2, 3].into_iter().filter(|&n| n != new_primary).collect(),
    };
    if !cluster.wait_for_topology(new_primary, &replicas) {
        return Err(format!(
            "n{new_primary} is not the primary of {replicas:?}; log:\n{}",
            cluster.front_log()
        ));
    }
    let log = writer.finish();
    let acked = log.acked();
    // Waits (up to SETTLE) only when something is missing.
    cluster.wait_for_rows(new_primary, &acked);
    let lost = log.lost(&cluster.server(new_primary).ids()).len();
    let front = cluster.front_log();
    if let Some(dir) = std::env::var_os("KEEP_LOGS") {
        let path = std::path::Path::new(&dir).join(format!("{round}-{}.log", scenario.short()));
        if let Err(problem) = std::fs::write(&path, &front) {
            eprintln!("cannot keep the log as {}: {problem}", path.display());
        }
    }
    let steps = scenario
        .steps()
        .iter()
        .map(|&(label, words)| (label, step_after(&front, words, fault_wall)))
        .collect();
    let (errors, breaks) = failures_after(&log, fault);
    let failed: Vec<i64> = log
        .attempts
        .iter()
        .filter(|a| a.at >= fault && !a.acked)
        .map(|a| millis(a.at - fault))
        .collect();
    let failing = failed.first().zip(failed.last()).map(|(a, b)| (*a, *b));
    let outage = log.longest_outage_after(fault);
    Ok(Run {
        outage,
        acked: acked.len(),
        lost,
        errors,
        breaks,
        failing,
        new_primary,
        steps,
        resumed: resumed_after(&log, fault).map(|at| millis(at - fault)),
        command,
    })
}

/// The node number in the first `promoted (nN)` line.
fn promoted_node(log: &str) -> Option<usize> {
    let line = log
        .lines()
        .find(|line| line.contains("failover of pool db promoted (n"))?;
    let rest = line.split("promoted (n").nth(1)?;
    rest.split(')').next()?.parse().ok()
}

/// Failed attempts from `from` on, and how many separate runs of failures they form.
fn failures_after(log: &WriteLog, from: Instant) -> (usize, usize) {
    let mut errors = 0;
    let mut breaks = 0;
    let mut failing = false;
    for attempt in log.attempts.iter().filter(|a| a.at >= from) {
        if attempt.acked {
            failing = false;
        } else {
            errors += 1;
            if !failing {
                breaks += 1;
            }
            failing = true;
        }
    }
    (errors, breaks)
}

/// The first acknowledged write after the client's first failure from `from` on (after
/// `from` itself when nothing failed): when writes resumed.
fn resumed_after(log: &WriteLog, from: Instant) -> Option<Instant> {
    let after = log
        .attempts
        .iter()
        .find(|a| a.at >= from && !a.acked)
        .map_or(from, |failed| failed.at);
    log.first_ack_after(after)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Milliseconds from `fault` to the first log line at or after it containing `words`
/// (hafront's text log stamps each line with its UTC wall clock, and colours its fields).
fn step_after(log: &str, words: &str, fault: SystemTime) -> Option<i64> {
    let fault = unix_micros(fault);
    let log = strip_colours(log);
    log.lines()
        .filter(|line| line.contains(words))
        .filter(|line| !words.starts_with("server down") || line.contains("server=n1"))
        .filter_map(line_time)
        // The log's clock has microseconds; a line a hair before the stamp is the fault's.
        .find(|&at| at >= fault - 5_000)
        .map(|at| (at - fault) / 1000)
}

fn unix_micros(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The RFC 3339 UTC stamp (`2026-11-30T06:45:12.345678Z`) a log line starts with, as
/// microseconds since the epoch (colour codes already removed).
fn line_time(line: &str) -> Option<i64> {
    let start = line.find(|c: char| c.is_ascii_digit())?;
    let stamp = line[start..].split(['Z', ' ']).next()?;
    let (date, time) = stamp.split_once('T')?;
    let mut date = date.split('-').map(|part| part.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let mut time = time.split(':');
    let hours: i64 = time.next()?.parse().ok()?;
    let minutes: i64 = time.next()?.parse().ok()?;
    let seconds = time.next()?;
    let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, "0"));
    let whole: i64 = whole.parse().ok()?;
    let fraction = format!("{fraction:0<6}");
    let micros: i64 = fraction.get(..6)?.parse().ok()?;
    let days = days_from_civil(year, month, day);
    Some((((days * 24 + hours) * 60 + minutes) * 60 + whole) * 1_000_000 + micros)
}

/// `line` without its ANSI colour sequences (`ESC [ ... letter`).
fn strip_colours(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn describe(scenario: Scenario, run: &Run) -> String {
    let steps: Vec<String> = run
        .steps
        .iter()
        .map(|(label, at)| match at {
            Some(at) => format!("{label} {at}"),
            None => format!("{label} -"),
        })
        .collect();
    let resumed = run
        .resumed
        .map_or_else(|| "-".to_owned(), |at| at.to_string());
    let failing = run
        .failing
        .map(|(first, last)| format!(", failed attempts {first}..{last}"))
        .unwrap_or_default();
    let command = run
        .command
        .map(|d| format!(", command {} ms", d.as_millis()))
        .unwrap_or_default();
    let pause = if scenario == Scenario::Switchover {
        "write pause"
    } else {
        "write outage"
    };
    format!(
        "{pause} {} ms, lost {}/{} acknowledged, client errors {} in {} break(s), new primary \
         n{}{command}\n    ms from the fault: {}, writes resumed {resumed}{failing}",
        run.outage.as_millis(),
        run.lost,
        run.acked,
        run.errors,
        run.breaks,
        run.new_primary,
        steps.join(", ")
    )
}

fn median(values: &mut [u128]) -> u128 {
    values.sort_unstable();
    let middle = values.len() / 2;
    if values.len() % 2 == 0 {
        (values[middle - 1] + values[middle]) / 2
    } else {
        values[middle]
    }
}

/// The middle value (the upper one of an even count), if any.
fn middle(mut values: Vec<i64>) -> Option<i64> {
    values.sort_unstable();
    values.get(values.len() / 2).copied()
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

/// Prints the table; returns whether every run completed.
fn summary(
    results: &[(Scenario, Result<Run, String>)],
    scenarios: &[Scenario],
    runs: usize,
) -> bool {
    println!(
        "\nMariaDB failover through hafront's relay: 3 servers (semi-synchronous GTID \
         replication), health checks every 200 ms (fall 2), replication heartbeat 100 ms; \
         {runs} runs each"
    );
    println!(
        "{:<26} {:>22} {:>16} {:>24} {:>20}",
        "scenario", "outage median/worst", "lost per run", "client errors per run", "failed runs"
    );
    let mut complete = true;
    let mut verdicts = Vec::new();
    for &scenario in scenarios {
        let done: Vec<&Run> = results
            .iter()
            .filter(|(s, _)| *s == scenario)
            .filter_map(|(_, r)| r.as_ref().ok())
            .collect();
        let failed = results
            .iter()
            .filter(|(s, r)| *s == scenario && r.is_err())
            .count();
        complete &= failed == 0;
        let mut outages: Vec<u128> = done.iter().map(|r| r.outage.as_millis()).collect();
        let (median, worst) = if outages.is_empty() {
            ("-".to_owned(), 0)
        } else {
            let worst = *outages.iter().max().expect("a run");
            (median(&mut outages).to_string(), worst)
        };
        let lost: Vec<String> = done.iter().map(|r| r.lost.to_string()).collect();
        let errors: Vec<String> = done.iter().map(|r| r.errors.to_string()).collect();
        println!(
            "{:<26} {:>22} {:>16} {:>24} {:>20}",
            scenario.name(),
            format!("{median} / {worst} ms"),
            lost.join(" "),
            errors.join(" "),
            failed
        );
        let steps: Vec<String> = scenario
            .steps()
            .iter()
            .enumerate()
            .map(|(index, (label, _))| {
                let at = done.iter().filter_map(|r| r.steps[index].1).collect();
                format!(
                    "{label} {}",
                    middle(at).map_or("-".to_owned(), |ms| ms.to_string())
                )
            })
            .chain(
                middle(done.iter().filter_map(|r| r.resumed).collect())
                    .map(|ms| format!("writes resumed {ms}")),
            )
            .collect();
        println!(
            "{:<26}   steps, median ms from the fault: {}",
            "",
            steps.join(", ")
        );
        let none_lost = !done.is_empty() && done.iter().all(|r| r.lost == 0);
        let within = |target: Duration| {
            !done.is_empty() && done.iter().all(|r| r.outage <= target) && failed == 0
        };
        match scenario {
            Scenario::Crash => {
                let median_ok = median
                    .parse::<u128>()
                    .is_ok_and(|m| m <= CRASH_TARGET.as_millis());
                verdicts.push(format!(
                    "{}: crash write outage <= {} ms in every run (median {})",
                    verdict(within(CRASH_TARGET)),
                    CRASH_TARGET.as_millis(),
                    if median_ok { "within" } else { "above" }
                ));
            }
            Scenario::LinkCut => {}
            Scenario::Switchover => {
                verdicts.push(format!(
                    "{}: switchover write pause <= {} ms in every run",
                    verdict(within(SWITCHOVER_TARGET)),
                    SWITCHOVER_TARGET.as_millis()
                ));
                verdicts.push(format!(
                    "{}: switchover client errors <= {SWITCHOVER_ERRORS} (one reconnect) in \
                     every run",
                    verdict(!done.is_empty() && done.iter().all(|r| r.errors <= SWITCHOVER_ERRORS))
                ));
            }
        }
        verdicts.push(format!(
            "{}: 0 acknowledged writes lost, {} (every run)",
            verdict(none_lost && failed == 0),
            scenario.name()
        ));
    }
    println!();
    for line in verdicts {
        println!("{line}");
    }
    println!(
        "\nNo VRRP on the front: the 100 ms advert target is for a virtual address, and this \
         front tier has none to move; the relay follows the promoted server (its role check) \
         instead. The link cut has no time target; it is timed like the crash.\n\
         Outage: from the fault (switchover: the command) to the first acknowledged write after \
         the longest gap; client errors: failed write attempts from then on, each one followed \
         by a reconnect."
    );
    println!(
        "\nPublished failover times of other tools (published, not measured here; their own \
         setups and settings):\n  \
         MaxScale mariadbmon   ~25 s worst case with default settings\n  \
         Orchestrator          10-13 s typical (GitHub, 2018)\n  \
         MHA                   10-30 s"
    );
    complete
}
