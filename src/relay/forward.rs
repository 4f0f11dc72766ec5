//! The data path: bytes both ways between a client and its server, with
//! half-close and an idle timeout.
//!
//! Each direction runs on its own: EOF on one side becomes `shutdown(Write)`
//! on the other, and the connection ends when both directions are done.
//!
//! Like HAProxy's `splice-auto`, the path adapts to the traffic. Small
//! messages (queries, replies) are copied through a per-thread buffer with
//! one recv and one send: cheaper than splice's pipe round trip, and a short
//! read, which proves the socket drained, also clears its readiness without
//! a further recv that would only fail with EAGAIN. A read that fills the
//! buffer marks a bulk transfer, which then goes socket -> pipe -> socket
//! with splice(2) and never enters userspace, until a splice moves less
//! than a buffer's worth again.
//!
//! An idle connection holds no buffer and no pipe: the pipe of a direction
//! is made at its first bulk transfer and kept, and bytes the destination
//! cannot take at once wait in a buffer that is freed once they are sent.
//! Nothing takes a lock.

use std::cell::RefCell;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, splice};
use nix::sys::socket::{MsgFlags, recv, send};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Bytes moved per splice(2) call, and the capacity asked for each pipe
/// (four times the default): fewer calls and wakeups per byte in bulk
/// transfers.
const SPLICE_CHUNK: usize = 256 * 1024;
/// Bytes read per recv(2) on the copy path; a read this long marks a bulk
/// transfer, a splice shorter than this ends it.
const COPY_CHUNK: usize = 16 * 1024;

thread_local! {
    /// The copy path's buffer, one per worker thread: bytes only pass
    /// through it within one synchronous recv/send step.
    static COPY_BUFFER: RefCell<Box<[u8; COPY_CHUNK]>> =
        RefCell::new(Box::new([0; COPY_CHUNK]));
}

/// How bytes are moved between the two sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataPath {
    /// splice(2) through a pipe per direction for bulk transfers, copying
    /// for small messages; copying only when the kernel refuses (no pipe
    /// available, splice unsupported).
    #[default]
    Splice,
    /// Userspace copy only.
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
        self.count(bytes);
        activity.touch();
    }

    /// Counts `bytes` moved.
    pub(crate) fn count(&self, bytes: usize) {
        let bytes = bytes as u64;
        self.relay.fetch_add(bytes, Ordering::Relaxed);
        self.server.fetch_add(bytes, Ordering::Relaxed);
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
    /// Whether some direction could not splice (disabled or refused by the
    /// kernel) and copied everything.
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
/// `copied` when this direction cannot splice.
async fn one_way(
    source: &TcpStream,
    destination: &TcpStream,
    path: DataPath,
    meter: &Meter<'_>,
    activity: &Activity,
    copied: &AtomicBool,
) -> io::Result<()> {
    let mut splicing = Splicing::new(path);
    if splicing == Splicing::Refused {
        copied.store(true, Ordering::Relaxed);
    }
    let mut pipe = None;
    let mut unsent = Vec::new();
    loop {
        source.readable().await?;
        if splicing == Splicing::Bulk {
            match splice_step(source, destination, &mut pipe).await {
                Ok(0) => break,
                Ok(moved) => {
                    meter.add(moved, activity);
                    if moved < COPY_CHUNK {
                        splicing = Splicing::Small;
                    }
                }
                Err(SpliceError::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(SpliceError::Io(error)) => return Err(error),
                Err(SpliceError::Unavailable) => {
                    copied.store(true, Ordering::Relaxed);
                    splicing = Splicing::Refused;
                    pipe = None;
                }
            }
            continue;
        }
        let read = match copy_step(source, destination, &mut unsent) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            Err(error) => return Err(error),
        };
        if !unsent.is_empty() {
            write_all(destination, &unsent).await?;
            // Free it: the buffer exists only while a destination is full.
            unsent = Vec::new();
        }
        meter.add(read, activity);
        if read == COPY_CHUNK && splicing == Splicing::Small {
            splicing = Splicing::Bulk;
        }
    }
    shutdown_write(destination)
}

/// Whether a direction splices, and whether it is in a bulk transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Splicing {
    /// Copying small messages; a full read switches to `Bulk`.
    Small,
    /// Splicing a bulk transfer; a short splice switches back to `Small`.
    Bulk,
    /// Copying everything: splice disabled, or refused by the kernel.
    Refused,
}

