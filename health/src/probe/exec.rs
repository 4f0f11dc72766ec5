//! Exec check: a program run without a shell; exit status 0 passes.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use hafront_config::ExecCheck;
use hafront_config::program::SCRIPT_PATH;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStderr, Command};

use super::Pass;
use crate::state::ServerHealth;

/// Most bytes of the program's stderr quoted in a failure reason.
const MAX_QUOTED_STDERR: usize = 512;

/// How long stderr may still be drained after the program exited (a
/// background grandchild may hold it open).
const STDERR_GRACE: Duration = Duration::from_millis(20);

/// Runs the command in its own process group with the server in its
/// environment. If the probe is dropped (its timeout expired) before the
/// program exits, the whole process group is killed.
pub(super) async fn probe(check: &ExecCheck, server: &ServerHealth) -> Result<Pass, String> {
    let (program, args) = check
        .command
        .split_first()
        .ok_or_else(|| "empty command".to_owned())?;
    let mut child = Command::new(program)
        .args(args)
        .env("PATH", SCRIPT_PATH)
        .env("HAFRONT_SERVER_ADDRESS", server.address.to_string())
        .env("HAFRONT_POOL", &server.pool)
        .env("HAFRONT_SERVER", &server.name)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| format!("spawn {program}: {error}"))?;
    let mut group = ProcessGroup::of(&child);
    let mut stderr = child.stderr.take();
    let mut quoted = Vec::new();
    let status = wait_collecting_stderr(&mut child, &mut stderr, &mut quoted)
        .await
        .map_err(|error| format!("wait for {program}: {error}"))?;
    group.reaped();
    drain_stderr(&mut stderr, &mut quoted).await;
    if status.success() {
        return Ok(Pass::new("exit status 0"));
    }
    let mut reason = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    };
    let message = String::from_utf8_lossy(&quoted);
    if let Some(first_line) = message.lines().map(str::trim).find(|line| !line.is_empty()) {
        reason.push_str(": ");
        reason.push_str(first_line);
    }
    Err(reason)
}

/// Waits for the program while reading its stderr (so a chatty program never
/// blocks on a full pipe), keeping the first bytes in `quoted`.
async fn wait_collecting_stderr(
    child: &mut Child,
    stderr: &mut Option<ChildStderr>,
    quoted: &mut Vec<u8>,
) -> std::io::Result<std::process::ExitStatus> {
    let mut chunk = [0u8; 512];
    loop {
        let Some(pipe) = stderr.as_mut() else {
            return child.wait().await;
        };
        tokio::select! {
            status = child.wait() => return status,
            read = pipe.read(&mut chunk) => match read {
                Ok(0) | Err(_) => *stderr = None,
                Ok(read) => keep(quoted, &chunk[..read]),
            },
        }
    }
}

/// Reads what the exited program left in the pipe, waiting at most
/// [`STDERR_GRACE`] per read for a straggler still holding it open.
async fn drain_stderr(stderr: &mut Option<ChildStderr>, quoted: &mut Vec<u8>) {
    let Some(pipe) = stderr.as_mut() else {
        return;
    };
    let mut chunk = [0u8; 512];
    while quoted.len() < MAX_QUOTED_STDERR {
        match tokio::time::timeout(STDERR_GRACE, pipe.read(&mut chunk)).await {
            Ok(Ok(read @ 1..)) => keep(quoted, &chunk[..read]),
            _ => break,
        }
    }
}

fn keep(quoted: &mut Vec<u8>, bytes: &[u8]) {
    let room = MAX_QUOTED_STDERR.saturating_sub(quoted.len());
    quoted.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

/// Kills the check's whole process group on drop unless the program was
/// reaped first (after reaping, its id may belong to someone else).
struct ProcessGroup(Option<Pid>);

impl ProcessGroup {
    fn of(child: &Child) -> Self {
        ProcessGroup(
            child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .map(Pid::from_raw),
        )
    }

    fn reaped(&mut self) {
        self.0 = None;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if let Some(group) = self.0 {
            // ESRCH (already gone) is the only expected error and is harmless.
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
}
