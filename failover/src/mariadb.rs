//! What failover reads from and does to one MariaDB server, over an administrative
//! connection: its GTID positions and replication state, stopping the receiver, waiting for
//! a position, promotion, fencing and pointing it at a primary. Every call is bounded by the
//! connection's timeout; a server that does not answer in time is treated as unreachable.

use std::net::SocketAddr;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row};

use crate::decide::Received;
use crate::gtid::GtidPosition;

/// Sessions that are the server's own or replication's, never ended by fencing.
const SERVER_SESSIONS: &str = "user NOT IN ('system user', 'event_scheduler') \
     AND command NOT IN ('Daemon', 'Binlog Dump', 'Slave_IO', 'Slave_SQL', 'Slave_worker')";

/// How long stopping replication may take: a semi-synchronous receiver first tries to end
/// its dump thread on a primary that may be gone (`rpl_semi_sync_slave_kill_conn_timeout`).
const STOP_REPLICATION_TIMEOUT: Duration = Duration::from_secs(10);

/// What the failover's user needs on MariaDB 10.11 (`GRANT ... ON *.*`): read replication
/// state and positions, stop, point and reset replication, end sessions, set `read_only`
/// and semi-synchronous waits.
pub const REQUIRED_PRIVILEGES: [&str; 8] = [
    "RELOAD",
    "PROCESS",
    "BINLOG MONITOR",
    "CONNECTION ADMIN",
    "READ_ONLY ADMIN",
    "REPLICATION MASTER ADMIN",
    "REPLICATION SLAVE ADMIN",
    "SLAVE MONITOR",
];

/// How often a replica without GTID is asked whether it applied what it received.
const APPLY_POLL: Duration = Duration::from_millis(20);

/// MariaDB's error for a replica asking for a GTID its new primary's binary log lacks.
pub const ER_GTID_NOT_IN_BINLOG: u32 = 1236;

/// How to log in as the failover's administrative user.
#[derive(Clone)]
pub struct Credentials {
    /// User name.
    pub user: String,
    /// Password, if any.
    pub password: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// An administrative session with one server.
pub struct Session {
    conn: Conn,
    timeout: Duration,
}

/// What one look at a server found.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// `@@version`.
    pub version: String,
    /// `read_only` is on.
    pub read_only: bool,
    /// `@@gtid_binlog_pos`: what this server's binary log holds.
    pub binlog_pos: GtidPosition,
    /// `@@gtid_current_pos`.
    pub current_pos: GtidPosition,
    /// `rpl_semi_sync_master_enabled`: commits wait for a replica's acknowledgement.
    pub semi_sync_primary: bool,
    /// `log_slave_updates`: replicated transactions reach its binary log, so once promoted
    /// it can serve the other replicas.
    pub log_slave_updates: bool,
    /// The default replication connection, when one is configured.
    pub replica: Option<ReplicaStatus>,
}

/// The default replication connection of a server (`SHOW ALL SLAVES STATUS`).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaStatus {
    /// `Master_Host`.
    pub master_host: String,
    /// `Master_Port`.
    pub master_port: u16,
    /// `Slave_IO_Running`: Yes, No or Connecting.
    pub io_running: String,
    /// `Slave_SQL_Running`.
    pub sql_running: String,
    /// `Gtid_IO_Pos`: received into the relay log.
    pub io_pos: GtidPosition,
    /// `Gtid_Slave_Pos`: applied.
    pub slave_pos: GtidPosition,
    /// `Slave_received_heartbeats`.
    pub heartbeats: u64,
    /// `Using_Gtid` is not `No`.
    pub uses_gtid: bool,
    /// `Master_Log_File` and `Read_Master_Log_Pos`: how far the receiver read.
    pub read_at: (String, u64),
    /// `Relay_Master_Log_File` and `Exec_Master_Log_Pos`: how far the applier got.
    pub applied_at: (String, u64),
    /// `Seconds_Behind_Master`.
    pub seconds_behind: Option<u64>,
    /// `Last_IO_Errno`.
    pub last_io_errno: u32,
    /// `Last_IO_Error`.
    pub last_io_error: String,
}

impl ReplicaStatus {
    /// What the receiver got: its GTID position, or without GTID its file coordinates.
    pub fn received(&self) -> Received {
        if self.uses_gtid && !self.io_pos.is_empty() {
            Received::Gtid(self.io_pos.clone())
        } else {
            Received::Binlog {
                file: self.read_at.0.clone(),
                position: self.read_at.1,
            }
        }
    }

