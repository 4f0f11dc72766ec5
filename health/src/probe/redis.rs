//! Redis check: AUTH (password or ACL user), PING, and optionally ROLE.

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
pub(super) async fn probe(
    check: &RedisCheck,
    address: SocketAddr,
    timeout: Duration,
) -> Result<Pass, String> {
    let mut settings = RedisConnectionInfo::default().set_skip_set_lib_name();
    if let Some(username) = &check.username {
        settings = settings.set_username(username);
    }
    if let Some(secret) = &check.password {
        settings = settings.set_password(reveal(secret).await?);
    }
    let info = ConnectionAddr::Tcp(address.ip().to_string(), address.port())
        .into_connection_info()
        .map_err(|error| format!("connection settings: {error}"))?
        .set_redis_settings(settings);
    let client = redis::Client::open(info).map_err(|error| format!("client: {error}"))?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|error| format!("connect: {error}"))?;
    let pong: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(|error| format!("PING: {error}"))?;
    if pong != "PONG" {
        return Err(format!("PING answered {pong:?}"));
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

/// `ROLE`: master is a primary, slave (replica) is a replica.
async fn read_role(conn: &mut MultiplexedConnection) -> Result<Role, String> {
    let reply: Value = redis::cmd("ROLE")
        .query_async(conn)
        .await
        .map_err(|error| format!("ROLE: {error}"))?;
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
        "" => Err(format!("ROLE: unexpected reply {reply:?}")),
        other => Err(format!("ROLE: {other} is not a data server")),
    }
}
