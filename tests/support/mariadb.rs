//! Real MariaDB servers: a fresh data directory per server, TCP on
//! 127.0.0.1, a Unix socket in the temp dir for the harness's root access.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};
use tempfile::TempDir;

use super::{ServerProcess, free_port, wait_for};

/// The user health checks log in as (password [`CHECK_PASSWORD`]); it may
/// read replication status.
pub const CHECK_USER: &str = "hafront_check";
/// Password of [`CHECK_USER`].
pub const CHECK_PASSWORD: &str = "check-secret";
/// The user replicas connect as.
pub const REPLICATION_USER: &str = "repl";
/// Password of [`REPLICATION_USER`].
pub const REPLICATION_PASSWORD: &str = "repl-secret";

const MARIADBD: &str = "/usr/sbin/mariadbd";
const INSTALL_DB: &str = "/usr/bin/mariadb-install-db";
const START_TIMEOUT: Duration = Duration::from_secs(30);
const PORT_ATTEMPTS: u32 = 5;
/// The Unix socket's name in the server's temp dir (root access for the harness).
const SOCKET: &str = "mariadbd.sock";

/// How to start a MariaDB server.
#[derive(Debug, Clone, Copy)]
pub struct MariaDbOptions {
    /// `server_id`, unique within a replication topology.
    pub server_id: u32,
    /// Write a binary log (needed on a replication primary).
    pub log_bin: bool,
}

impl Default for MariaDbOptions {
    fn default() -> Self {
        MariaDbOptions {
            server_id: 1,
            log_bin: false,
        }
    }
}

/// A MariaDB server owned by a test; killed by PID on drop.
#[derive(Debug)]
pub struct MariaDb {
    process: Option<ServerProcess>,
    port: u16,
    options: MariaDbOptions,
    // Declared last: the directory goes after the process is dead.
    dir: TempDir,
}

impl MariaDb {
    /// A standalone server with [`CHECK_USER`] and [`REPLICATION_USER`].
    pub async fn start() -> MariaDb {
        MariaDb::start_with(MariaDbOptions::default()).await
    }

    /// A server started with `options`, ready for queries.
    pub async fn start_with(options: MariaDbOptions) -> MariaDb {
        let dir = tempfile::Builder::new()
            .prefix("hafront-mariadb-")
            .tempdir_in(fast_temp_root())
            .expect("create MariaDB temp dir");
        write_option_file(dir.path());
        install(dir.path()).await;
        let mut server = MariaDb {
            process: None,
            port: 0,
            options,
            dir,
        };
        server.launch_on_free_port().await;
        server
            .execute_all(&[
                "SET sql_log_bin = 0",
                &format!("CREATE USER '{CHECK_USER}'@'%' IDENTIFIED BY '{CHECK_PASSWORD}'"),
                &format!("GRANT SLAVE MONITOR ON *.* TO '{CHECK_USER}'@'%'"),
                &format!(
                    "CREATE USER '{REPLICATION_USER}'@'%' IDENTIFIED BY '{REPLICATION_PASSWORD}'"
                ),
                &format!("GRANT REPLICATION SLAVE ON *.* TO '{REPLICATION_USER}'@'%'"),
            ])
            .await;
        server
    }

    /// The TCP address clients and health checks use.
    pub fn address(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The running server process (panics after [`MariaDb::kill`]).
    pub fn process(&self) -> &ServerProcess {
        self.process.as_ref().expect("MariaDB is running")
    }

    /// Root over the Unix socket (bypasses TCP, so it works whatever the
    /// test does to TCP users).
    pub fn root_opts(&self) -> Opts {
        OptsBuilder::default()
            .socket(Some(self.socket_path().to_string_lossy()))
            .user(Some("root"))
            .into()
    }

    /// A root connection.
    pub async fn root(&self) -> Conn {
        Conn::new(self.root_opts())
            .await
            .unwrap_or_else(|error| panic!("root connection to MariaDB: {error}"))
    }

    /// Runs statements as root, in order, on one connection.
    pub async fn execute_all(&self, statements: &[&str]) {
        let mut conn = self.root().await;
        for statement in statements {
            conn.query_drop(*statement)
                .await
                .unwrap_or_else(|error| panic!("{statement}: {error}"));
        }
        conn.disconnect().await.expect("close root connection");
    }

    /// Runs one statement as root.
    pub async fn execute(&self, statement: &str) {
        self.execute_all(&[statement]).await;
    }

    /// Kills the server (SIGKILL), as a crashed machine would vanish.
    pub fn kill(&mut self) {
        self.process = None;
    }

    /// Starts the server again on the same port and data directory.
    pub async fn restart(&mut self) {
        assert!(
            self.process.is_none(),
            "kill the server before restarting it"
        );
        self.launch()
            .await
            .unwrap_or_else(|log| panic!("MariaDB did not restart on port {}:\n{log}", self.port));
    }

    async fn launch_on_free_port(&mut self) {
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            self.port = free_port();
            match self.launch().await {
                Ok(()) => return,
                Err(log) => last_log = log,
            }
        }
        panic!("MariaDB did not start:\n{last_log}");
    }