    /// Whether this connection replicates from `address`.
    pub fn replicates_from(&self, address: SocketAddr) -> bool {
        self.master_port == address.port()
            && self
                .master_host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip == address.ip())
    }

    /// Whether the receiver is connected to its primary.
    pub fn receiving(&self) -> bool {
        self.io_running == "Yes"
    }

    /// Whether the receiver got anything (an event or a heartbeat) since `earlier`.
    pub fn heard_since(&self, earlier: &ReplicaStatus) -> bool {
        self.heartbeats != earlier.heartbeats || self.read_at != earlier.read_at
    }
}

impl Session {
    /// Logs in to `address` within `connect` (a dead or hung server costs no more); every
    /// statement after is bounded by `timeout`.
    pub async fn open(
        address: SocketAddr,
        credentials: &Credentials,
        connect: Duration,
        timeout: Duration,
    ) -> Result<Session, String> {
        let opts = OptsBuilder::default()
            .ip_or_hostname(address.ip().to_string())
            .tcp_port(address.port())
            .user(Some(credentials.user.as_str()))
            .pass(credentials.password.clone())
            .prefer_socket(false)
            .stmt_cache_size(0);
        let conn = tokio::time::timeout(connect, Conn::new(opts))
            .await
            .map_err(|_| format!("no answer within {}", humantime::format_duration(connect)))?
            .map_err(|error| format!("cannot log in: {}", hafront_health::mysql_error(&error)))?;
        Ok(Session { conn, timeout })
    }

    async fn bounded<T>(
        &mut self,
        what: &str,
        limit: Duration,
        run: impl AsyncFnOnce(&mut Conn) -> mysql_async::Result<T>,
    ) -> Result<T, String> {
        match tokio::time::timeout(limit, run(&mut self.conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(format!("{what}: {error}")),
            Err(_) => Err(format!(
                "{what}: no answer within {}",
                humantime::format_duration(limit)
            )),
        }
    }

    /// Runs statements that return nothing.
    pub async fn execute(&mut self, sql: &str) -> Result<(), String> {
        let limit = self.timeout;
        self.bounded(sql, limit, async |conn| conn.query_drop(sql).await)
            .await
    }

    /// Runs a statement that stops replication threads (slow with a gone primary).
    async fn stop(&mut self, sql: &str) -> Result<(), String> {
        let limit = STOP_REPLICATION_TIMEOUT.max(self.timeout);
        self.bounded(sql, limit, async |conn| conn.query_drop(sql).await)
            .await
    }

    /// Reads the server's positions, `read_only` and replication state.
    pub async fn observe(&mut self) -> Result<Observation, String> {
        let limit = self.timeout;
        type Variables = (String, i64, String, String, i64, i64);
        let (version, read_only, binlog_pos, current_pos, log_slave_updates, semi_sync): Variables =
            self.bounded("read GTID positions", limit, async |conn| {
                conn.query_first(
                    "SELECT @@version, @@global.read_only, @@global.gtid_binlog_pos, \
                     @@global.gtid_current_pos, @@global.log_slave_updates, \
                     @@global.rpl_semi_sync_master_enabled",
                )
                .await
            })
            .await?
            .ok_or("read GTID positions: no row")?;
        if !version.contains("MariaDB") {
            return Err(format!(
                "server {version} is not MariaDB: hafront's failover speaks MariaDB GTID only"
            ));
        }
        let rows: Vec<Row> = self
            .bounded("SHOW ALL SLAVES STATUS", limit, async |conn| {
                conn.query("SHOW ALL SLAVES STATUS").await
            })
            .await?;
        let replica = rows
            .iter()
            .find(|row| text(row, "Connection_name").is_empty())
            .map(replica_status)
            .transpose()?;
        Ok(Observation {
            version,
            read_only: read_only != 0,
            binlog_pos: parse_position(&binlog_pos)?,
            current_pos: parse_position(&current_pos)?,
            log_slave_updates: log_slave_updates != 0,
            semi_sync_primary: semi_sync != 0,
            replica,
        })
    }

    /// The [`REQUIRED_PRIVILEGES`] this login lacks (none with `ALL PRIVILEGES`).
    pub async fn missing_privileges(&mut self) -> Result<Vec<&'static str>, String> {
        let limit = self.timeout;
        let grants: Vec<String> = self
            .bounded("SHOW GRANTS", limit, async |conn| {
                conn.query("SHOW GRANTS").await
            })
            .await?;
        Ok(missing_from(&grants))
    }

    /// Stops receiving from the primary; the applier goes on with the relay log.
    pub async fn stop_receiver(&mut self) -> Result<(), String> {
        self.stop("STOP SLAVE IO_THREAD").await
    }

    /// Starts receiving again (after a failover that was refused).
    pub async fn start_receiver(&mut self) -> Result<(), String> {
        self.execute("START SLAVE IO_THREAD").await
    }

