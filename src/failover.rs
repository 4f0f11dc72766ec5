//! Failover in the daemon: one [`Coordinator`] per pool with a `failover` block, its steps
//! published as alerts, and operators' drains of servers, kept in `state_dir` across
//! reloads and restarts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hafront_config::{Config, ConfigError, KeyPath, Pool, Secret};
use hafront_failover::mariadb::{Credentials, Session};
use hafront_failover::{Coordinator, FailoverEvent, Member, Request, Settings, Topology};
use hafront_health::Monitor;
use tracing::{error, info, warn};

use crate::alerts::{AlertSender, Event, EventKind};
use crate::vrrp::VrrpInstances;

/// The shortest limit for one administrative statement or login.
const MIN_STATEMENT_TIMEOUT: Duration = Duration::from_secs(1);

/// The running coordinators, by pool.
#[derive(Default)]
pub struct Failovers {
    running: BTreeMap<String, (Pool, Coordinator)>,
}

impl Failovers {
    /// Starts a coordinator for every pool of `config` with a `failover` block, and stops
    /// those whose pool's settings changed or went away (a pool whose settings are the same
    /// keeps its coordinator and what it was doing). Returns each pool whose coordinator could
    /// not start, with why (already logged); the next call tries it again.
    pub fn follow(
        &mut self,
        config: &Config,
        monitor: &Monitor,
        vrrp: &mut VrrpInstances,
        alerts: &AlertSender,
    ) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut old = std::mem::take(&mut self.running);
        for (name, pool) in &config.pools {
            let Some(failover) = &pool.failover else {
                continue;
            };
            if let Some((running_pool, coordinator)) = old.remove(name)
                && running_pool == *pool
            {
                self.running
                    .insert(name.clone(), (running_pool, coordinator));
                continue;
            }
            match settings(config, name, pool, monitor) {
                Ok(mut settings) => {
                    if failover.local.is_some()
                        && let Some(instance) = &failover.vrrp
                    {
                        settings.handover = Some(Arc::new(vrrp.resigner(instance)));
                    }
                    // Following a VRRP instance, it acts while master (under a quorum, that
                    // needs the instance's key); otherwise, under a quorum, while holding the
                    // pool's own key `failover/<pool>`.
                    let master = match failover.vrrp.as_deref() {
                        Some(instance) => Some(vrrp.master_watch(instance)),
                        None => vrrp.quorum().map(|quorum| quorum.failover_leadership(name)),
                    };
                    let sender = alerts.clone();
                    let sink = Arc::new(move |event: FailoverEvent| {
                        if !sender.send(Event {
                            at: event.at,
                            kind: EventKind::Failover(event),
                        }) {
                            warn!("alert queue full; a failover step was not reported");
                        }
                    });
                    let coordinator =
                        Coordinator::start(settings, monitor.subscribe(), master, sink);
                    info!(pool = %name, "failover coordinator running");
                    self.running
                        .insert(name.clone(), (pool.clone(), coordinator));
                }
                Err(problem) => {
                    error!(pool = %name, "failover not started: {problem}");
                    problems.push((name.clone(), format!("pool {name}: failover: {problem}")));
                }
            }
        }
        for name in old.into_keys() {
            info!(pool = %name, "failover coordinator stopped (pool changed or removed)");
        }
        problems
    }

    /// Sends `request` to the coordinator of `pool`; the returned future runs without
    /// holding the daemon.
    pub fn request(
        &self,
        pool: &str,
        request: Request,
    ) -> impl Future<Output = Result<String, String>> + Send + 'static {
        let requester = self
            .running
            .get(pool)
            .map(|(_, coordinator)| coordinator.requester())
            .ok_or_else(|| {
                format!("pool {pool:?} has no failover block in the running configuration")
            });
        async move { requester?.request(request).await }
    }

    /// The replication topology of every pool with failover.
    pub fn topologies(&self) -> BTreeMap<String, Topology> {
        self.running
            .iter()
            .map(|(name, (_, coordinator))| (name.clone(), coordinator.topology()))
            .collect()
    }
}