    /// Starts mariadbd and waits until root can ping it; on failure returns
    /// the error log.
    async fn launch(&mut self) -> Result<(), String> {
        let dir = self.dir.path();
        let mut command = Command::new(MARIADBD);
        command
            .arg(format!("--defaults-file={}", option_file(dir).display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--server-id={}", self.options.server_id));
        if self.options.log_bin {
            command
                .arg(format!("--log-bin={}", dir.join("binlog").display()))
                .arg("--binlog-format=ROW");
        } else {
            command.arg("--skip-log-bin");
        }
        let mut process = ServerProcess::spawn("mariadbd", command);
        let opts = self.root_opts();
        let mut ready = false;
        for _ in 0..(START_TIMEOUT.as_millis() / 20) {
            if process.has_exited() {
                break;
            }
            if let Ok(conn) = Conn::new(opts.clone()).await {
                conn.disconnect().await.ok();
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if ready {
            self.process = Some(process);
            Ok(())
        } else {
            drop(process);
            Err(std::fs::read_to_string(self.error_log()).unwrap_or_default())
        }
    }

    fn socket_path(&self) -> PathBuf {
        self.dir.path().join(SOCKET)
    }

    /// The server's error log (aborted connections are logged here).
    pub fn error_log(&self) -> PathBuf {
        self.dir.path().join("error.log")
    }
}

/// Where data directories go: tmpfs when there is one, because bootstrapping
/// system tables issues hundreds of fsyncs that take seconds on a busy disk
/// and nothing on tmpfs.
fn fast_temp_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let writable = tempfile::tempdir_in(shm).is_ok();
    if writable {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

fn option_file(dir: &Path) -> PathBuf {
    dir.join("my.cnf")
}

/// Settings shared by mariadb-install-db and every start of the server:
/// everything in the temp dir, small buffers, no durability (the data is
/// thrown away), aborted connections logged.
fn write_option_file(dir: &Path) {
    let options = format!(
        "[mysqld]
datadir = {data}
tmpdir = {dir}
socket = {socket}
pid-file = {dir}/mariadbd.pid
log-error = {dir}/error.log
user = root
bind-address = 127.0.0.1
skip-name-resolve
skip-slave-start
log-warnings = 2
max-connections = 100
performance-schema = OFF
innodb-buffer-pool-size = 8M
innodb-log-file-size = 4M
innodb-temp-data-file-path = ibtmp1:1M:autoextend
innodb-flush-log-at-trx-commit = 0
innodb-doublewrite = 0
",
        data = dir.join("data").display(),
        dir = dir.display(),
        socket = dir.join(SOCKET).display(),
    );
    std::fs::write(option_file(dir), options).expect("write my.cnf");
}

/// Creates the system tables with the server's own option file (without
/// blocking the runtime: other servers may be starting or probed meanwhile).
async fn install(dir: &Path) {
    let output = tokio::process::Command::new(INSTALL_DB)
        .arg(format!("--defaults-file={}", option_file(dir).display()))
        .args([
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ])
        .kill_on_drop(true)
        .output()
        .await
        .expect("run mariadb-install-db");
    assert!(
        output.status.success(),
        "mariadb-install-db failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A primary (binary log on) and a read-only replica replicating from it,
/// returned once both replication threads run.
pub async fn replication_pair() -> (MariaDb, MariaDb) {
    let (primary, replica) = tokio::join!(
        MariaDb::start_with(MariaDbOptions {
            server_id: 1,
            log_bin: true,
        }),
        MariaDb::start_with(MariaDbOptions {
            server_id: 2,
            log_bin: false,
        }),
    );
    let source = primary.address();
    replica
        .execute_all(&[
            &format!(
                "CHANGE MASTER TO MASTER_HOST = '{}', MASTER_PORT = {}, \
                 MASTER_USER = '{REPLICATION_USER}', MASTER_PASSWORD = '{REPLICATION_PASSWORD}', \
                 MASTER_CONNECT_RETRY = 1",
                source.ip(),
                source.port()
            ),
            "SET GLOBAL read_only = ON",
            "START SLAVE",
        ])
        .await;
    wait_for(
        "replication threads to run",
        Duration::from_secs(20),
        || replica.replication_running(),
    )
    .await;
    (primary, replica)
}

impl MariaDb {
    /// Whether both replication threads report "Yes".
    pub async fn replication_running(&self) -> bool {
        let mut conn = self.root().await;
        let row: Option<mysql_async::Row> = conn
            .query_first("SHOW SLAVE STATUS")
            .await
            .expect("SHOW SLAVE STATUS");
        conn.disconnect().await.expect("close root connection");
        let Some(row) = row else { return false };
        let column = |name: &str| row.get::<Option<String>, &str>(name).flatten();
        column("Slave_IO_Running").as_deref() == Some("Yes")
            && column("Slave_SQL_Running").as_deref() == Some("Yes")
    }
}