    /// Waits until this server applied `position`; false when `within` passed first.
    pub async fn wait_for(
        &mut self,
        position: &GtidPosition,
        within: Duration,
    ) -> Result<bool, String> {
        let sql = format!(
            "SELECT MASTER_GTID_WAIT('{position}', {:.3})",
            within.as_secs_f64()
        );
        // The server's own wait ends first; the connection limit only catches a hang.
        let limit = within + self.timeout;
        let result: Option<i64> = self
            .bounded("MASTER_GTID_WAIT", limit, async |conn| {
                conn.query_first(sql.as_str()).await
            })
            .await?;
        Ok(result == Some(0))
    }

    /// Waits until this replica applied everything it received (`received`: a GTID position
    /// waited for with `MASTER_GTID_WAIT`, or file coordinates polled until the applier
    /// reaches them); false when `within` passed first.
    pub async fn wait_applied(
        &mut self,
        received: &Received,
        within: Duration,
    ) -> Result<bool, String> {
        let (file, position) = match received {
            Received::Gtid(position) => return self.wait_for(position, within).await,
            Received::Binlog { file, position } => (file.clone(), *position),
        };
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let replica = self
                .observe()
                .await?
                .replica
                .ok_or("replication is no longer configured")?;
            if replica.applied_at >= (file.clone(), position) {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(APPLY_POLL).await;
        }
    }

    /// Forgets its primary and accepts writes; with `semi_sync`, each commit waits for a
    /// replica's acknowledgement, as on the primary it replaces.
    pub async fn promote(&mut self, semi_sync: bool) -> Result<(), String> {
        self.stop("STOP SLAVE").await?;
        self.execute("RESET SLAVE ALL").await?;
        if semi_sync {
            self.execute("SET GLOBAL rpl_semi_sync_master_enabled = ON")
                .await?;
        }
        self.execute("SET GLOBAL read_only = OFF").await
    }

    /// Ends every client session (not replication's): their uncommitted work is rolled back
    /// and never acknowledged. Returns how many were ended.
    pub async fn end_client_sessions(&mut self) -> Result<usize, String> {
        let limit = self.timeout;
        let ids: Vec<u64> = self
            .bounded("list client sessions", limit, async |conn| {
                conn.query(format!(
                    "SELECT id FROM information_schema.processlist \
                     WHERE id <> CONNECTION_ID() AND {SERVER_SESSIONS}"
                ))
                .await
            })
            .await?;
        let mut ended = 0;
        for id in ids {
            // A session that ended meanwhile is fine.
            if self.execute(&format!("KILL CONNECTION {id}")).await.is_ok() {
                ended += 1;
            }
        }
        Ok(ended)
    }

    /// Makes the server read-only, giving running writes `drain` to finish before their
    /// sessions are ended (none with a zero `drain`: they are ended first), then stops it waiting for replicas' acknowledgements (a replica
    /// that is semi-synchronous primary too would wait for ever applying its primary's
    /// transactions). Returns how many sessions were ended.
    pub async fn fence(&mut self, drain: Duration) -> Result<usize, String> {
        let ended = self.read_only(drain).await?;
        self.execute("SET GLOBAL rpl_semi_sync_master_enabled = OFF")
            .await?;
        Ok(ended)
    }

    async fn read_only(&mut self, drain: Duration) -> Result<usize, String> {
        // No grace: a former primary's open commits were never acknowledged; end them first.
        let ended_first = if drain.is_zero() {
            self.end_client_sessions().await?
        } else {
            0
        };
        let wait = drain.as_secs().max(1);
        self.execute(&format!("SET SESSION lock_wait_timeout = {wait}"))
            .await?;
        let limit = drain + self.timeout;
        let set = "SET GLOBAL read_only = ON";
        if self
            .bounded(set, limit, async |conn| conn.query_drop(set).await)
            .await
            .is_ok()
        {
            return Ok(ended_first);
        }
        // A commit waiting for a gone replica holds read_only back: end it, then again.
        let mut ended = ended_first;
        for _ in 0..3 {
            ended += self.end_client_sessions().await?;
            if self
                .bounded(set, limit, async |conn| conn.query_drop(set).await)
                .await
                .is_ok()
            {
                return Ok(ended);
            }
        }
        Err("read_only could not be set: writes kept it busy".to_owned())
    }