fn settings(
    config: &Config,
    name: &str,
    pool: &Pool,
    monitor: &Monitor,
) -> Result<Settings, String> {
    let failover = pool.failover.clone().ok_or("no failover block")?;
    let reveal = |secret: &Option<Secret>, what: &str| -> Result<Option<String>, String> {
        secret
            .as_ref()
            .map(|secret| {
                secret
                    .reveal()
                    .map_err(|error| format!("{what}: cannot read it: {error}"))
            })
            .transpose()
    };
    let admin = Credentials {
        user: failover.user.clone(),
        password: reveal(&failover.password, "password")?,
    };
    let replication = Credentials {
        user: failover.replication_user.clone(),
        password: reveal(&failover.replication_password, "replication_password")?,
    };
    let health = monitor.pool(name).ok_or("the pool is not monitored")?;
    let members = pool
        .servers
        .iter()
        .map(|server| {
            let name = server.display_name();
            let health = health
                .iter()
                .find(|health| health.name == name)
                .cloned()
                .ok_or_else(|| format!("server {name} is not monitored"))?;
            let promotable = failover
                .candidates
                .as_ref()
                .is_none_or(|candidates| candidates.contains(&name));
            Ok(Member {
                name,
                address: server.address,
                health,
                promotable,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let check_timeout = config
        .checks
        .get(&pool.check)
        .map_or(MIN_STATEMENT_TIMEOUT, |check| check.timeout);
    Ok(Settings {
        pool: name.to_owned(),
        members,
        admin,
        replication,
        config: failover,
        state_dir: config.global.state_dir.clone(),
        connect_timeout: check_timeout,
        timeout: check_timeout.max(MIN_STATEMENT_TIMEOUT),
        handover: None,
    })
}

/// `hafront check --connect`: logs in to every server of every pool with failover as its
/// user and reports, located in `text` (the file named `file`), what would make a failover
/// step fail: no login, a missing privilege, a server that is not MariaDB, a candidate without
/// `log_slave_updates`.
pub async fn check_servers(config: &Config, file: &str, text: &str) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for (name, pool) in &config.pools {
        let Some(failover) = &pool.failover else {
            continue;
        };
        let path = KeyPath::root().key("pools").key(name);
        let report = |errors: &mut Vec<ConfigError>, key: KeyPath, message: String| {
            errors.push(ConfigError {
                file: file.to_owned(),
                position: hafront_config::locate(text, &key),
                key,
                message,
            });
        };
        let password = match failover.password.as_ref().map(Secret::reveal).transpose() {
            Ok(password) => password,
            Err(error) => {
                let key = path.key("failover").key("password");
                report(&mut errors, key, format!("cannot read it: {error}"));
                continue;
            }
        };
        let credentials = Credentials {
            user: failover.user.clone(),
            password,
        };
        for (index, server) in pool.servers.iter().enumerate() {
            let server_name = server.display_name();
            let at = format!("{server_name} ({})", server.address);
            let user_key = path.key("failover").key("user");
            let mut session = match Session::open(
                server.address,
                &credentials,
                CHECK_CONNECT_TIMEOUT,
                CHECK_CONNECT_TIMEOUT,
            )
            .await
            {
                Ok(session) => session,
                Err(problem) => {
                    report(&mut errors, user_key, format!("{at}: {problem}"));
                    continue;
                }
            };
            match session.missing_privileges().await {
                Ok(missing) if !missing.is_empty() => report(
                    &mut errors,
                    user_key.clone(),
                    format!(
                        "{at}: user {} lacks {}, which failover needs: GRANT {} ON *.* TO it",
                        failover.user,
                        missing.join(", "),
                        missing.join(", ")
                    ),
                ),
                Ok(_) => {}
                Err(problem) => report(&mut errors, user_key.clone(), format!("{at}: {problem}")),
            }
            match session.observe().await {
                Ok(observation) if !observation.log_slave_updates && pool.servers.len() > 2 => {
                    report(
                        &mut errors,
                        path.key("servers").index(index),
                        format!(
                            "{at}: log_slave_updates is off: once promoted, the other replicas \
                             could not follow it; set log_slave_updates=ON"
                        ),
                    )
                }
                Ok(_) => {}
                Err(problem) => report(
                    &mut errors,
                    path.key("failover"),
                    format!("{at}: {problem}"),
                ),
            }
            session.close().await;
        }
    }
    errors
}

/// How long `hafront check --connect` waits for each server.
const CHECK_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Servers an operator drained (`pool/server`), applied to the monitor's servers after
/// every start and reload and kept in `state_dir/drained.json`.
pub struct Drains {
    path: PathBuf,
    drained: BTreeSet<String>,
}

impl Drains {
    /// Reads the drains kept under `state_dir` (none when the file is missing or unreadable,
    /// which is logged).
    pub fn load(state_dir: &Path) -> Drains {
        let path = state_dir.join("drained.json");
        let drained = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|error| {
                error!("{}: {error}; no server is drained", path.display());
                BTreeSet::new()
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(error) => {
                error!("{}: {error}; no server is drained", path.display());
                BTreeSet::new()
            }
        };
        Drains { path, drained }
    }

    /// Marks every monitored server drained or not, as recorded.
    pub fn apply(&self, monitor: &Monitor) {
        for (pool, servers) in monitor.pools() {
            for server in servers.iter() {
                server.set_drained(self.drained.contains(&format!("{pool}/{}", server.name)));
            }
        }
    }

    /// Drains (`drain` true) or enables `target` (`pool/server`), records it and applies it.
    pub fn set(&mut self, monitor: &Monitor, target: &str, drain: bool) -> Result<String, String> {
        let (pool, server) = target
            .split_once('/')
            .ok_or_else(|| format!("{target:?}: name a server as POOL/SERVER"))?;
        let health = monitor
            .pool(pool)
            .ok_or_else(|| format!("no pool {pool:?} in the running configuration"))?
            .iter()
            .find(|health| health.name == server)
            .cloned()
            .ok_or_else(|| format!("pool {pool} has no server {server:?}"))?;
        let changed = if drain {
            self.drained.insert(target.to_owned())
        } else {
            self.drained.remove(target)
        };
        health.set_drained(drain);
        if changed {
            self.store()?;
        }
        let (verb, rest) = if drain {
            ("drained", "takes no new clients; open connections finish")
        } else {
            ("enabled", "takes new clients again")
        };
        info!(server = %target, "{verb} by the operator");
        Ok(format!("{target} {verb}: it {rest}"))
    }

    /// Whether `pool/server` is drained.
    pub fn contains(&self, target: &str) -> bool {
        self.drained.contains(target)
    }

    fn store(&self) -> Result<(), String> {
        let text = serde_json::to_vec(&self.drained).map_err(|e| e.to_string())?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let temporary = self.path.with_extension("json.new");
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, &self.path))
            .map_err(|e| format!("cannot record the drain in {}: {e}", self.path.display()))
    }
}
