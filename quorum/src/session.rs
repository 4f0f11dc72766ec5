//! The node's one etcd session: connect, grant a lease, keep it alive every TTL/3 with each
//! request bounded by the request timeout, and publish it while its deadline has not
//! passed. Reconnects forever with a capped backoff.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{
    Certificate, Client, ConnectOptions, Identity, LeaseKeepAliveStream, LeaseKeeper, TlsOptions,
};
use std::time::Instant;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::lease::{Lease, requested_seconds};
use crate::settings::Settings;

/// A live lease on a connected client, as published to the claims.
#[derive(Clone)]
pub(crate) struct Session {
    /// The client the lease was granted on.
    pub client: Client,
    /// The lease id.
    pub lease: i64,
    /// Until when the lease may be acted on.
    pub deadline: Instant,
}

/// What the session knows, for status.
#[derive(Debug, Default)]
pub(crate) struct Health {
    pub lease: Option<Lease>,
    pub last_error: Option<String>,
}

/// The longest wait between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The first wait after a failed attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Runs the session until `cancel`; publishes every live lease on `sessions`.
pub(crate) async fn run(
    settings: Arc<Settings>,
    sessions: watch::Sender<Option<Session>>,
    reachable: watch::Sender<bool>,
    health: Arc<Mutex<Health>>,
    cancel: CancellationToken,
) {
    let mut keeper = Keeper {
        settings,
        sessions,
        reachable,
        health,
        client: None,
        lease: None,
        stream: None,
        stale_lease: None,
        backoff: FIRST_BACKOFF,
    };
    while !cancel.is_cancelled() {
        tokio::select! {
            () = cancel.cancelled() => break,
            () = keeper.step() => {}
        }
    }
}

struct Keeper {
    settings: Arc<Settings>,
    sessions: watch::Sender<Option<Session>>,
    reachable: watch::Sender<bool>,
    health: Arc<Mutex<Health>>,
    client: Option<Client>,
    lease: Option<Lease>,
    stream: Option<(LeaseKeeper, LeaseKeepAliveStream)>,
    /// A lease given up after its deadline, revoked (best effort) before the next grant so
    /// its keys do not linger until etcd expires it.
    stale_lease: Option<i64>,
    backoff: Duration,
}

impl Keeper {
    /// One step: connect, grant, or keep alive, whichever is due.
    async fn step(&mut self) {
        self.expire_if_due();
        let Some(client) = self.client.clone() else {
            match self.request(connect(&self.settings)).await {
                Ok(client) => self.client = Some(client),
                Err(error) => self.failed("connect", error).await,
            }
            return;
        };
        match &self.lease {
            None => self.grant(client).await,
            Some(lease) => {
                let due = lease.next_keep_alive().into();
                let deadline = lease.deadline().into();
                // Wake at the deadline too, to withdraw the session exactly then.
                tokio::select! {
                    () = tokio::time::sleep_until(due) => self.keep_alive(client).await,
                    () = tokio::time::sleep_until(deadline) => {}
                }
            }
        }
    }

    async fn grant(&mut self, mut client: Client) {
        if let Some(stale) = self.stale_lease.take() {
            let _ = self.request(client.lease_revoke(stale)).await;
        }
        let asked = requested_seconds(self.settings.ttl);
        let sent = Instant::now();
        match self.request(client.lease_grant(asked, None)).await {
            Ok(granted) => match Lease::granted(granted.id(), granted.ttl(), sent) {
                Some(lease) => {
                    if granted.ttl() != asked {
                        tracing::warn!(
                            asked_seconds = asked,
                            granted_seconds = granted.ttl(),
                            "etcd granted another lease TTL than asked: using etcd's (see etcd's minimum TTL: 1.5 election timeouts)"
                        );
                    }
                    tracing::info!(
                        lease = granted.id(),
                        ttl_seconds = granted.ttl(),
                        "quorum lease granted"
                    );
                    self.lease = Some(lease);
                    self.backoff = FIRST_BACKOFF;
                    self.publish();
                }
                None => self.failed("grant", "etcd granted a zero TTL".into()).await,
            },
            Err(error) => self.failed("grant", error).await,
        }
    }

