//! Which events go out in which mail, and what the mail says: bursts within
//! the coalesce window become one mail, at most `max_per_hour` mails leave
//! per hour, and the events held back ride along in the next one.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::event::{Event, counted};

/// Window of the per-hour rate limit.
const RATE_WINDOW: Duration = Duration::from_secs(3600);

/// Events listed one per line in a mail; the middle of a longer burst is
/// summarised as a count.
const MAX_LISTED: usize = 100;

/// Longest subject, in characters.
const MAX_SUBJECT: usize = 180;

/// Events gathered for the next mail.
#[derive(Debug)]
pub(crate) struct Batcher {
    coalesce: Duration,
    max_per_hour: usize,
    pending: Vec<Event>,
    batch_started: Option<Instant>,
    sent: VecDeque<Instant>,
}

/// The events of one mail.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Batch {
    /// The events, oldest first.
    pub(crate) events: Vec<Event>,
    /// Whether the rate limit made them wait beyond the coalesce window.
    pub(crate) rate_limited: bool,
}

impl Batcher {
    /// A batcher merging events within `coalesce` and sending at most
    /// `max_per_hour` mails an hour (at least one).
    pub(crate) fn new(coalesce: Duration, max_per_hour: u32) -> Self {
        Batcher {
            coalesce,
            max_per_hour: usize::try_from(max_per_hour.max(1)).unwrap_or(usize::MAX),
            pending: Vec::new(),
            batch_started: None,
            sent: VecDeque::new(),
        }
    }

    /// Applies new limits; pending events and the mails already counted
    /// against the hour stay.
    pub(crate) fn set_limits(&mut self, coalesce: Duration, max_per_hour: u32) {
        self.coalesce = coalesce;
        self.max_per_hour = usize::try_from(max_per_hour.max(1)).unwrap_or(usize::MAX);
    }

    /// Adds an event to the next mail.
    pub(crate) fn push(&mut self, event: Event, now: Instant) {
        self.batch_started.get_or_insert(now);
        self.pending.push(event);
    }

    /// When the coalesce window of the pending events closes.
    fn window_end(&self) -> Option<Instant> {
        self.batch_started.map(|started| started + self.coalesce)
    }

    /// When the rate limit lets the next mail go, if it holds one back now:
    /// an hour after the oldest of the last `max_per_hour` mails.
    fn rate_free_at(&self) -> Option<Instant> {
        let over = self.sent.len().checked_sub(self.max_per_hour)?;
        self.sent.get(over).map(|sent| *sent + RATE_WINDOW)
    }

    /// Whether the rate limit keeps the pending events past their window.
    fn held_by_rate_limit(&self) -> bool {
        self.window_end()
            .zip(self.rate_free_at())
            .is_some_and(|(window_end, free)| free > window_end)
    }

    /// When the pending events are due to go out, if there are any.
    pub(crate) fn due(&self) -> Option<Instant> {
        let window_end = self.window_end()?;
        Some(
            self.rate_free_at()
                .map_or(window_end, |free| free.max(window_end)),
        )
    }

    /// The pending events as one mail, if they are due at `now`; the mail
    /// counts against the rate limit.
    pub(crate) fn take_due(&mut self, now: Instant) -> Option<Batch> {
        if self.due()? > now {
            return None;
        }
        let rate_limited = self.held_by_rate_limit();
        self.batch_started = None;
        self.sent.push_back(now);
        while self
            .sent
            .front()
            .is_some_and(|sent| *sent + RATE_WINDOW <= now)
        {
            self.sent.pop_front();
        }
        Some(Batch {
            events: std::mem::take(&mut self.pending),
            rate_limited,
        })
    }

    /// All pending events as one mail regardless of window and limit (at
    /// shutdown, so nothing is lost).
    pub(crate) fn take_all(&mut self) -> Option<Batch> {
        let rate_limited = self.held_by_rate_limit();
        self.batch_started.take()?;
        Some(Batch {
            events: std::mem::take(&mut self.pending),
            rate_limited,
        })
    }

    /// Puts back the events of a mail that could not be queued; they go out
    /// with the next mail, one window from `now`.
    pub(crate) fn restore(&mut self, batch: Batch, now: Instant) {
        self.sent.pop_back();
        let mut events = batch.events;
        events.append(&mut self.pending);
        self.pending = events;
        self.batch_started = Some(now);
    }
}

/// A mail's subject and body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MailText {
    /// Subject line.
    pub(crate) subject: String,
    /// Plain-text body.
    pub(crate) body: String,
}

