//! Real Redis servers on 127.0.0.1 with their own temp dir and no persistence.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use tempfile::TempDir;

use super::{ServerProcess, free_port};

const REDIS_SERVER: &str = "/usr/bin/redis-server";
const START_TIMEOUT: Duration = Duration::from_secs(10);
const PORT_ATTEMPTS: u32 = 5;

/// How to start a Redis server.
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// `requirepass`: the default user's password.
    pub password: Option<String>,
    /// An extra ACL user allowed only PING and ROLE: (name, password).
    pub acl_user: Option<(String, String)>,
    /// Replicate from this master (authenticating with `password`).
    pub replica_of: Option<SocketAddr>,
}

/// A Redis server owned by a test; killed by PID on drop.
#[derive(Debug)]
pub struct Redis {
    process: Option<ServerProcess>,
    port: u16,
    options: RedisOptions,
    // Declared last: the directory goes after the process is dead.
    dir: TempDir,
}

impl Redis {
    /// A master without authentication.
    pub async fn start() -> Redis {
        Redis::start_with(RedisOptions::default()).await
    }

    /// A server started with `options`, answering PING.
    pub async fn start_with(options: RedisOptions) -> Redis {
        let dir = tempfile::Builder::new()
            .prefix("hafront-redis-")
            .tempdir()
            .expect("create Redis temp dir");
        let mut server = Redis {
            process: None,
            port: 0,
            options,
            dir,
        };
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port();
            match server.launch().await {
                Ok(()) => return server,
                Err(log) => last_log = log,
            }
        }
        panic!("redis-server did not start:\n{last_log}");
    }

    /// The TCP address.
    pub fn address(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The running server process (panics after [`Redis::kill`]).
    pub fn process(&self) -> &ServerProcess {
        self.process.as_ref().expect("Redis is running")
    }

    /// A connection as the default user.
    pub async fn connection(&self) -> redis::RedisResult<MultiplexedConnection> {
        let mut settings = RedisConnectionInfo::default().set_skip_set_lib_name();
        if let Some(password) = &self.options.password {
            settings = settings.set_password(password);
        }
        let info = ConnectionAddr::Tcp(Ipv4Addr::LOCALHOST.to_string(), self.port)
            .into_connection_info()?
            .set_redis_settings(settings);
        redis::Client::open(info)?
            .get_multiplexed_async_connection()
            .await
    }

    /// Kills the server (SIGKILL).
    pub fn kill(&mut self) {
        self.process = None;
    }

    /// Starts the server again on the same port.
    pub async fn restart(&mut self) {
        assert!(
            self.process.is_none(),
            "kill the server before restarting it"
        );
        self.launch().await.unwrap_or_else(|log| {
            panic!("redis-server did not restart on port {}:\n{log}", self.port)
        });
    }

    async fn launch(&mut self) -> Result<(), String> {
        let mut command = Command::new(REDIS_SERVER);
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"]);
        if let Some(password) = &self.options.password {
            command.args(["--requirepass", password, "--masterauth", password]);
        }
        if let Some((name, password)) = &self.options.acl_user {
            command.args([
                "--user",
                name,
                "on",
                &format!(">{password}"),
                "+ping",
                "+role",
            ]);
        }
        if let Some(master) = self.options.replica_of {
            command.args([
                "--replicaof",
                &master.ip().to_string(),
                &master.port().to_string(),
            ]);
        }
        let mut process = ServerProcess::spawn("redis-server", command);
        for _ in 0..(START_TIMEOUT.as_millis() / 20) {
            if process.has_exited() {
                break;
            }
            if self.ping().await {
                self.process = Some(process);
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(process);
        Err(std::fs::read_to_string(self.log_path()).unwrap_or_default())
    }

    async fn ping(&self) -> bool {
        let Ok(mut conn) = self.connection().await else {
            return false;
        };
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .is_ok()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }
}