    /// Replicates from `primary` with GTID: `slave_pos` for a replica, `current_pos` for a
    /// former primary whose own writes are its position. Credentials are kept when `None`.
    pub async fn replicate_from(
        &mut self,
        primary: SocketAddr,
        heartbeat: Duration,
        credentials: Option<&Credentials>,
        former_primary: bool,
    ) -> Result<(), String> {
        let login = credentials
            .map(|credentials| {
                format!(
                    ", MASTER_USER = '{}', MASTER_PASSWORD = '{}'",
                    escape(&credentials.user),
                    escape(credentials.password.as_deref().unwrap_or_default())
                )
            })
            .unwrap_or_default();
        let use_gtid = if former_primary {
            "current_pos"
        } else {
            "slave_pos"
        };
        self.stop("STOP SLAVE").await?;
        let change = format!(
            "CHANGE MASTER TO MASTER_HOST = '{}', MASTER_PORT = {}{login}, \
             MASTER_USE_GTID = {use_gtid}, MASTER_CONNECT_RETRY = 1, \
             MASTER_HEARTBEAT_PERIOD = {:.3}",
            primary.ip(),
            primary.port(),
            heartbeat.as_secs_f64()
        );
        let limit = self.timeout;
        // Never echo the statement: it may hold the replication password.
        self.bounded("CHANGE MASTER TO", limit, async |conn| {
            conn.query_drop(change.as_str()).await
        })
        .await?;
        self.execute("START SLAVE").await
    }

    /// Stops replicating (a rejoin that was refused).
    pub async fn stop_replication(&mut self) -> Result<(), String> {
        self.stop("STOP SLAVE").await
    }

    /// Says goodbye (COM_QUIT) so the server logs no aborted connection.
    pub async fn close(self) {
        let _ = tokio::time::timeout(self.timeout, self.conn.disconnect()).await;
    }
}

/// The required privileges that global grants (`GRANT A, B ON *.* TO ...`) do not give.
fn missing_from(grants: &[String]) -> Vec<&'static str> {
    let granted: Vec<String> = grants
        .iter()
        .filter_map(|grant| {
            let rest = grant.strip_prefix("GRANT ")?;
            let (privileges, _) = rest.split_once(" ON *.* TO ")?;
            Some(
                privileges
                    .split(", ")
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            )
        })
        .flatten()
        .collect();
    if granted
        .iter()
        .any(|privilege| privilege == "ALL PRIVILEGES")
    {
        return Vec::new();
    }
    REQUIRED_PRIVILEGES
        .into_iter()
        .filter(|needed| !granted.iter().any(|privilege| privilege == needed))
        .collect()
}

/// Escapes a string for a single-quoted SQL literal.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\'', "\\'")
}

fn parse_position(text: &str) -> Result<GtidPosition, String> {
    text.parse().map_err(|error| format!("{error}"))
}

fn text(row: &Row, column: &str) -> String {
    row.get_opt::<Option<String>, _>(column)
        .and_then(Result::ok)
        .flatten()
        .unwrap_or_default()
}

fn number(row: &Row, column: &str) -> Option<u64> {
    text(row, column).parse().ok()
}

fn replica_status(row: &Row) -> Result<ReplicaStatus, String> {
    Ok(ReplicaStatus {
        master_host: text(row, "Master_Host"),
        master_port: number(row, "Master_Port").unwrap_or(3306) as u16,
        io_running: text(row, "Slave_IO_Running"),
        sql_running: text(row, "Slave_SQL_Running"),
        io_pos: parse_position(&text(row, "Gtid_IO_Pos"))?,
        slave_pos: parse_position(&text(row, "Gtid_Slave_Pos"))?,
        heartbeats: number(row, "Slave_received_heartbeats").unwrap_or(0),
        uses_gtid: !text(row, "Using_Gtid").eq_ignore_ascii_case("no"),
        read_at: (
            text(row, "Master_Log_File"),
            number(row, "Read_Master_Log_Pos").unwrap_or(0),
        ),
        applied_at: (
            text(row, "Relay_Master_Log_File"),
            number(row, "Exec_Master_Log_Pos").unwrap_or(0),
        ),
        seconds_behind: number(row, "Seconds_Behind_Master"),
        last_io_errno: number(row, "Last_IO_Errno").unwrap_or(0) as u32,
        last_io_error: text(row, "Last_IO_Error"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_privileges_are_read_from_global_grants() {
        let grants = |lines: &[&str]| lines.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>();
        assert!(
            missing_from(&grants(&[
                "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost`"
            ]))
            .is_empty()
        );
        let partial = grants(&[
            "GRANT RELOAD, PROCESS, SLAVE MONITOR ON *.* TO `admin`@`%` IDENTIFIED BY PASSWORD '*X'",
            "GRANT ALL PRIVILEGES ON `app`.* TO `admin`@`%`",
        ]);
        assert_eq!(
            missing_from(&partial),
            [
                "BINLOG MONITOR",
                "CONNECTION ADMIN",
                "READ_ONLY ADMIN",
                "REPLICATION MASTER ADMIN",
                "REPLICATION SLAVE ADMIN"
            ]
        );
    }
}
