//! The client side of the control socket, for the command line: blocking,
//! no runtime needed.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::{Request, Response};

/// Time allowed for the daemon's answer (a reload may restart relays).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket: the daemon is not running.
    #[error("hafront is not running (nothing answers on {path}: {source})")]
    NotRunning {
        /// The socket path tried.
        path: String,
        /// What connecting said.
        source: io::Error,
    },
    /// The connection failed mid-way or the answer was not understood.
    #[error("control socket {path}: {detail}")]
    Exchange {
        /// The socket path.
        path: String,
        /// What went wrong.
        detail: String,
    },
}

/// Sends `request` to the daemon listening on `socket` and returns its
/// answer.
pub fn request(socket: &Path, request: &Request) -> Result<Response, ClientError> {
    let path = socket.display().to_string();
    let exchange = |detail: String| ClientError::Exchange {
        path: path.clone(),
        detail,
    };
    let stream = match UnixStream::connect(socket) {
        Ok(stream) => stream,
        Err(source) => {
            return Err(match source.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                    ClientError::NotRunning { path, source }
                }
                _ => exchange(format!("cannot connect: {source}")),
            });
        }
    };
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(ANSWER_TIMEOUT)))
        .map_err(|error| exchange(format!("cannot set timeouts: {error}")))?;
    let mut line = serde_json::to_vec(request)
        .map_err(|error| exchange(format!("cannot encode the request: {error}")))?;
    line.push(b'\n');
    // A refused peer gets its answer before the daemon reads anything, so a
    // failed send may still leave an answer to read.
    let sent = (&stream).write_all(&line);
    let mut answer = String::new();
    let read = BufReader::new(&stream).read_line(&mut answer);
    if answer.is_empty() {
        return Err(exchange(match (sent, read) {
            (Err(error), _) => format!("cannot send the request: {error}"),
            (_, Err(error)) => format!("no answer: {error}"),
            _ => "the daemon closed the connection without answering".to_owned(),
        }));
    }
    serde_json::from_str(&answer).map_err(|error| exchange(format!("malformed answer: {error}")))
}
