//! A `hafront run` child process owned by a test: its stderr goes to a log
//! file, and it is killed by PID on drop (printing the log if the test
//! panicked).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The `hafront` binary under test.
pub const HAFRONT: &str = env!("CARGO_BIN_EXE_hafront");

/// A `hafront run` process owned by the test, killed by PID on drop.
pub struct HafrontRun {
    child: Child,
    log: PathBuf,
}

impl HafrontRun {
    /// Runs `hafront run -c CONFIG` with stderr to `log`, `NO_COLOR=1`, no
    /// inherited `RUST_LOG` and `env` added.
    pub fn spawn(config: &Path, log: PathBuf, env: &[(&str, &str)]) -> HafrontRun {
        HafrontRun::spawn_in(Path::new("."), config, log, env)
    }

    /// [`HafrontRun::spawn`] started in `directory`, where a relative
    /// `config` is found.
    pub fn spawn_in(
        directory: &Path,
        config: &Path,
        log: PathBuf,
        env: &[(&str, &str)],
    ) -> HafrontRun {
        let stderr = fs::File::create(&log).expect("create daemon log");
        let child = Command::new(HAFRONT)
            .current_dir(directory)
            .args(["run", "-c"])
            .arg(config)
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start hafront run");
        HafrontRun { child, log }
    }

    /// The exit status if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("check on hafront")
    }

    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits"));
        kill(pid, signal).expect("signal hafront");
    }

    /// Everything the daemon has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and returns the exit code; panics with the log if the
    /// process has not exited within `timeout`.
    pub fn stop(mut self, timeout: Duration) -> Option<i32> {
        self.signal(Signal::SIGTERM);
        let polls = timeout.as_millis() / 20;
        for _ in 0..polls {
            if let Some(status) = self.child.try_wait().expect("wait for hafront") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "hafront did not stop within {} s of SIGTERM:\n{}",
            timeout.as_secs(),
            self.log()
        );
    }
}

impl Drop for HafrontRun {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- hafront log ---\n{}", self.log());
        }
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
