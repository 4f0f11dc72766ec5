//! Notify scripts: one queue per configured script, run in event order and
//! one at a time, without a shell, with the event in arguments and
//! environment, killed with their whole process group on timeout.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hafront_config::program::{SCRIPT_PATH, check_program};
use hafront_config::{Notify, Role};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Gid, Pid, Uid, User};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};
use tracing::{error, info, warn};

use super::AlertsError;
use super::event::{Event, EventKind, format_duration};

/// Events waiting for one script; more are dropped (and counted).
const QUEUE_CAPACITY: usize = 1024;

/// Bytes of a script's stdout or stderr kept for the log.
const OUTPUT_LIMIT: usize = 4096;

/// How long output is still read after the script exited (a background
/// child may hold the pipe open).
const OUTPUT_GRACE: Duration = Duration::from_millis(200);

/// The environment describing an event to a script.
pub fn event_environment(node: &str, event: &Event) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("HAFRONT_EVENT", event.name().to_owned()),
        ("HAFRONT_NODE", node.to_owned()),
        (
            "HAFRONT_TIME",
            humantime::format_rfc3339_millis(event.at).to_string(),
        ),
        ("HAFRONT_MESSAGE", event.to_string()),
    ];
    let seconds = |d: Duration| d.as_secs().to_string();
    match &event.kind {
        EventKind::Server(t) => {
            env.extend([
                ("HAFRONT_POOL", t.pool.clone()),
                ("HAFRONT_SERVER", t.server.clone()),
                ("HAFRONT_ADDRESS", t.address.to_string()),
                ("HAFRONT_OLD", t.old.to_string()),
                ("HAFRONT_NEW", t.new.to_string()),
                ("HAFRONT_REASON", t.reason.clone()),
            ]);
            if let Some(role) = t.role {
                env.push(("HAFRONT_ROLE", role_name(role).to_owned()));
            }
            if let Some(down_for) = t.down_for {
                env.push(("HAFRONT_DOWN_SECONDS", seconds(down_for)));
            }
        }
        EventKind::PoolDown { pool } => env.extend([
            ("HAFRONT_POOL", pool.clone()),
            ("HAFRONT_OLD", "up".to_owned()),
            ("HAFRONT_NEW", "down".to_owned()),
        ]),
        EventKind::PoolRecovered { pool, down_for } => {
            env.extend([
                ("HAFRONT_POOL", pool.clone()),
                ("HAFRONT_OLD", "down".to_owned()),
                ("HAFRONT_NEW", "up".to_owned()),
            ]);
            if let Some(down_for) = down_for {
                env.push(("HAFRONT_DOWN_SECONDS", seconds(*down_for)));
            }
        }
        EventKind::Vrrp(t) => env.extend([
            ("HAFRONT_INSTANCE", t.instance.clone()),
            ("HAFRONT_OLD", t.old.to_string()),
            ("HAFRONT_NEW", t.new.to_string()),
            ("HAFRONT_PRIORITY", t.priority.to_string()),
            ("HAFRONT_REASON", t.reason.clone()),
        ]),
        EventKind::VrrpAddressMismatch {
            instance,
            peer,
            advertised,
        } => {
            let list: Vec<String> = advertised.iter().map(ToString::to_string).collect();
            env.extend([
                ("HAFRONT_INSTANCE", instance.clone()),
                ("HAFRONT_PEER", peer.to_string()),
                ("HAFRONT_ADDRESSES", list.join(" ")),
            ]);
        }
        EventKind::RelaySaturated {
            relay,
            pool,
            max_connections,
        } => env.extend([
            ("HAFRONT_RELAY", relay.clone()),
            ("HAFRONT_POOL", pool.clone()),
            ("HAFRONT_MAX_CONNECTIONS", max_connections.to_string()),
        ]),
        EventKind::Quorum { reachable, detail } => env.extend([
            (
                "HAFRONT_NEW",
                if *reachable { "regained" } else { "lost" }.to_owned(),
            ),
            ("HAFRONT_REASON", detail.clone()),
        ]),
        EventKind::Failover(f) => {
            env.extend([
                ("HAFRONT_POOL", f.pool.clone()),
                ("HAFRONT_STEP", f.step.as_str().to_owned()),
                ("HAFRONT_REASON", f.detail.clone()),
            ]);
            if let Some(server) = &f.server {
                env.push(("HAFRONT_SERVER", server.clone()));
            }
        }
    }
    env
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Primary => "primary",
        Role::Replica => "replica",
    }
}