impl Splicing {
    fn new(path: DataPath) -> Self {
        match path {
            DataPath::Splice => Splicing::Small,
            DataPath::Copy => Splicing::Refused,
        }
    }
}

/// One recv(2) into `buffer`: the bytes read, 0 at EOF, or WouldBlock when
/// there was nothing to read.
///
/// A short read empties the socket's receive queue, so the socket's read
/// readiness is cleared right away (through a WouldBlock returned to
/// tokio's `try_io`) instead of by a further recv that would only fail with
/// EAGAIN; bytes that arrive later raise a new readiness event, which
/// tokio's readiness tick keeps from being lost.
pub(crate) fn recv_draining(source: &TcpStream, buffer: &mut [u8]) -> io::Result<usize> {
    let capacity = buffer.len();
    let mut read = 0;
    let received = source.try_io(Interest::READABLE, || {
        read = recv(source.as_raw_fd(), buffer, MsgFlags::empty())?;
        if read > 0 && read < capacity {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(())
    });
    match received {
        Ok(()) => Ok(read),
        Err(error) if error.kind() == io::ErrorKind::WouldBlock && read > 0 => Ok(read),
        Err(error) => Err(error),
    }
}

/// One copy step: a recv of at most [`COPY_CHUNK`] bytes from `source` (see
/// [`recv_draining`]) and a send of them to `destination`, appending to
/// `unsent` what it did not take. Returns the bytes read, 0 at EOF, or
/// WouldBlock when there was nothing to read.
fn copy_step(
    source: &TcpStream,
    destination: &TcpStream,
    unsent: &mut Vec<u8>,
) -> io::Result<usize> {
    COPY_BUFFER.with_borrow_mut(|buffer| {
        let read = recv_draining(source, &mut buffer[..])?;
        let mut sent = 0;
        while sent < read {
            let step = destination.try_io(Interest::WRITABLE, || {
                Ok(send(
                    destination.as_raw_fd(),
                    &buffer[sent..read],
                    MsgFlags::MSG_NOSIGNAL,
                )?)
            });
            match step {
                Ok(written) => sent += written,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => return Err(error),
            }
        }
        unsent.extend_from_slice(&buffer[sent..read]);
        Ok(read)
    })
}

enum SpliceError {
    /// splice cannot be used on this direction; nothing was moved.
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

/// One splice step: what `source` holds (at most [`SPLICE_CHUNK`] bytes)
/// into the direction's pipe, made and enlarged on first use, and all of it
/// out to `destination`. Returns the bytes moved, 0 at EOF, or WouldBlock
/// when there was nothing to read; Unavailable when the kernel refuses the
/// first splice (or the pipe), so that the caller copies instead.
async fn splice_step(
    source: &TcpStream,
    destination: &TcpStream,
    pipe: &mut Option<Pipe>,
) -> Result<usize, SpliceError> {
    let first_use = pipe.is_none();
    let pipe = match pipe {
        Some(pipe) => pipe,
        None => {
            let (read, write) =
                nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).map_err(|errno| {
                    tracing::debug!(%errno, "no pipe for splice; copying instead");
                    SpliceError::Unavailable
                })?;
            // Refused beyond fs.pipe-max-size, or once an unprivileged user
            // has spent fs.pipe-user-pages-soft: the default capacity then
            // serves, with shorter splices.
            if let Err(errno) = fcntl(&write, FcntlArg::F_SETPIPE_SZ(SPLICE_CHUNK as i32)) {
                tracing::debug!(%errno, "pipe not enlarged; splicing with its default size");
            }
            pipe.insert(Pipe { read, write })
        }
    };
    // Never SPLICE_F_MORE: it delays small request/response packets.
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    // The pipe is empty here, so WouldBlock means the socket has no data.
    let filled = source
        .try_io(Interest::READABLE, || {
            Ok(splice(
                source,
                None,
                &pipe.write,
                None,
                SPLICE_CHUNK,
                flags,
            )?)
        })
        .map_err(|error| {
            if first_use && splice_unsupported(&error) {
                tracing::debug!(%error, "splice unsupported; copying instead");
                SpliceError::Unavailable
            } else {
                SpliceError::Io(error)
            }
        })?;
    let mut in_pipe = filled;
    while in_pipe > 0 {
        match destination.try_io(Interest::WRITABLE, || {
            Ok(splice(&pipe.read, None, destination, None, in_pipe, flags)?)
        }) {
            Ok(sent) => in_pipe -= sent,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                destination.writable().await?;
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(filled)
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

fn splice_unsupported(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error().map(Errno::from_raw),
        Some(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP)
    )
}
