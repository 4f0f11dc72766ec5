//! MariaDB servers inside lab namespaces: each with its own data directory, socket and pid
//! file under a tmpfs directory, listening on port 3306 of every address of its namespace,
//! and `read_only=1` in its options so a restarted server always comes back fenced.
//! Replication is semi-synchronous (`AFTER_SYNC`) once [`LabMariaDb::enable_semi_sync_primary`]
//! ran: a write is acknowledged only after the replica has it in its relay log.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::{NodeProcess, wait_until};

/// Where Debian installs the server.
pub const MARIADBD: &str = "/usr/sbin/mariadbd";
/// The port every lab server listens on (each namespace has its own).
pub const MYSQL_PORT: u16 = 3306;
/// The user health checks log in as.
pub const CHECK_USER: &str = "hafront_check";
/// Password of [`CHECK_USER`].
pub const CHECK_PASSWORD: &str = "check-secret";
/// The application user: no privilege beyond the `demo` schema, so `read_only` applies.
pub const APP_USER: &str = "app";
/// Password of [`APP_USER`].
pub const APP_PASSWORD: &str = "app-secret";
/// The user a rejoining server replicates as.
pub const REPLICATION_USER: &str = "repl";
/// Password of [`REPLICATION_USER`].
pub const REPLICATION_PASSWORD: &str = "repl-secret";
/// The user hafront's failover logs in as.
pub const ADMIN_USER: &str = "hafront_admin";
/// Password of [`ADMIN_USER`].
pub const ADMIN_PASSWORD: &str = "admin-secret";
/// What failover needs on MariaDB 10.11, as the README documents it.
pub const ADMIN_PRIVILEGES: &str = "RELOAD, PROCESS, BINLOG MONITOR, CONNECTION ADMIN, \
     READ_ONLY ADMIN, REPLICATION MASTER ADMIN, REPLICATION SLAVE ADMIN, SLAVE MONITOR";
/// How long a semi-synchronous primary waits for its replica before acknowledging anyway:
/// an hour, i.e. never within a failover (an unreplicated acknowledged write could be lost).
const SEMI_SYNC_TIMEOUT_MS: u64 = 3_600_000;
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A MariaDB server on one lab node; killed by PID (and its directory removed) on drop.
pub struct LabMariaDb {
    process: Option<NodeProcess>,
    namespace: String,
    dir: tempfile::TempDir,
    stopped: bool,
}

impl LabMariaDb {
    /// Creates the data directory and starts the server in `namespace`, bound to
    /// `bind_address` (`0.0.0.0` for every address, `127.0.0.1` for local clients only).
    pub fn start(namespace: &str, server_id: u32, bind_address: &str) -> LabMariaDb {
        let dir = tempfile::Builder::new()
            .prefix("hafront-lab-mariadb-")
            .tempdir_in(fast_temp_root())
            .expect("MariaDB directory");
        write_options(dir.path(), server_id, bind_address);
        let output = Command::new("/usr/bin/mariadb-install-db")
            .arg(format!(
                "--defaults-file={}",
                options_file(dir.path()).display()
            ))
            .args([
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ])
            .output()
            .expect("run mariadb-install-db");
        assert!(
            output.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut server = LabMariaDb {
            process: None,
            namespace: namespace.to_owned(),
            dir,
            stopped: false,
        };
        server.launch();
        server
    }

    /// The root Unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("mariadbd.sock")
    }

    fn launch(&mut self) {
        let options = format!(
            "--defaults-file={}",
            options_file(self.dir.path()).display()
        );
        let process = NodeProcess::spawn(
            &self.namespace,
            Path::new(MARIADBD),
            &[&options],
            self.dir.path().join("stdout.log"),
        );
        self.process = Some(process);
        assert!(
            wait_until(START_TIMEOUT, || self.try_query("SELECT 1").is_ok()),
            "MariaDB in {} did not start:\n{}",
            self.namespace,
            std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
        );
    }

