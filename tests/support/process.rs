//! A child server process owned by a test: killed by PID on drop, and killed
//! by the kernel if the test process dies first.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A running server process started by the harness.
#[derive(Debug)]
pub struct ServerProcess {
    name: &'static str,
    child: Child,
}

impl ServerProcess {
    /// Spawns `command` with no stdin/stdout/stderr (servers log to files in
    /// their temp dir). The child gets SIGKILL if the thread that spawned it
    /// dies, so an aborted test run leaves no server behind.
    pub fn spawn(name: &'static str, mut command: Command) -> ServerProcess {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("spawn {name}: {error}"));
        ServerProcess { name, child }
    }

    /// The process id.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits i32"))
    }

    /// Whether the process has exited (it is reaped if so).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Freezes the process (SIGSTOP): it keeps its sockets but answers nothing.
    pub fn pause(&self) {
        self.signal(Signal::SIGSTOP);
    }

    /// Thaws a paused process (SIGCONT).
    pub fn resume(&self) {
        self.signal(Signal::SIGCONT);
    }

    fn signal(&self, signal: Signal) {
        if let Err(error) = kill(self.pid(), signal) {
            panic!("{signal} to {} ({}): {error}", self.name, self.pid());
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.has_exited() {
            return;
        }
        // A stopped process still dies of SIGKILL; SIGCONT first anyway so
        // nothing is ever left frozen.
        let _ = kill(self.pid(), Signal::SIGCONT);
        let _ = kill(self.pid(), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}
