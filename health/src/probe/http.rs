//! HTTP/1.1 GET check: a status line in the configured range passes.

use std::net::SocketAddr;

use hafront_config::HttpCheck;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Pass;

/// Longest status line accepted.
const MAX_STATUS_LINE: usize = 4096;

/// Sends `GET path` and judges the response's status code.
pub(super) async fn probe(check: &HttpCheck, address: SocketAddr) -> Result<Pass, String> {
    let host = check.host.clone().unwrap_or_else(|| address.to_string());
    if [&check.path, &host]
        .iter()
        .any(|field| field.contains(['\r', '\n']))
    {
        return Err("path or host contains a line break".to_owned());
    }
    let mut stream = TcpStream::connect(address)
        .await
        .map_err(|error| format!("connect: {error}"))?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: hafront\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        check.path
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|error| format!("send request: {error}"))?;
    let line = read_status_line(&mut stream).await?;
    let status = parse_status_line(&line)?;
    if check.expect_status.contains(status) {
        Ok(Pass::new(format!("HTTP {status}")))
    } else {
        Err(format!(
            "HTTP status {status}, expected {}-{}",
            check.expect_status.low, check.expect_status.high
        ))
    }
}

async fn read_status_line(stream: &mut TcpStream) -> Result<String, String> {
    let mut buffer = Vec::with_capacity(256);
    loop {
        if let Some(end) = buffer.windows(2).position(|pair| pair == b"\r\n") {
            buffer.truncate(end);
            return String::from_utf8(buffer).map_err(|_| "status line is not UTF-8".to_owned());
        }
        if buffer.len() >= MAX_STATUS_LINE {
            return Err("status line too long".to_owned());
        }
        let mut chunk = [0u8; 512];
        let read = stream
            .read(&mut chunk)
            .await
            .map_err(|error| format!("read response: {error}"))?;
        if read == 0 {
            return Err("connection closed before a status line".to_owned());
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// Extracts the code from `HTTP/1.1 200 OK`.
fn parse_status_line(line: &str) -> Result<u16, String> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/") || code.len() != 3 {
        return Err(format!("malformed status line {:?}", truncate(line)));
    }
    code.parse()
        .map_err(|_| format!("malformed status line {:?}", truncate(line)))
}

fn truncate(line: &str) -> &str {
    let end = line
        .char_indices()
        .nth(80)
        .map_or(line.len(), |(index, _)| index);
    &line[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        assert_eq!(parse_status_line("HTTP/1.1 200 OK"), Ok(200));
        assert_eq!(
            parse_status_line("HTTP/1.0 503 Service Unavailable"),
            Ok(503)
        );
        assert_eq!(parse_status_line("HTTP/1.1 204"), Ok(204));
    }

    #[test]
    fn rejects_malformed_status_lines() {
        for line in [
            "",
            "SSH-2.0-OpenSSH",
            "HTTP/1.1 20 OK",
            "HTTP/1.1 abc",
            "ICY 200 OK",
        ] {
            assert!(parse_status_line(line).is_err(), "{line:?} accepted");
        }
    }
}
