//! Redis check: connect, AUTH (password or ACL user), PING, and optionally
//! ROLE. A failure's reason is one line naming the step that failed.

use std::fmt::Display;
use std::net::SocketAddr;
use std::time::Duration;

use hafront_config::{RedisCheck, Role};
use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, Value,
};

use super::{Pass, reveal};

/// Connects directly (no reconnecting manager: its retries would hide an
/// outage), authenticates, pings, and asks for the role if configured.
/// AUTH is sent by hand rather than by the client's connection setup, so
/// that a refused password is reported as `auth:`, not `connect:`.
pub(super) async fn probe(
    check: &RedisCheck,
    address: SocketAddr,
    timeout: Duration,
) -> Result<Pass, String> {
    let settings = RedisConnectionInfo::default().set_skip_set_lib_name();
    let info = ConnectionAddr::Tcp(address.ip().to_string(), address.port())
        .into_connection_info()
        .map_err(|error| failed("connect", error))?
        .set_redis_settings(settings);
    let client = redis::Client::open(info).map_err(|error| failed("connect", error))?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|error| failed("connect", error))?;
    if let Some(secret) = &check.password {
        let mut auth = redis::cmd("AUTH");
        if let Some(username) = &check.username {
            auth.arg(username);
        }
        auth.arg(reveal(secret).await?);
        let () = auth
            .query_async(&mut conn)
            .await
            .map_err(|error| failed("auth", error))?;
    }
    let pong: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(|error| failed("ping", error))?;
    if pong != "PONG" {
        return Err(failed("ping", format_args!("answered {pong:?}")));
    }
    if !check.role {
        return Ok(Pass::new("PONG"));
    }
    let role = read_role(&mut conn).await?;
    Ok(Pass {
        role: Some(role),
        summary: match role {
            Role::Primary => "PONG, role master".to_owned(),
            Role::Replica => "PONG, role slave".to_owned(),
        },
    })
}

/// The reason for a failed `step`: `STEP: ERROR` on one line (a server's
/// error text may span several, which would break the status table).
fn failed(step: &str, error: impl Display) -> String {
    let error = error.to_string();
    let words: Vec<&str> = error.split_whitespace().collect();
    format!("{step}: {}", words.join(" "))
}

/// `ROLE`: master is a primary, slave (replica) is a replica.
async fn read_role(conn: &mut MultiplexedConnection) -> Result<Role, String> {
    let reply: Value = redis::cmd("ROLE")
        .query_async(conn)
        .await
        .map_err(|error| failed("role", error))?;
    let kind = match &reply {
        Value::Array(items) => match items.first() {
            Some(Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            Some(Value::SimpleString(text)) => text.clone(),
            _ => String::new(),
        },
        _ => String::new(),
    };
    match kind.as_str() {
        "master" => Ok(Role::Primary),
        "slave" | "replica" => Ok(Role::Replica),
        "" => Err(failed("role", format_args!("unexpected reply {reply:?}"))),
        other => Err(failed("role", format_args!("{other} is not a data server"))),
    }
}