/// The user a script runs as, resolved once at start.
#[derive(Debug, Clone)]
struct RunAs {
    name: String,
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
    home: PathBuf,
}

impl RunAs {
    fn lookup(name: &str) -> Result<Self, AlertsError> {
        let unknown = |detail: String| AlertsError::User {
            user: name.to_owned(),
            detail,
        };
        let user = User::from_name(name)
            .map_err(|e| unknown(e.to_string()))?
            .ok_or_else(|| unknown("no such user".to_owned()))?;
        let c_name = CString::new(name).map_err(|e| unknown(e.to_string()))?;
        let groups = nix::unistd::getgrouplist(&c_name, user.gid)
            .map_err(|e| unknown(format!("supplementary groups: {e}")))?;
        Ok(RunAs {
            name: name.to_owned(),
            uid: user.uid,
            gid: user.gid,
            groups,
            home: user.dir,
        })
    }

    /// Makes the child switch to this user between fork and exec.
    fn apply(&self, command: &mut Command) {
        command
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .env("HOME", &self.home);
        let (uid, gid, groups) = (self.uid, self.gid, self.groups.clone());
        // SAFETY: the closure runs in the forked child before exec and only
        // makes the setgroups/setgid/setuid system calls on data prepared
        // before the fork: no allocation, no locks, async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                nix::unistd::setgroups(&groups)?;
                nix::unistd::setgid(gid)?;
                nix::unistd::setuid(uid)?;
                Ok(())
            });
        }
    }
}

/// One configured script and the events it wants.
#[derive(Debug)]
struct Script {
    command: Vec<String>,
    instance: Option<String>,
    pool: Option<String>,
    timeout: Duration,
    run_as: Option<RunAs>,
    node: String,
}

impl Script {
    /// Whether the script wants this event: all events when it names no
    /// instance and no pool, else those of its instance or its pool.
    fn wants(&self, event: &Event) -> bool {
        if self.instance.is_none() && self.pool.is_none() {
            return true;
        }
        let instance_matches = self
            .instance
            .as_deref()
            .is_some_and(|instance| event.instance() == Some(instance));
        let pool_matches = self
            .pool
            .as_deref()
            .is_some_and(|pool| event.pool() == Some(pool));
        instance_matches || pool_matches
    }

    fn program(&self) -> &str {
        &self.command[0]
    }

