//! The spiped data path: plaintext on one socket, 1060-byte packets on the
//! other, each direction on its own with half-close.
//!
//! Each direction reads up to [`BATCH_PACKETS`] packets' worth at once,
//! seals or opens every whole packet in place, and writes the result with
//! one call, so a bulk transfer costs two syscalls per 64 KiB. The buffers
//! come from the thread's pool once the socket is readable and go back once
//! the batch is written: an idle connection holds none (only the bytes of
//! an incomplete packet, if one is in flight).

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;

use super::packet::{MAX_MESSAGE, PACKET_LEN};
use super::{Opener, Sealer, Session};
use crate::relay::buffers::PooledBuffer;
use crate::relay::forward::{Activity, Ending, Meter, recv_draining, shutdown_write, write_all};

/// Packets handled per read and write.
const BATCH_PACKETS: usize = 64;
/// Plaintext bytes read per batch.
const PLAIN_BATCH: usize = BATCH_PACKETS * MAX_MESSAGE;
/// Packet bytes read or written per batch.
const SEALED_BATCH: usize = BATCH_PACKETS * PACKET_LEN;

/// Relays between `plain` and the spiped connection `sealed` (established
/// with `session`) until both directions end, either fails, or nothing
/// moves for `idle_timeout`. Meters count plaintext bytes. The session
/// stays boxed: its key schedules are kept once, on the heap, not in each
/// direction's future.
pub(crate) async fn forward(
    plain: &TcpStream,
    sealed: &TcpStream,
    mut session: Box<Session>,
    idle_timeout: Duration,
    plain_to_sealed: Meter<'_>,
    sealed_to_plain: Meter<'_>,
) -> io::Result<Ending> {
    let Session { sealer, opener } = &mut *session;
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

/// Reads what a readable `source` holds into `buffer` (see
/// [`recv_draining`]): the bytes read, 0 at EOF, or None when its readiness
/// was stale (nothing read: wait again).
fn read_ready(source: &TcpStream, buffer: &mut [u8]) -> io::Result<Option<usize>> {
    match recv_draining(source, buffer) {
        Ok(read) => Ok(Some(read)),
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(error) => Err(error),
    }
}

/// Plaintext from `source` to packets on `destination`, then half-close.
async fn seal_one_way(
    source: &TcpStream,
    destination: &TcpStream,
    sealer: &mut Sealer,
    meter: &Meter<'_>,
    activity: &Activity,
) -> io::Result<()> {
    loop {
        source.readable().await?;
        let mut input = PooledBuffer::take(PLAIN_BATCH);
        let filled = match read_ready(source, &mut input)? {
            Some(0) => break,
            Some(filled) => filled,
            None => continue,
        };
        let mut output = PooledBuffer::take(SEALED_BATCH);
        let messages = input[..filled].chunks(MAX_MESSAGE);
        let packets = output.chunks_exact_mut(PACKET_LEN);
        let mut sealed_len = 0;
        for (message, packet) in messages.zip(packets) {
            sealer.seal(message, packet.try_into().expect("packet length"));
            sealed_len += PACKET_LEN;
        }
        drop(input);
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
    opener: &mut Opener,
    meter: &Meter<'_>,
    activity: &Activity,
) -> io::Result<()> {
    // The bytes of an incomplete packet, kept between reads.
    let mut partial: Vec<u8> = Vec::new();
    loop {
        source.readable().await?;
        let mut buffer = PooledBuffer::take(SEALED_BATCH);
        let pending = partial.len();
        buffer[..pending].copy_from_slice(&partial);
        let filled = match read_ready(source, &mut buffer[pending..])? {
            Some(0) => break,
            Some(filled) => filled,
            None => continue,
        };
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
        // Allocates only when a packet is incomplete.
        partial = buffer[whole..available].to_vec();
        if plain_len > 0 {
            write_all(destination, &buffer[..plain_len]).await?;
            meter.add(plain_len, activity);
        }
    }
    shutdown_write(destination)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::buffers;
    use crate::relay::connected_pair;
    use std::sync::atomic::AtomicU64;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Waits until the relay has taken pooled buffers since `before` takes
    /// (a batch was handled) and given every one back.
    async fn until_no_buffer_is_held(before: &mut usize) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while buffers::counts().0 == *before || buffers::counts().1 != 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("a batch handled with pooled buffers, all given back");
        *before = buffers::counts().0;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_idle_connection_holds_no_buffer_between_batches() {
        let (mut plain_peer, plain) = connected_pair().await;
        let (mut sealed_peer, sealed) = connected_pair().await;
        let (to_peer, from_peer) = ([1u8; 32], [2u8; 32]);
        let session = Box::new(Session {
            sealer: Sealer::new(&to_peer, &to_peer),
            opener: Opener::new(&from_peer, &from_peer),
        });
        let counters: [AtomicU64; 4] = Default::default();
        let meter = |index: usize| Meter {
            relay: &counters[index],
            server: &counters[index + 1],
        };
        let forwarding = forward(
            &plain,
            &sealed,
            session,
            Duration::from_secs(60),
            meter(0),
            meter(2),
        );
        let mut taken = buffers::counts().0;
        let exchange = async {
            // Plaintext in, one packet out.
            plain_peer.write_all(b"ping").await.expect("send");
            let mut packet = [0u8; PACKET_LEN];
            sealed_peer.read_exact(&mut packet).await.expect("packet");
            let mut opener = Opener::new(&to_peer, &to_peer);
            assert_eq!(opener.open(&mut packet).expect("authentic"), b"ping");
            until_no_buffer_is_held(&mut taken).await;
            // Half a packet in: only those bytes are kept, no buffer.
            let mut sealer = Sealer::new(&from_peer, &from_peer);
            sealer.seal(b"pong", &mut packet);
            sealed_peer.write_all(&packet[..500]).await.expect("send");
            until_no_buffer_is_held(&mut taken).await;
            sealed_peer.write_all(&packet[500..]).await.expect("send");
            let mut reply = [0u8; 4];
            plain_peer.read_exact(&mut reply).await.expect("reply");
            assert_eq!(&reply, b"pong");
            until_no_buffer_is_held(&mut taken).await;
            drop((plain_peer, sealed_peer));
        };
        let (forwarded, ()) = tokio::join!(forwarding, exchange);
        forwarded.expect("forwarded to the end");
        assert_eq!(buffers::counts().1, 0);
    }
}
