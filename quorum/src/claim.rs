//! One leader key: campaign for it while wanted, give it up when not, and publish who holds
//! it. Held ends by this task's own timer at the lease deadline (self-fencing by deadline),
//! whatever etcd or the network do.

use std::sync::Arc;
use std::time::Instant;

use etcd_client::{
    Compare, CompareOp, EventType, KeyValue, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
    WatchStream,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::session::{Session, bounded};
use crate::settings::Settings;

/// Who holds a claim's key, as this node knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimState {
    /// This node holds the key, and may act as its leader until `until` (exclusive): the
    /// state changes at `until` at the latest unless the lease was renewed.
    Held {
        /// The lease deadline.
        until: Instant,
    },
    /// Another holder (named by the key's value) has it.
    HeldBy {
        /// The holder's node name (at most [`MAX_HOLDER_LEN`] bytes of it).
        holder: String,
    },
    /// Nobody holds it.
    Free,
    /// etcd cannot be reached (or this node has no live lease) since `since`.
    Unreachable {
        /// When the lease was lost or the first attempt failed.
        since: Instant,
    },
}

impl ClaimState {
    /// Whether this node holds the key now.
    pub fn is_held(&self) -> bool {
        matches!(self, ClaimState::Held { until } if Instant::now() < *until)
    }
}

/// The longest holder name kept from a key's value (a hostname's limit).
pub const MAX_HOLDER_LEN: usize = 253;

/// A handle on one leader key; dropping it gives the key up (best effort).
pub struct Claim {
    wanted: watch::Sender<bool>,
    state: watch::Receiver<ClaimState>,
}

impl Claim {
    pub(crate) fn start(
        settings: Arc<Settings>,
        key: &str,
        sessions: watch::Receiver<Option<Session>>,
        cancel: CancellationToken,
    ) -> Claim {
        let (wanted, wanted_rx) = watch::channel(false);
        let (state_tx, state) = watch::channel(ClaimState::Unreachable {
            since: Instant::now(),
        });
        let task = ClaimTask {
            key: settings.key(key),
            settings,
            wanted: wanted_rx,
            state: state_tx,
            sessions,
            cancel,
        };
        tokio::spawn(task.run());
        Claim { wanted, state }
    }

    /// Campaigns for the key (`true`) or gives it up if held (`false`).
    pub fn want(&self, wanted: bool) {
        self.wanted.send_if_modified(|current| {
            let changed = *current != wanted;
            *current = wanted;
            changed
        });
    }

    /// Follows who holds the key.
    pub fn state(&self) -> watch::Receiver<ClaimState> {
        self.state.clone()
    }
}

/// The key as read from etcd: who holds it under which lease.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Holder {
    name: String,
    lease: i64,
}

impl Holder {
    fn from(kv: &KeyValue) -> Holder {
        let value = kv.value();
        let value = &value[..value.len().min(MAX_HOLDER_LEN)];
        Holder {
            name: String::from_utf8_lossy(value).into_owned(),
            lease: kv.lease(),
        }
    }
}

/// Why following a session stopped.
enum Stop {
    /// Cancelled or the handle was dropped: exit.
    Exit,
    /// The session changed (new lease, or none): start over.
    SessionChanged,
    /// An etcd request failed: retry shortly.
    Failed(String),
}

struct ClaimTask {
    key: String,
    settings: Arc<Settings>,
    wanted: watch::Receiver<bool>,
    state: watch::Sender<ClaimState>,
    sessions: watch::Receiver<Option<Session>>,
    cancel: CancellationToken,
}

impl ClaimTask {
    async fn run(mut self) {
        loop {
            let session = self.sessions.borrow_and_update().clone();
            let stop = match session {
                None => {
                    self.unreachable(Instant::now());
                    self.wait_for_session().await
                }
                Some(session) => self.follow(session).await,
            };
            match stop {
                Stop::Exit => break,
                Stop::SessionChanged => {}
                Stop::Failed(error) => {
                    tracing::debug!(key = %self.key, %error, "quorum claim request failed");
                    if let Stop::Exit = self.pause().await {
                        break;
                    }
                }
            }
        }
        self.state.send_replace(ClaimState::Free);
    }

    /// Waits for a new session, or cancellation.
    async fn wait_for_session(&mut self) -> Stop {
        tokio::select! {
            () = self.cancel.cancelled() => Stop::Exit,
            changed = self.sessions.changed() => match changed {
                Ok(()) => Stop::SessionChanged,
                Err(_) => Stop::Exit,
            },
        }
    }

    /// Waits a short while before retrying after a failure, still ending Held at its
    /// deadline.
    async fn pause(&mut self) -> Stop {
        let retry = tokio::time::sleep(self.settings.ttl / 10);
        let until = self.held_until();
        tokio::select! {
            () = self.cancel.cancelled() => Stop::Exit,
            () = retry => Stop::SessionChanged,
            () = sleep_until(until) => {
                self.unreachable(until.unwrap_or_else(Instant::now));
                Stop::SessionChanged
            }
        }
    }