    /// Runs the script for one event and logs how it went.
    async fn run(&self, event: &Event) {
        let program = self.program();
        if let Err(problem) = check_program(Path::new(program)) {
            error!(script = program, event = event.name(), %problem, "notify script not run");
            return;
        }
        let mut command = Command::new(program);
        command.args(&self.command[1..]);
        if let EventKind::Vrrp(t) = &event.kind {
            // keepalived's notify arguments: TYPE NAME STATE PRIORITY.
            command.args([
                "INSTANCE",
                t.instance.as_str(),
                &t.new.to_string(),
                &t.priority.to_string(),
            ]);
        }
        command
            .env_clear()
            .env("PATH", SCRIPT_PATH)
            .envs(event_environment(&self.node, event))
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(run_as) = &self.run_as {
            run_as.apply(&mut command);
        }
        let started = Instant::now();
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                error!(script = program, event = event.name(), error = %e, "cannot start notify script");
                return;
            }
        };
        let stdout = child.stdout.take().map(|pipe| tokio::spawn(capture(pipe)));
        let stderr = child.stderr.take().map(|pipe| tokio::spawn(capture(pipe)));
        let outcome = match timeout(self.timeout, child.wait()).await {
            Ok(Ok(status)) => Outcome::Exited(status),
            Ok(Err(e)) => Outcome::WaitFailed(e),
            Err(_) => {
                if let Some(pid) = child.id() {
                    // The child leads its own process group: kill it all.
                    let group = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
                    if let Err(e) = killpg(group, Signal::SIGKILL) {
                        warn!(script = program, error = %e, "cannot kill notify script's process group");
                    }
                }
                match child.wait().await {
                    Ok(_) => Outcome::TimedOut,
                    Err(e) => Outcome::WaitFailed(e),
                }
            }
        };
        let elapsed = started.elapsed();
        let stdout = collect(stdout).await;
        let stderr = collect(stderr).await;
        let event_name = event.name();
        match outcome {
            Outcome::Exited(status) if status.success() => info!(
                script = program, event = event_name, ?elapsed, %stdout, %stderr,
                "notify script succeeded"
            ),
            Outcome::Exited(status) => warn!(
                script = program, event = event_name, %status, ?elapsed, %stdout, %stderr,
                "notify script failed"
            ),
            Outcome::TimedOut => warn!(
                script = program, event = event_name, timeout = %format_duration(self.timeout),
                %stdout, %stderr,
                "notify script timed out; its process group was killed"
            ),
            Outcome::WaitFailed(e) => error!(
                script = program, event = event_name, error = %e,
                "lost track of notify script"
            ),
        }
    }
}

/// How a script run ended.
enum Outcome {
    Exited(ExitStatus),
    TimedOut,
    WaitFailed(std::io::Error),
}

/// Reads a pipe to its end, keeping the first [`OUTPUT_LIMIT`] bytes.
async fn capture(mut pipe: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = OUTPUT_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}

/// The captured output as text, waiting at most [`OUTPUT_GRACE`] for a pipe
/// a background process still holds open.
async fn collect(reader: Option<JoinHandle<Vec<u8>>>) -> String {
    let Some(mut reader) = reader else {
        return String::new();
    };
    match timeout(OUTPUT_GRACE, &mut reader).await {
        Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).trim_end().to_owned(),
        Ok(Err(_)) => String::new(),
        Err(_) => {
            reader.abort();
            "(output still held open by a background process)".to_owned()
        }
    }
}

/// The running script queues: each script gets the events it wants, in
/// order, and runs them one at a time.
pub(crate) struct ScriptQueues {
    queues: Vec<(Arc<Script>, mpsc::Sender<Arc<Event>>)>,
    workers: Vec<JoinHandle<()>>,
    dropped: Arc<AtomicU64>,
}