    async fn keep_alive(&mut self, mut client: Client) {
        let Some(id) = self.lease.as_ref().map(Lease::id) else {
            return;
        };
        let sent = Instant::now();
        let ttl = match self.stream.as_mut() {
            None => match self.request(client.lease_keep_alive(id)).await {
                // Opening the stream sends one keep-alive and checks its answer: the TTL
                // reported is the one granted.
                Ok(stream) => {
                    self.stream = Some(stream);
                    self.lease
                        .as_ref()
                        .map_or(0, |lease| ttl_seconds(lease.ttl()))
                }
                Err(error) if error.contains("lease not found") => 0,
                Err(error) => return self.keep_alive_failed(error).await,
            },
            Some((keeper, stream)) => {
                let timeout = self.settings.request_timeout;
                let answer = tokio::time::timeout(timeout, async {
                    keeper.keep_alive().await?;
                    stream.message().await
                })
                .await;
                match answer {
                    Ok(Ok(Some(answer))) => answer.ttl(),
                    Ok(Ok(None)) => {
                        return self
                            .keep_alive_failed("the keep-alive stream ended".into())
                            .await;
                    }
                    Ok(Err(error)) => return self.keep_alive_failed(error.to_string()).await,
                    Err(_) => {
                        return self
                            .keep_alive_failed(format!("no keep-alive answer within {timeout:?}"))
                            .await;
                    }
                }
            }
        };
        let renewed = self
            .lease
            .as_mut()
            .is_some_and(|lease| lease.renewed(sent, ttl));
        if renewed {
            self.publish();
        } else {
            tracing::warn!(lease = id, "etcd says the quorum lease is gone");
            self.withdraw(None, "the lease expired on etcd".into());
        }
    }

    /// A keep-alive failed: a new stream next time (on a new connection after a second
    /// failure), retried soon; the deadline alone decides when the lease is given up.
    async fn keep_alive_failed(&mut self, error: String) {
        tracing::debug!(%error, "quorum keep-alive failed");
        if self.stream.take().is_none() {
            self.client = None;
        }
        self.record_error(format!("keep-alive: {error}"));
        let retry = self.settings.ttl / 10;
        let deadline = self.lease.as_ref().map(Lease::deadline);
        match deadline {
            Some(deadline) => {
                let wake = (Instant::now() + retry).min(deadline);
                tokio::time::sleep_until(wake.into()).await;
            }
            None => tokio::time::sleep(retry).await,
        }
    }

    /// Gives up the lease once its deadline has passed.
    fn expire_if_due(&mut self) {
        let now = Instant::now();
        if let Some(lease) = self.lease.as_ref().filter(|lease| !lease.is_live(now)) {
            let id = lease.id();
            tracing::warn!(
                lease = id,
                "quorum lease not renewed before its deadline: given up"
            );
            self.withdraw(Some(id), "lease deadline passed without a renewal".into());
        }
    }

    fn withdraw(&mut self, stale: Option<i64>, why: String) {
        self.lease = None;
        self.stream = None;
        self.stale_lease = stale;
        self.record_error(why);
        self.sessions.send_replace(None);
        self.reachable
            .send_if_modified(|reachable| std::mem::replace(reachable, false));
        self.health.lock().expect("quorum health").lease = None;
    }

    fn publish(&mut self) {
        let (Some(client), Some(lease)) = (&self.client, &self.lease) else {
            return;
        };
        self.sessions.send_replace(Some(Session {
            client: client.clone(),
            lease: lease.id(),
            deadline: lease.deadline(),
        }));
        self.reachable
            .send_if_modified(|reachable| !std::mem::replace(reachable, true));
        let mut health = self.health.lock().expect("quorum health");
        health.lease = Some(lease.clone());
    }

    /// A connection or grant failed: wait the backoff (doubling up to a cap), on a new
    /// connection next time.
    async fn failed(&mut self, what: &str, error: String) {
        tracing::debug!(%error, "quorum {what} failed");
        self.record_error(format!("{what}: {error}"));
        self.client = None;
        self.stream = None;
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    fn record_error(&self, error: String) {
        self.health.lock().expect("quorum health").last_error = Some(error);
    }

    /// Runs `request` within the request timeout.
    async fn request<T>(
        &self,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, String> {
        bounded(self.settings.request_timeout, request).await
    }
}

/// Runs `request` within `timeout`; errors in words.
pub(crate) async fn bounded<T>(
    timeout: Duration,
    request: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, request).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer from etcd within {timeout:?}")),
    }
}

fn ttl_seconds(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)
}

/// A client for `settings` (TLS files read now). Connecting is lazy in the etcd client
/// except for authentication, so errors mostly show on the first request.
pub(crate) async fn connect(settings: &Settings) -> Result<Client, etcd_client::Error> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(settings.request_timeout)
        .with_timeout(settings.request_timeout)
        .with_keep_alive(settings.ttl / 3, settings.request_timeout)
        .with_keep_alive_while_idle(true)
        // A member cut off from the majority refuses at once instead of hanging.
        .with_require_leader(true);
    if let Some((user, password)) = &settings.credentials {
        options = options.with_user(user.clone(), password.reveal().to_owned());
    }
    if let Some(tls) = &settings.tls {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|error| {
                etcd_client::Error::InvalidArgs(format!("cannot read {}: {error}", path.display()))
            })
        };
        let mut config = TlsOptions::new();
        if let Some(ca) = &tls.ca_file {
            config = config.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        options = options.with_tls(config);
    }
    Client::connect(&settings.endpoints, Some(options)).await
}