/// Writes the mail for a batch: what happened (most urgent first in the
/// subject), where, when, why, and the current state of the node.
pub(crate) fn compose(
    node: &str,
    batch: &Batch,
    max_per_hour: u32,
    snapshot: &str,
    now: SystemTime,
) -> MailText {
    let events = &batch.events;
    let headline = events
        .iter()
        .enumerate()
        .min_by_key(|(index, event)| (event.severity_rank(), *index))
        .map(|(_, event)| event.to_string())
        .unwrap_or_default();
    let mut subject = format!("[hafront {node}] {headline}");
    if subject.chars().count() > MAX_SUBJECT {
        subject = subject.chars().take(MAX_SUBJECT - 3).collect::<String>() + "...";
    }
    if events.len() > 1 {
        let _ = write!(subject, " (+{} more)", events.len() - 1);
    }

    let mut body = format!(
        "hafront on node {node} reports {}",
        counted(events.len() as u64, "event")
    );
    if let (Some(first), Some(last)) = (events.first(), events.last()) {
        let (first, last) = (
            humantime::format_rfc3339_seconds(first.at).to_string(),
            humantime::format_rfc3339_seconds(last.at).to_string(),
        );
        if first == last {
            let _ = write!(body, " at {first}");
        } else {
            let _ = write!(body, " between {first} and {last}");
        }
    }
    body.push_str(".\n");
    if batch.rate_limited {
        let _ = writeln!(
            body,
            "Some were held back by the limit of {} per hour.",
            counted(max_per_hour, "mail")
        );
    }
    body.push_str("\nEvents, oldest first:\n");
    let listed_each_end = MAX_LISTED / 2;
    for (index, event) in events.iter().enumerate() {
        if events.len() > MAX_LISTED && index == listed_each_end {
            let _ = writeln!(
                body,
                "  ... {} (see the daemon log) ...",
                counted((events.len() - MAX_LISTED) as u64, "more event")
            );
        }
        if events.len() > MAX_LISTED
            && (listed_each_end..events.len() - listed_each_end).contains(&index)
        {
            continue;
        }
        let _ = writeln!(
            body,
            "  {}  {event}",
            humantime::format_rfc3339_seconds(event.at)
        );
    }
    let _ = write!(
        body,
        "\nCurrent state at {}:\n{}\n\n-- \nhafront on {node}\n",
        humantime::format_rfc3339_seconds(now),
        snapshot.trim_end()
    );
    MailText { subject, body }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::event::{EventKind, ServerTransition};
    use hafront_health::Status;

    fn event(new: Status, at_secs: u64) -> Event {
        let old = if new == Status::Up {
            Status::Down
        } else {
            Status::Up
        };
        Event {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(at_secs),
            kind: EventKind::Server(ServerTransition {
                pool: "mysql".into(),
                server: "db1".into(),
                address: "127.0.0.1:3306".parse().unwrap(),
                old,
                new,
                role: None,
                reason: "connect: connection refused".into(),
                down_for: None,
            }),
        }
    }

    #[test]
    fn a_burst_within_the_window_is_one_mail() {
        let start = Instant::now();
        let mut batcher = Batcher::new(Duration::from_secs(10), 20);
        assert_eq!(batcher.due(), None);
        batcher.push(event(Status::Down, 0), start);
        batcher.push(event(Status::Up, 1), start + Duration::from_secs(1));
        assert_eq!(batcher.due(), Some(start + Duration::from_secs(10)));
        assert_eq!(batcher.take_due(start + Duration::from_secs(9)), None);
        let batch = batcher.take_due(start + Duration::from_secs(10)).unwrap();
        assert_eq!(batch.events.len(), 2);
        assert!(!batch.rate_limited);
        assert_eq!(batcher.due(), None);
    }

    #[test]
    fn excess_mails_wait_for_the_hour_and_carry_everything_held_back() {
        let start = Instant::now();
        let second = Duration::from_secs(1);
        let mut batcher = Batcher::new(second, 2);
        let mut now = start;
        let mut mails = 0;
        for i in 0..100u64 {
            batcher.push(event(Status::Down, i), now);
            now += second * 2;
            if batcher.take_due(now).is_some() {
                mails += 1;
            }
        }
        assert_eq!(mails, 2, "the limit holds within the hour");
        assert_eq!(batcher.due(), Some(start + RATE_WINDOW + second * 2));
        let batch = batcher.take_due(start + RATE_WINDOW + second * 2).unwrap();
        assert_eq!(batch.events.len(), 98, "nothing is lost, all merged");
        assert!(batch.rate_limited);
    }

    #[test]
    fn shutdown_takes_everything_pending() {
        let mut batcher = Batcher::new(Duration::from_secs(10), 1);
        assert_eq!(batcher.take_all(), None);
        batcher.push(event(Status::Down, 0), Instant::now());
        assert_eq!(batcher.take_all().unwrap().events.len(), 1);
        assert_eq!(batcher.due(), None);
    }

    #[test]
    fn mail_says_what_where_when_why_and_the_current_state() {
        let batch = Batch {
            events: vec![event(Status::Up, 60), event(Status::Down, 0)],
            rate_limited: false,
        };
        let text = compose(
            "node1",
            &batch,
            20,
            "pool mysql: db1 up",
            SystemTime::UNIX_EPOCH + Duration::from_secs(120),
        );
        assert_eq!(
            text.subject,
            "[hafront node1] mysql/db1 (127.0.0.1:3306) is DOWN (was up): connect: connection refused (+1 more)"
        );
        assert!(
            text.body
                .starts_with("hafront on node node1 reports 2 events")
        );
        assert!(
            text.body
                .contains("1970-01-01T00:01:00Z  mysql/db1 (127.0.0.1:3306) is UP")
        );
        assert!(
            text.body
                .contains("Current state at 1970-01-01T00:02:00Z:\npool mysql: db1 up\n")
        );
    }

    #[test]
    fn long_bursts_list_both_ends_and_count_the_middle() {
        let batch = Batch {
            events: (0..250).map(|i| event(Status::Down, i)).collect(),
            rate_limited: true,
        };
        let text = compose("n", &batch, 3, "", SystemTime::UNIX_EPOCH);
        assert_eq!(text.body.matches(" is DOWN ").count(), MAX_LISTED);
        assert!(text.body.contains("... 150 more events"));
        assert!(text.body.contains("limit of 3 mails per hour"));
    }
}
