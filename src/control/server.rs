//! The daemon side of the control socket.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::{ControlRequest, Request, Response};

/// Longest request line accepted.
const MAX_REQUEST_BYTES: u64 = 64 * 1024;
/// Time a client has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a client has to take the response.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Clients served at once; more are closed unanswered.
const MAX_CLIENTS: usize = 16;

/// A listening control socket. Dropping it stops serving and removes the
/// socket file (if it is still the one this server created).
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    inode: (u64, u64),
    task: JoinHandle<()>,
}

impl ControlServer {
    /// Creates the socket at `path` (mode 0600, parent directory created if
    /// missing) and passes each request to `requests`. A stale socket file
    /// is replaced; one another process still answers on is an error. Must
    /// be called within a Tokio runtime.
    pub fn bind(path: &Path, requests: mpsc::Sender<ControlRequest>) -> io::Result<ControlServer> {
        let context = |error: io::Error, what: &str| {
            io::Error::new(
                error.kind(),
                format!("control socket {}: {what}: {error}", path.display()),
            )
        };
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| context(e, "cannot create its directory"))?;
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "control socket {}: another hafront answers there",
                    path.display()
                ),
            ));
        }
        match std::fs::remove_file(path) {
            Ok(()) => debug!(path = %path.display(), "removed a stale control socket"),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(context(error, "cannot remove the stale socket")),
        }
        let listener = UnixListener::bind(path).map_err(|e| context(e, "cannot listen"))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| context(e, "cannot restrict its permissions"))?;
        let metadata = std::fs::metadata(path).map_err(|e| context(e, "cannot stat it"))?;
        let task = tokio::spawn(accept_loop(listener, requests));
        Ok(ControlServer {
            path: path.to_owned(),
            inode: (metadata.dev(), metadata.ino()),
            task,
        })
    }

    /// Where the socket is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.task.abort();
        let ours = std::fs::metadata(&self.path)
            .is_ok_and(|metadata| (metadata.dev(), metadata.ino()) == self.inode);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

async fn accept_loop(listener: UnixListener, requests: mpsc::Sender<ControlRequest>) {
    accept_bounded(
        "control socket",
        MAX_CLIENTS,
        || listener.accept(),
        move |(stream, _)| serve(stream, requests.clone()),
    )
    .await;
}

/// Accepts connections with `accept` for ever and serves each in its own
/// task with `serve`, at most `max_clients` at once: over the limit a
/// connection is closed unanswered. A failed accept is logged as `{what}
/// accept failed` and retried after 50 ms.
pub(crate) async fn accept_bounded<C, A, AF, S, SF>(
    what: &str,
    max_clients: usize,
    mut accept: A,
    serve: S,
) where
    A: FnMut() -> AF,
    AF: Future<Output = io::Result<C>>,
    S: Fn(C) -> SF,
    SF: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max_clients));
    loop {
        match accept().await {
            Ok(connection) => {
                // Over the limit the connection is closed unanswered.
                if let Ok(slot) = Arc::clone(&slots).try_acquire_owned() {
                    let serving = serve(connection);
                    tokio::spawn(async move {
                        serving.await;
                        drop(slot);
                    });
                }
            }
            Err(error) => {
                warn!("{what} accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves one connection: one request line, one response line.
async fn serve(mut stream: UnixStream, requests: mpsc::Sender<ControlRequest>) {
    let response = match peer_allowed(&stream) {
        Ok(()) => match read_request(&mut stream).await {
            Ok(request) => ask(request, &requests).await,
            Err(message) => Response::Error { message },
        },
        Err(message) => {
            warn!("control socket: {message}");
            Response::Error { message }
        }
    };
    let mut line = match serde_json::to_vec(&response) {
        Ok(line) => line,
        Err(error) => {
            warn!("control socket: cannot encode the response: {error}");
            return;
        }
    };
    line.push(b'\n');
    let written = tokio::time::timeout(RESPONSE_TIMEOUT, stream.write_all(&line)).await;
    if !matches!(written, Ok(Ok(()))) {
        debug!("control client left before taking its response");
    }
}

/// Root and the daemon's own user only.
fn peer_allowed(stream: &UnixStream) -> Result<(), String> {
    let peer = stream
        .peer_cred()
        .map_err(|error| format!("cannot read the peer's credentials: {error}"))?;
    let own = nix::unistd::geteuid().as_raw();
    if peer.uid() == 0 || peer.uid() == own {
        Ok(())
    } else {
        Err(format!(
            "permission denied: uid {} (pid {}) may not use the control socket",
            peer.uid(),
            peer.pid()
                .map_or_else(|| "?".to_owned(), |pid| pid.to_string())
        ))
    }
}

async fn read_request(stream: &mut UnixStream) -> Result<Request, String> {
    let mut line = String::new();
    let mut reader = BufReader::new(stream).take(MAX_REQUEST_BYTES);
    match tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await {
        Err(_) => return Err("no request within 5 s".to_owned()),
        Ok(Err(error)) => return Err(format!("cannot read the request: {error}")),
        Ok(Ok(_)) if !line.ends_with('\n') => {
            return Err("the request must be one line of JSON".to_owned());
        }
        Ok(Ok(_)) => {}
    }
    serde_json::from_str(&line).map_err(|error| format!("malformed request: {error}"))
}

/// Passes `request` to the daemon's main loop and waits for its answer.
pub(crate) async fn ask(request: Request, requests: &mpsc::Sender<ControlRequest>) -> Response {
    let (reply, answer) = oneshot::channel();
    if requests
        .send(ControlRequest { request, reply })
        .await
        .is_err()
    {
        return Response::Error {
            message: "the daemon is stopping".to_owned(),
        };
    }
    answer.await.unwrap_or_else(|_| Response::Error {
        message: "the daemon is stopping".to_owned(),
    })
}