impl ScriptQueues {
    /// Resolves run-as users and starts one worker per script.
    pub(crate) fn start(node: &str, notify: &[Notify]) -> Result<Self, AlertsError> {
        let mut queues = Vec::with_capacity(notify.len());
        let mut workers = Vec::with_capacity(notify.len());
        for entry in notify {
            if entry.command.is_empty() {
                return Err(AlertsError::EmptyCommand);
            }
            let run_as = entry.user.as_deref().map(RunAs::lookup).transpose()?;
            let script = Arc::new(Script {
                command: entry.command.clone(),
                instance: entry.instance.clone(),
                pool: entry.pool.clone(),
                timeout: entry.timeout,
                run_as,
                node: node.to_owned(),
            });
            if let Err(problem) = check_program(Path::new(script.program())) {
                error!(script = script.program(), %problem, "notify script will not be run until fixed");
            }
            let (tx, mut rx) = mpsc::channel::<Arc<Event>>(QUEUE_CAPACITY);
            let worker_script = Arc::clone(&script);
            workers.push(tokio::spawn(async move {
                while let Some(event) = rx.recv().await {
                    worker_script.run(&event).await;
                }
            }));
            queues.push((script, tx));
        }
        Ok(ScriptQueues {
            queues,
            workers,
            dropped: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Queues the event for every script that wants it, without waiting.
    pub(crate) fn dispatch(&self, event: &Arc<Event>) {
        for (script, queue) in &self.queues {
            if script.wants(event) && queue.try_send(Arc::clone(event)).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                warn!(
                    script = script.program(),
                    event = event.name(),
                    "notify queue full; event not passed to script"
                );
            }
        }
    }

    /// Lets every queued script run, then stops the workers.
    pub(crate) async fn finish(self) {
        drop(self.queues);
        for worker in self.workers {
            if let Err(e) = worker.await {
                error!(error = %e, "notify worker ended abnormally");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::event::{VrrpState, VrrpTransition};
    use std::time::SystemTime;

    fn script(instance: Option<&str>, pool: Option<&str>) -> Script {
        Script {
            command: vec!["/bin/true".into()],
            instance: instance.map(Into::into),
            pool: pool.map(Into::into),
            timeout: Duration::from_secs(1),
            run_as: None,
            node: "n1".into(),
        }
    }

    fn vrrp_event(instance: &str) -> Event {
        Event {
            at: SystemTime::UNIX_EPOCH,
            kind: EventKind::Vrrp(VrrpTransition {
                instance: instance.into(),
                old: VrrpState::Backup,
                new: VrrpState::Master,
                priority: 150,
                reason: "master down".into(),
            }),
        }
    }

    fn pool_event(pool: &str) -> Event {
        Event {
            at: SystemTime::UNIX_EPOCH,
            kind: EventKind::PoolDown { pool: pool.into() },
        }
    }

    #[test]
    fn filters_select_by_instance_or_pool() {
        assert!(script(None, None).wants(&vrrp_event("VI_1")));
        assert!(script(None, None).wants(&pool_event("mysql")));
        assert!(script(Some("VI_1"), None).wants(&vrrp_event("VI_1")));
        assert!(!script(Some("VI_1"), None).wants(&vrrp_event("VI_2")));
        assert!(!script(Some("VI_1"), None).wants(&pool_event("mysql")));
        assert!(script(None, Some("mysql")).wants(&pool_event("mysql")));
        assert!(!script(None, Some("mysql")).wants(&pool_event("redis")));
        assert!(!script(None, Some("mysql")).wants(&vrrp_event("VI_1")));
    }

    #[test]
    fn vrrp_environment_names_instance_states_and_priority() {
        let env = event_environment("n1", &vrrp_event("VI_1"));
        let get = |key: &str| env.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str());
        assert_eq!(get("HAFRONT_EVENT"), Some("vrrp"));
        assert_eq!(get("HAFRONT_INSTANCE"), Some("VI_1"));
        assert_eq!(get("HAFRONT_OLD"), Some("BACKUP"));
        assert_eq!(get("HAFRONT_NEW"), Some("MASTER"));
        assert_eq!(get("HAFRONT_PRIORITY"), Some("150"));
        assert_eq!(get("HAFRONT_TIME"), Some("1970-01-01T00:00:00.000Z"));
        assert_eq!(get("HAFRONT_POOL"), None);
    }

    #[test]
    fn address_mismatch_environment_names_the_peer_and_its_list() {
        let event = Event {
            at: SystemTime::UNIX_EPOCH,
            kind: EventKind::VrrpAddressMismatch {
                instance: "VI_1".into(),
                peer: "10.213.0.9".parse().unwrap(),
                advertised: vec![
                    "10.213.0.200".parse().unwrap(),
                    "10.213.0.201".parse().unwrap(),
                ],
            },
        };
        let env = event_environment("n1", &event);
        let get = |key: &str| env.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str());
        assert_eq!(get("HAFRONT_EVENT"), Some("vrrp_address_mismatch"));
        assert_eq!(get("HAFRONT_INSTANCE"), Some("VI_1"));
        assert_eq!(get("HAFRONT_PEER"), Some("10.213.0.9"));
        assert_eq!(get("HAFRONT_ADDRESSES"), Some("10.213.0.200 10.213.0.201"));
        assert!(script(Some("VI_1"), None).wants(&event));
        assert!(
            event
                .to_string()
                .contains("peer 10.213.0.9 advertises other addresses")
        );
        assert!(event.is_mail_worthy());
    }
}
