//! MySQL/MariaDB check: a real handshake with credentials, COM_PING, and
//! optionally the server's role and its replication threads.

use std::net::SocketAddr;
use std::time::Duration;

use hafront_config::{MysqlCheck, Role};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row};

use super::{Pass, reveal};

/// Server error code for a statement the server cannot parse (older servers
/// answer `SHOW REPLICA STATUS` with it).
const ER_PARSE_ERROR: u16 = 1064;

/// A MySQL client error in words: its cause once (the driver nests "Input/output error"
/// wrappers), with what to check when nothing listens or the login is refused.
pub fn mysql_error(error: &mysql_async::Error) -> String {
    let mut text = error.to_string();
    while let Some(cause) = text.strip_prefix("Input/output error: ") {
        text = cause.to_owned();
    }
    let lower = text.to_lowercase();
    let hint = if lower.contains("connection refused") {
        "; nothing listens there: is the server running, and is the address right?"
    } else if lower.contains("access denied") {
        "; check the user, its password and the hosts it may connect from"
    } else {
        ""
    };
    format!("{text}{hint}")
}

/// Logs in over TCP, pings, and inspects role and replication as configured.
/// One connection per probe, closed with COM_QUIT.
pub(super) async fn probe(check: &MysqlCheck, address: SocketAddr) -> Result<Pass, String> {
    let password = match &check.password {
        Some(secret) => Some(reveal(secret).await?),
        None => None,
    };
    let opts = OptsBuilder::default()
        .ip_or_hostname(address.ip().to_string())
        .tcp_port(address.port())
        .user(Some(check.user.as_str()))
        .pass(password)
        .prefer_socket(false)
        .stmt_cache_size(0);
    let mut conn = Conn::new(opts)
        .await
        .map_err(|error| format!("connect: {}", mysql_error(&error)))?;
    let verdict = inspect(&mut conn, check).await;
    // COM_QUIT, so the server does not log an aborted connection. A failure
    // here does not change what the probe learned.
    if let Err(error) = conn.disconnect().await {
        tracing::debug!(%address, %error, "closing MySQL health-check connection");
    }
    verdict
}

async fn inspect(conn: &mut Conn, check: &MysqlCheck) -> Result<Pass, String> {
    conn.ping()
        .await
        .map_err(|error| format!("ping: {error}"))?;
    let mut summary = String::from("ping ok");
    let role = if check.role {
        let role = read_role(conn).await?;
        summary.push_str(match role {
            Role::Primary => ", writable (primary)",
            Role::Replica => ", read-only (replica)",
        });
        Some(role)
    } else {
        None
    };
    // Replication requirements apply to replicas: a server known to be a
    // writable primary has no replication threads to judge.
    let replication = check
        .replication
        .as_ref()
        .filter(|_| role != Some(Role::Primary));
    if let Some(replication) = replication {
        let lag = check_replication(conn, replication.max_lag).await?;
        summary.push_str(&format!(", replication running, lag {lag}s"));
    }
    Ok(Pass { role, summary })
}

/// Primary when writable, replica when `read_only` (or MySQL's
/// `super_read_only`, which MariaDB lacks) is on.
async fn read_role(conn: &mut Conn) -> Result<Role, String> {
    let variables: Vec<(String, String)> = conn
        .query("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('read_only', 'super_read_only')")
        .await
        .map_err(|error| format!("read role: {error}"))?;
    if !variables.iter().any(|(name, _)| name == "read_only") {
        return Err("read role: server did not report read_only".to_owned());
    }
    let read_only = variables
        .iter()
        .any(|(_, value)| value.eq_ignore_ascii_case("ON") || value == "1");
    Ok(if read_only {
        Role::Replica
    } else {
        Role::Primary
    })
}

/// Passes when both replication threads run and the lag is known and at most
/// `max_lag`; returns the lag in seconds.
async fn check_replication(conn: &mut Conn, max_lag: Duration) -> Result<u64, String> {
    let rows: Vec<Row> = match conn.query("SHOW REPLICA STATUS").await {
        Err(mysql_async::Error::Server(error)) if error.code == ER_PARSE_ERROR => {
            conn.query("SHOW SLAVE STATUS").await
        }
        other => other,
    }
    .map_err(|error| format!("replication status: {error}"))?;
    let row = rows
        .into_iter()
        .next()
        .ok_or_else(|| "replication is not configured on this server".to_owned())?;
    let status = ReplicaStatus::from_row(&row);
    for (thread, running, error) in [
        ("IO", &status.io_running, &status.last_io_error),
        ("SQL", &status.sql_running, &status.last_sql_error),
    ] {
        if running.as_deref() != Some("Yes") {
            let state = running.as_deref().unwrap_or("unknown");
            let mut reason = format!("replication {thread} thread not running ({state})");
            if let Some(error) = error.as_deref().filter(|error| !error.is_empty()) {
                reason.push_str(": ");
                reason.push_str(error);
            }
            return Err(reason);
        }
    }
    let lag = status
        .seconds_behind
        .ok_or_else(|| "replication lag unknown (Seconds_Behind_Master is NULL)".to_owned())?;
    if Duration::from_secs(lag) > max_lag {
        return Err(format!(
            "replication lag {lag}s exceeds {}s",
            max_lag.as_secs()
        ));
    }
    Ok(lag)
}

/// The columns of `SHOW REPLICA STATUS` a health check needs, under either
/// naming (MySQL 8.0.22+ says "Replica"/"Source", MariaDB and older MySQL
/// say "Slave"/"Master").
struct ReplicaStatus {
    io_running: Option<String>,
    sql_running: Option<String>,
    seconds_behind: Option<u64>,
    last_io_error: Option<String>,
    last_sql_error: Option<String>,
}

impl ReplicaStatus {
    fn from_row(row: &Row) -> Self {
        let index = |names: &[&str]| {
            row.columns_ref()
                .iter()
                .position(|column| names.contains(&column.name_str().as_ref()))
        };
        let text = |names: &[&str]| {
            index(names).and_then(|at| row.get_opt::<Option<String>, _>(at)?.ok().flatten())
        };
        ReplicaStatus {
            io_running: text(&["Replica_IO_Running", "Slave_IO_Running"]),
            sql_running: text(&["Replica_SQL_Running", "Slave_SQL_Running"]),
            seconds_behind: index(&["Seconds_Behind_Source", "Seconds_Behind_Master"])
                .and_then(|at| row.get_opt::<Option<u64>, _>(at)?.ok().flatten()),
            last_io_error: text(&["Last_IO_Error"]),
            last_sql_error: text(&["Last_SQL_Error"]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_is_said_once_with_what_to_check() {
        let refused = std::io::Error::from_raw_os_error(nix::libc::ECONNREFUSED);
        let error = mysql_async::Error::Io(mysql_async::IoError::Io(refused));
        let text = mysql_error(&error);
        assert!(!text.contains("Input/output error"), "{text}");
        assert!(
            text.ends_with("is the server running, and is the address right?"),
            "{text}"
        );
    }
}
