//! The spiped data path: plaintext on one socket, 1060-byte packets on the
//! other, each direction on its own with half-close.
//!
//! Each direction reads up to [`BATCH_PACKETS`] packets' worth at once,
//! seals or opens every whole packet in place, and writes the result with
//! one call, so a bulk transfer costs two syscalls per 64 KiB and no
//! allocation after the two buffers of the connection.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::sys::socket::{MsgFlags, recv};
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::packet::{MAX_MESSAGE, PACKET_LEN};
use super::{Opener, Sealer, Session};
use crate::relay::forward::{Activity, Ending, Meter, shutdown_write, write_all};

/// Packets handled per read and write.
const BATCH_PACKETS: usize = 64;

/// Relays between `plain` and the spiped connection `sealed` (established
/// with `session`) until both directions end, either fails, or nothing
/// moves for `idle_timeout`. Meters count plaintext bytes.
pub(crate) async fn forward(
    plain: &TcpStream,
    sealed: &TcpStream,
    session: Session,
    idle_timeout: Duration,
    plain_to_sealed: Meter<'_>,
    sealed_to_plain: Meter<'_>,
) -> io::Result<Ending> {
    let Session { sealer, opener } = session;
    let activity = Activity::new();
    let both_ways = async {
        tokio::try_join!(
            seal_one_way(plain, sealed, sealer, &plain_to_sealed, &activity),
            open_one_way(sealed, plain, opener, &sealed_to_plain, &activity),
        )
    };
    tokio::select! {
        result = both_ways => result.map(|_| Ending::Finished),
        () = activity.idle_for(idle_timeout) => Ok(Ending::Idle),
    }
}

/// Reads as much as is available from `source` into `buffer`; 0 at EOF.
///
/// A read shorter than `buffer` proves the socket drained, so it also
/// clears the socket's readiness: the next call waits for new data instead
/// of spending a recv(2) that would only fail with EAGAIN (one syscall less
/// per request on request/response traffic). Tokio clears readiness only if
/// no new event arrived since it was observed, so no wakeup is lost.
async fn read_some(source: &TcpStream, buffer: &mut [u8]) -> io::Result<usize> {
    loop {
        source.readable().await?;
        let mut filled = 0;
        let read = source.try_io(Interest::READABLE, || {
            filled = recv(source.as_raw_fd(), buffer, MsgFlags::empty())?;
            if filled > 0 && filled < buffer.len() {
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(filled)
            }
        });
        match read {
            Ok(filled) => return Ok(filled),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock && filled > 0 => {
                return Ok(filled);
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            Err(error) => return Err(error),
        }
    }
}

/// Plaintext from `source` to packets on `destination`, then half-close.
async fn seal_one_way(
    source: &TcpStream,
    destination: &TcpStream,
    mut sealer: Sealer,
    meter: &Meter<'_>,
    activity: &Activity,
) -> io::Result<()> {
    let mut input = vec![0u8; BATCH_PACKETS * MAX_MESSAGE];
    let mut output = vec![0u8; BATCH_PACKETS * PACKET_LEN];
    loop {
        let filled = read_some(source, &mut input).await?;
        if filled == 0 {
            break;
        }
        let messages = input[..filled].chunks(MAX_MESSAGE);
        let packets = output.chunks_exact_mut(PACKET_LEN);
        let mut sealed_len = 0;
        for (message, packet) in messages.zip(packets) {
            sealer.seal(message, packet.try_into().expect("packet length"));
            sealed_len += PACKET_LEN;
        }
        write_all(destination, &output[..sealed_len]).await?;
        meter.add(filled, activity);
    }
    shutdown_write(destination)
}

/// Packets from `source` to plaintext on `destination`, then half-close.
/// A partial packet at EOF is discarded, as spiped does.
async fn open_one_way(
    source: &TcpStream,
    destination: &TcpStream,
    mut opener: Opener,
    meter: &Meter<'_>,
    activity: &Activity,
) -> io::Result<()> {
    let mut buffer = vec![0u8; BATCH_PACKETS * PACKET_LEN];
    // Bytes of an incomplete packet kept at the start of `buffer`.
    let mut pending = 0;
    loop {
        let filled = read_some(source, &mut buffer[pending..]).await?;
        if filled == 0 {
            break;
        }
        let available = pending + filled;
        let whole = available / PACKET_LEN * PACKET_LEN;
        // Messages are compacted to the front; a message never overtakes
        // the packet it came from, so this is safe in place.
        let mut plain_len = 0;
        for start in (0..whole).step_by(PACKET_LEN) {
            let packet: &mut [u8; PACKET_LEN] = (&mut buffer[start..start + PACKET_LEN])
                .try_into()
                .expect("packet length");
            let message_len = opener
                .open(packet)
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?
                .len();
            buffer.copy_within(start..start + message_len, plain_len);
            plain_len += message_len;
        }
        if plain_len > 0 {
            write_all(destination, &buffer[..plain_len]).await?;
            meter.add(plain_len, activity);
        }
        buffer.copy_within(whole..available, 0);
        pending = available - whole;
    }
    shutdown_write(destination)
}
