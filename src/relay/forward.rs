//! The data path: bytes both ways between a client and its server, with
//! half-close and an idle timeout.
//!
//! Each direction runs on its own: EOF on one side becomes `shutdown(Write)`
//! on the other, and the connection ends when both directions are done. On
//! Linux the bytes go socket -> pipe -> socket with splice(2) and never enter
//! userspace; when splice is unavailable (or disabled) a fixed buffer per
//! direction is used. Both paths allocate once per connection, never per
//! packet, and take no locks.

use std::io;
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{OFlag, SpliceFFlags, splice};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Bytes moved per splice(2) call: the default pipe capacity.
const SPLICE_CHUNK: usize = 64 * 1024;
/// Size of each direction's buffer on the copy path.
const COPY_BUFFER: usize = 16 * 1024;

/// How bytes are moved between the two sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataPath {
    /// splice(2) through a pipe per direction, falling back to copying when
    /// the kernel refuses (no pipe available, splice unsupported).
    #[default]
    Splice,
    /// Userspace copy through a fixed buffer per direction.
    Copy,
}

/// Where one direction reports the bytes it moved.
pub(crate) struct Meter<'a> {
    /// Per-relay byte counter of this direction.
    pub relay: &'a AtomicU64,
    /// Per-server byte counter of this direction.
    pub server: &'a AtomicU64,
}

impl Meter<'_> {
    /// Counts `bytes` moved and marks the connection active.
    pub(crate) fn add(&self, bytes: usize, activity: &Activity) {
        let bytes = bytes as u64;
        self.relay.fetch_add(bytes, Ordering::Relaxed);
        self.server.fetch_add(bytes, Ordering::Relaxed);
        activity.touch();
    }
}

/// How a forwarded connection ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Both sides finished sending.
    Finished,
    /// No byte moved either way for the idle timeout.
    Idle,
}

/// The result of forwarding: how it ended and which path carried it.
pub(crate) struct Forwarded {
    pub ending: io::Result<Ending>,
    /// Whether some direction had to use the copy path.
    pub copied: bool,
}

/// Time of the last byte moved in either direction, shared by both
/// directions and the idle watchdog without locks.
pub(crate) struct Activity {
    start: Instant,
    last_millis: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_millis: AtomicU64::new(0),
        }
    }

    pub(crate) fn touch(&self) {
        let elapsed = self.start.elapsed().as_millis();
        self.last_millis.store(
            u64::try_from(elapsed).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Resolves once `idle` has passed with no activity.
    pub(crate) async fn idle_for(&self, idle: Duration) {
        loop {
            let last = Duration::from_millis(self.last_millis.load(Ordering::Relaxed));
            let deadline = self.start + last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// Forwards between `client` and `server` until both directions are done,
/// an error occurs, or nothing moves for `idle_timeout`.
pub(crate) async fn forward(
    client: &TcpStream,
    server: &TcpStream,
    path: DataPath,
    idle_timeout: Duration,
    upstream: Meter<'_>,
    downstream: Meter<'_>,
) -> Forwarded {
    let activity = Activity::new();
    let copied = AtomicBool::new(false);
    let both_ways = async {
        tokio::try_join!(
            one_way(client, server, path, &upstream, &activity, &copied),
            one_way(server, client, path, &downstream, &activity, &copied),
        )
    };
    let ending = tokio::select! {
        result = both_ways => result.map(|_| Ending::Finished),
        () = activity.idle_for(idle_timeout) => Ok(Ending::Idle),
    };
    Forwarded {
        ending,
        copied: copied.into_inner(),
    }
}

/// Moves one direction to its end and half-closes the destination; sets
/// `copied` when the copy path carries it.
async fn one_way(
    source: &TcpStream,
    destination: &TcpStream,
    path: DataPath,
    meter: &Meter<'_>,
    activity: &Activity,
    copied: &AtomicBool,
) -> io::Result<()> {
    let splice_result = match path {
        DataPath::Splice => splice_one_way(source, destination, meter, activity).await,
        DataPath::Copy => Err(SpliceError::Unavailable),
    };
    match splice_result {
        Ok(()) => {}
        Err(SpliceError::Io(error)) => return Err(error),
        Err(SpliceError::Unavailable) => {
            copied.store(true, Ordering::Relaxed);
            copy_one_way(source, destination, meter, activity).await?;
        }
    }
    shutdown_write(destination)
}

/// Half-closes `stream` after its last byte: the peer reads EOF.
pub(crate) fn shutdown_write(stream: &TcpStream) -> io::Result<()> {
    match socket2::SockRef::from(stream).shutdown(Shutdown::Write) {
        // The peer may have closed already; the direction is done either way.
        Err(error) if error.kind() != io::ErrorKind::NotConnected => Err(error),
        _ => Ok(()),
    }
}

/// Writes all of `bytes` to a non-blocking `stream`.
pub(crate) async fn write_all(stream: &TcpStream, bytes: &[u8]) -> io::Result<()> {
    let mut sent = 0;
    while sent < bytes.len() {
        stream.writable().await?;
        match stream.try_write(&bytes[sent..]) {
            Ok(written) => sent += written,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Copies through a fixed buffer until EOF on `source`.
async fn copy_one_way(
    source: &TcpStream,
    destination: &TcpStream,
    meter: &Meter<'_>,
    activity: &Activity,
) -> io::Result<()> {
    let mut buffer = vec![0u8; COPY_BUFFER];
    loop {
        source.readable().await?;
        let filled = match source.try_read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(filled) => filled,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            Err(error) => return Err(error),
        };
        write_all(destination, &buffer[..filled]).await?;
        meter.add(filled, activity);
    }
}

enum SpliceError {
    /// splice cannot be used here and no byte has moved: copy instead.
    Unavailable,
    Io(io::Error),
}

impl From<io::Error> for SpliceError {
    fn from(error: io::Error) -> Self {
        SpliceError::Io(error)
    }
}

/// A pipe used as splice's kernel buffer, closed on drop.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

/// Splices through a private pipe until EOF on `source`.
async fn splice_one_way(
    source: &TcpStream,
    destination: &TcpStream,
    meter: &Meter<'_>,
    activity: &Activity,
) -> Result<(), SpliceError> {
    let (read, write) =
        nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).map_err(|errno| {
            tracing::debug!(%errno, "no pipe for splice; copying instead");
            SpliceError::Unavailable
        })?;
    let pipe = Pipe { read, write };
    // Never SPLICE_F_MORE: it delays small request/response packets.
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    let mut moved_any = false;
    loop {
        // The pipe is empty here, so WouldBlock means the socket has no data.
        source.readable().await?;
        let filled = match source.try_io(Interest::READABLE, || {
            splice(source, None, &pipe.write, None, SPLICE_CHUNK, flags).map_err(io::Error::from)
        }) {
            Ok(0) => return Ok(()),
            Ok(filled) => filled,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            Err(error) if !moved_any && splice_unsupported(&error) => {
                tracing::debug!(%error, "splice unsupported; copying instead");
                return Err(SpliceError::Unavailable);
            }
            Err(error) => return Err(error.into()),
        };
        moved_any = true;
        let mut in_pipe = filled;
        while in_pipe > 0 {
            destination.writable().await?;
            match destination.try_io(Interest::WRITABLE, || {
                splice(&pipe.read, None, destination, None, in_pipe, flags).map_err(io::Error::from)
            }) {
                Ok(sent) => in_pipe -= sent,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Err(error) => return Err(error.into()),
            }
        }
        meter.add(filled, activity);
    }
}

fn splice_unsupported(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error().map(Errno::from_raw),
        Some(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP)
    )
}