    /// Runs `sql` as root over the socket; returns the tab-separated rows or the error.
    pub fn try_query(&self, sql: &str) -> Result<String, String> {
        // Column names only in vertical (`\G`) output, where they label the values.
        let names = if sql.ends_with("\\G") {
            "--column-names"
        } else {
            "--skip-column-names"
        };
        let output = Command::new("/usr/bin/mariadb")
            .arg(format!("--socket={}", self.socket().display()))
            .args([
                "--user=root",
                "--batch",
                names,
                "--connect-timeout=2",
                "-e",
                sql,
            ])
            .output()
            .map_err(|error| error.to_string())?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout)
                .trim_end()
                .to_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr)
                .trim_end()
                .to_owned())
        }
    }

    /// Runs `sql` as root, panicking on error.
    pub fn query(&self, sql: &str) -> String {
        self.try_query(sql)
            .unwrap_or_else(|error| panic!("{sql} in {}: {error}", self.namespace))
    }

    /// Whether the server accepts writes from the application (`read_only` is off).
    pub fn writable(&self) -> bool {
        self.query("SELECT @@global.read_only") == "0"
    }

    /// Creates the check, replication, failover and application users and the `demo.seq` table
    /// (all binary-logged, so a replica started from scratch gets them too).
    pub fn create_schema(&self) {
        self.query(&format!(
            "CREATE USER '{CHECK_USER}'@'%' IDENTIFIED BY '{CHECK_PASSWORD}';
             CREATE USER '{REPLICATION_USER}'@'%' IDENTIFIED BY '{REPLICATION_PASSWORD}';
             GRANT REPLICATION SLAVE ON *.* TO '{REPLICATION_USER}'@'%';
             CREATE USER '{ADMIN_USER}'@'%' IDENTIFIED BY '{ADMIN_PASSWORD}';
             GRANT {ADMIN_PRIVILEGES} ON *.* TO '{ADMIN_USER}'@'%';
             CREATE USER '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}';
             CREATE DATABASE demo;
             GRANT ALL ON demo.* TO '{APP_USER}'@'%';
             CREATE TABLE demo.seq (id BIGINT PRIMARY KEY, written TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))"
        ));
    }

    /// Replicates from `primary` (an address and port reachable from this namespace) from
    /// the start of its history, and waits until both replication threads run.
    pub fn replicate_from(&self, host: &str, port: u16) {
        self.query(&format!(
            "CHANGE MASTER TO MASTER_HOST = '{host}', MASTER_PORT = {port}, \
             MASTER_USER = '{REPLICATION_USER}', MASTER_PASSWORD = '{REPLICATION_PASSWORD}', \
             MASTER_CONNECT_RETRY = 1, MASTER_HEARTBEAT_PERIOD = 0.1, \
             MASTER_USE_GTID = slave_pos; START SLAVE"
        ));
        assert!(
            wait_until(Duration::from_secs(20), || self.replication_running()),
            "replication in {} did not start: {}",
            self.namespace,
            self.query("SHOW SLAVE STATUS\\G")
        );
    }

    /// Whether both replication threads run.
    pub fn replication_running(&self) -> bool {
        let status = self.query("SHOW SLAVE STATUS\\G");
        status.contains("Slave_IO_Running: Yes") && status.contains("Slave_SQL_Running: Yes")
    }

    /// Makes this server wait for a replica's receipt before acknowledging a commit.
    pub fn enable_semi_sync_primary(&self) {
        self.query("SET GLOBAL rpl_semi_sync_master_enabled = ON");
    }

    /// Whether a semi-synchronous replica is connected.
    pub fn semi_sync_clients(&self) -> u32 {
        let row = self.query("SHOW STATUS LIKE 'Rpl_semi_sync_master_clients'");
        row.split('\t')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Ids in `demo.seq`, ascending.
    pub fn ids(&self) -> Vec<u64> {
        self.query("SELECT id FROM demo.seq ORDER BY id")
            .lines()
            .filter_map(|line| line.parse().ok())
            .collect()
    }

    /// Kills the server (SIGKILL), as a crash.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            if self.stopped {
                process.signal(Signal::SIGCONT);
                self.stopped = false;
            }
            process.stop_with(Signal::SIGKILL, Duration::from_secs(5));
        }
    }

    /// Starts the killed server again on the same data: it comes back read-only.
    pub fn restart(&mut self) {
        assert!(
            self.process.is_none(),
            "kill the server before restarting it"
        );
        self.launch();
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn freeze(&mut self) {
        self.process
            .as_ref()
            .expect("running")
            .signal(Signal::SIGSTOP);
        self.stopped = true;
    }

    /// Lets a frozen server run again (SIGCONT).
    pub fn thaw(&mut self) {
        self.process
            .as_ref()
            .expect("running")
            .signal(Signal::SIGCONT);
        self.stopped = false;
    }
}

impl Drop for LabMariaDb {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            if self.stopped {
                process.signal(Signal::SIGCONT);
            }
            // Throwaway data: no clean shutdown needed.
            if process.running() {
                process.signal(Signal::SIGKILL);
            }
        }
    }
}

/// `$TMPDIR` when set, else tmpfs when there is one: bootstrapping the system tables
/// fsyncs a lot.
fn fast_temp_root() -> PathBuf {
    if std::env::var_os("TMPDIR").is_some() {
        return std::env::temp_dir();
    }
    let shm = Path::new("/dev/shm");
    if tempfile::tempdir_in(shm).is_ok() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

fn options_file(dir: &Path) -> PathBuf {
    dir.join("my.cnf")
}

/// One option file for install and every start: everything in `dir`, small buffers, no
/// durability (throwaway data), binary log with GTIDs (replicated transactions logged too,
/// so any replica can serve the others once promoted; strict GTID order), semi-synchronous replication ready on
/// both sides, and `read_only=1` so a server (re)starts fenced until promoted. Stopping a
/// semi-synchronous receiver normally spends seconds trying to reach the (dead) primary to
/// end its dump thread; a promotion must not wait for that.
fn write_options(dir: &Path, server_id: u32, bind_address: &str) {
    let options = format!(
        "[mysqld]
datadir = {dir}/data
tmpdir = {dir}
socket = {dir}/mariadbd.sock
pid-file = {dir}/mariadbd.pid
log-error = {dir}/error.log
user = root
port = {MYSQL_PORT}
bind-address = {bind_address}
server-id = {server_id}
log-bin = {dir}/binlog
relay-log = {dir}/relay
binlog-format = ROW
log-slave-updates = ON
gtid-strict-mode = ON
read-only = 1
skip-name-resolve
skip-slave-start
max-connections = 100
performance-schema = OFF
innodb-buffer-pool-size = 8M
innodb-log-file-size = 4M
innodb-flush-log-at-trx-commit = 0
innodb-doublewrite = 0
rpl-semi-sync-slave-enabled = ON
rpl-semi-sync-slave-kill-conn-timeout = 1
rpl-semi-sync-master-wait-point = AFTER_SYNC
rpl-semi-sync-master-timeout = {SEMI_SYNC_TIMEOUT_MS}
",
        dir = dir.display(),
    );
    std::fs::write(options_file(dir), options).expect("write my.cnf");
}