    /// Follows the key while `session` lasts: read it, watch it, campaign or resign.
    async fn follow(&mut self, mut session: Session) -> Stop {
        let timeout = self.settings.request_timeout;
        let mut client = session.client.clone();
        let read = match bounded(timeout, client.get(self.key.as_str(), None)).await {
            Ok(read) => read,
            Err(error) => return Stop::Failed(error),
        };
        let revision = read.header().map_or(0, |header| header.revision());
        let mut holder = read.kvs().first().map(Holder::from);
        let options = WatchOptions::new().with_start_revision(revision + 1);
        let mut watch: WatchStream =
            match bounded(timeout, client.watch(self.key.as_str(), Some(options))).await {
                Ok(watch) => watch,
                Err(error) => return Stop::Failed(error),
            };
        // A periodic re-read, in case a watch event was missed.
        let mut recheck = tokio::time::interval(self.settings.ttl);
        recheck.reset();
        loop {
            let wanted = *self.wanted.borrow_and_update();
            let ours = holder.as_ref().is_some_and(|h| h.lease == session.lease);
            if wanted && holder.is_none() {
                match self.campaign(&session).await {
                    Ok(now) => holder = now,
                    Err(error) => return Stop::Failed(error),
                }
            } else if !wanted && ours {
                match self.resign(&session).await {
                    Ok(()) => holder = None,
                    Err(error) => return Stop::Failed(error),
                }
            }
            if !self.publish(&session, holder.as_ref()) {
                // The deadline passed: the session task withdraws the lease right away.
                return self.wait_for_session().await;
            }
            let until = self.held_until();
            tokio::select! {
                () = self.cancel.cancelled() => return Stop::Exit,
                changed = self.wanted.changed() => if changed.is_err() {
                    // The handle was dropped: give the key up and exit.
                    if holder.as_ref().is_some_and(|h| h.lease == session.lease) {
                        let _ = self.resign(&session).await;
                    }
                    return Stop::Exit;
                },
                changed = self.sessions.changed() => {
                    if changed.is_err() {
                        return Stop::Exit;
                    }
                    let next = self.sessions.borrow_and_update().clone();
                    match next {
                        Some(next) if next.lease == session.lease => session = next,
                        _ => return Stop::SessionChanged,
                    }
                }
                message = watch.message() => match message {
                    Ok(Some(response)) => {
                        if response.canceled() {
                            return Stop::Failed(format!("watch cancelled: {}", response.cancel_reason()));
                        }
                        for event in response.events() {
                            holder = match (event.event_type(), event.kv()) {
                                (EventType::Put, Some(kv)) => Some(Holder::from(kv)),
                                _ => None,
                            };
                        }
                    }
                    Ok(None) => return Stop::Failed("the watch ended".into()),
                    Err(error) => return Stop::Failed(error.to_string()),
                },
                _ = recheck.tick() => {
                    match bounded(timeout, client.get(self.key.as_str(), None)).await {
                        Ok(read) => holder = read.kvs().first().map(Holder::from),
                        Err(error) => return Stop::Failed(error),
                    }
                }
                () = sleep_until(until) => {
                    self.unreachable(until.unwrap_or_else(Instant::now));
                    return self.wait_for_session().await;
                }
            }
        }
    }

    /// Takes the key if nobody has it; returns who has it afterwards.
    async fn campaign(&self, session: &Session) -> Result<Option<Holder>, String> {
        let key = self.key.as_str();
        let transaction = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key,
                self.settings.node_name.as_str(),
                Some(PutOptions::new().with_lease(session.lease)),
            )])
            .or_else([TxnOp::get(key, None)]);
        let mut client = session.client.clone();
        let answer = bounded(self.settings.request_timeout, client.txn(transaction)).await?;
        if answer.succeeded() {
            tracing::info!(key, "quorum key taken");
            return Ok(Some(Holder {
                name: self.settings.node_name.clone(),
                lease: session.lease,
            }));
        }
        Ok(answer
            .op_responses()
            .iter()
            .find_map(|response| match response {
                TxnOpResponse::Get(read) => read.kvs().first().map(Holder::from),
                _ => None,
            }))
    }

    /// Deletes the key if it is still under this session's lease.
    async fn resign(&self, session: &Session) -> Result<(), String> {
        let key = self.key.as_str();
        let transaction = Txn::new()
            .when([Compare::lease(key, CompareOp::Equal, session.lease)])
            .and_then([TxnOp::delete(key, None)]);
        let mut client = session.client.clone();
        bounded(self.settings.request_timeout, client.txn(transaction)).await?;
        tracing::info!(key, "quorum key released");
        Ok(())
    }

    /// Publishes the state for `holder`; false when held but the deadline has passed.
    fn publish(&self, session: &Session, holder: Option<&Holder>) -> bool {
        let state = match holder {
            Some(holder) if holder.lease == session.lease => {
                if Instant::now() >= session.deadline {
                    self.unreachable(session.deadline);
                    return false;
                }
                ClaimState::Held {
                    until: session.deadline,
                }
            }
            Some(holder) => ClaimState::HeldBy {
                holder: holder.name.clone(),
            },
            None => ClaimState::Free,
        };
        self.state.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        });
        true
    }

    /// Publishes Unreachable, keeping the first `since`.
    fn unreachable(&self, since: Instant) {
        self.state.send_if_modified(|current| {
            if matches!(current, ClaimState::Unreachable { .. }) {
                return false;
            }
            *current = ClaimState::Unreachable { since };
            true
        });
    }

    fn held_until(&self) -> Option<Instant> {
        match *self.state.borrow() {
            ClaimState::Held { until } => Some(until),
            _ => None,
        }
    }
}

/// Sleeps until `until`, or forever when `None`.
async fn sleep_until(until: Option<Instant>) {
    match until {
        Some(until) => tokio::time::sleep_until(until.into()).await,
        None => std::future::pending().await,
    }
}
