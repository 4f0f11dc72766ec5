//! Raw IP protocol 112 sockets bound to one interface.
//!
//! Two sockets per instance: the receive socket is not bound to an address (a raw socket
//! bound to one only sees packets sent to it, not to the multicast group), the send socket
//! is bound to the primary address so adverts carry it as source. Both are bound to the
//! interface; TTL / hop limit 255 is set on sends and checked on receipt (IPv4 raw sockets
//! deliver the IP header, which carries the TTL; IPv6 ones need IPV6_RECVHOPLIMIT and
//! IPV6_RECVPKTINFO control messages for the hop limit and destination).

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn6, recvmsg, setsockopt, sockopt};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;

use crate::wire::{self, DropReason, MULTICAST_V4, MULTICAST_V6};

/// Largest datagram read: an IPv4 header plus the largest v3 IPv6 advert fits easily.
const RECEIVE_BUFFER_LEN: usize = 8192;

/// A received VRRP message with what the IP layer said about it.
pub(crate) struct Datagram<'a> {
    pub(crate) src: IpAddr,
    pub(crate) dst: IpAddr,
    pub(crate) hop_limit: u8,
    pub(crate) payload: &'a [u8],
}

/// The advert sockets of one instance.
pub(crate) struct AdvertSockets {
    receive: AsyncFd<Socket>,
    send: AsyncFd<Socket>,
    source: IpAddr,
    destinations: Vec<SocketAddr>,
    buffer: Vec<u8>,
}

impl AdvertSockets {
    /// Opens the sockets on `interface` (index `index`), sending from `source` to the
    /// multicast group, or to `unicast_peers` when there are any.
    pub(crate) fn open(
        interface: &str,
        index: u32,
        source: IpAddr,
        unicast_peers: &[IpAddr],
    ) -> io::Result<AdvertSockets> {
        let protocol = Protocol::from(i32::from(wire::IP_PROTOCOL));
        let domain = if source.is_ipv4() {
            Domain::IPV4
        } else {
            Domain::IPV6
        };
        let receive = Socket::new(domain, Type::RAW, Some(protocol))?;
        let send = Socket::new(domain, Type::RAW, Some(protocol))?;
        for socket in [&receive, &send] {
            socket.bind_device(Some(interface.as_bytes()))?;
            socket.set_nonblocking(true)?;
        }
        let scope_id = if source.is_ipv6() { index } else { 0 };
        match source {
            IpAddr::V4(source) => {
                receive.set_multicast_all_v4(false)?;
                receive
                    .join_multicast_v4_n(&MULTICAST_V4, &InterfaceIndexOrAddress::Index(index))?;
                send.set_ttl_v4(u32::from(wire::REQUIRED_HOP_LIMIT))?;
                send.set_multicast_ttl_v4(u32::from(wire::REQUIRED_HOP_LIMIT))?;
                send.set_multicast_loop_v4(false)?;
                send.set_multicast_if_v4(&source)?;
                send.bind(&SockAddr::from(SocketAddr::from((source, 0))))?;
            }
            IpAddr::V6(source) => {
                receive.set_multicast_all_v6(false)?;
                receive.join_multicast_v6(&MULTICAST_V6, index)?;
                setsockopt(&receive, sockopt::Ipv6RecvHopLimit, &true)?;
                setsockopt(&receive, sockopt::Ipv6RecvPacketInfo, &true)?;
                send.set_unicast_hops_v6(u32::from(wire::REQUIRED_HOP_LIMIT))?;
                send.set_multicast_hops_v6(u32::from(wire::REQUIRED_HOP_LIMIT))?;
                send.set_multicast_loop_v6(false)?;
                send.set_multicast_if_v6(index)?;
                send.bind(&SockAddr::from(SocketAddrV6::new(source, 0, 0, scope_id)))?;
            }
        }
        let group = match source {
            IpAddr::V4(_) => IpAddr::V4(MULTICAST_V4),
            IpAddr::V6(_) => IpAddr::V6(MULTICAST_V6),
        };
        let destinations = if unicast_peers.is_empty() {
            vec![group]
        } else {
            unicast_peers.to_vec()
        };
        let destinations = destinations
            .into_iter()
            .map(|address| match address {
                IpAddr::V4(v4) => SocketAddr::from((v4, 0)),
                IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, 0, 0, scope_id)),
            })
            .collect();
        Ok(AdvertSockets {
            receive: register(receive)?,
            send: register(send)?,
            source,
            destinations,
            buffer: vec![0; RECEIVE_BUFFER_LEN],
        })
    }

    /// The addresses adverts go to, for building each message's checksum.
    pub(crate) fn destinations(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.destinations.iter().map(SocketAddr::ip)
    }

    /// The source address of adverts.
    pub(crate) fn source(&self) -> IpAddr {
        self.source
    }

    /// Sends `message` to `destination`.
    pub(crate) async fn send(&self, destination: IpAddr, message: &[u8]) -> io::Result<()> {
        let address = self
            .destinations
            .iter()
            .find(|address| address.ip() == destination)
            .copied()
            .unwrap_or(SocketAddr::new(destination, 0));
        let address = SockAddr::from(address);
        loop {
            let mut guard = self.send.writable().await?;
            match guard.try_io(|socket| socket.get_ref().send_to(message, &address)) {
                Ok(result) => return result.map(drop),
                Err(_would_block) => continue,
            }
        }
    }

    /// Waits for the next datagram. `Ok(Err(_))` is a datagram whose IP header is malformed.
    pub(crate) async fn receive(&mut self) -> io::Result<Result<Datagram<'_>, DropReason>> {
        let ipv4 = self.source.is_ipv4();
        let (length, meta) = loop {
            let mut guard = self.receive.readable().await?;
            let buffer = &mut self.buffer;
            let result = guard.try_io(|socket| {
                let fd = socket.get_ref().as_raw_fd();
                if ipv4 {
                    nix::sys::socket::recv(fd, buffer, MsgFlags::empty())
                        .map(|length| (length, None))
                        .map_err(io::Error::from)
                } else {
                    receive_v6(fd, buffer).map(|(length, meta)| (length, Some(meta)))
                }
            });
            match result {
                Ok(result) => break result?,
                Err(_would_block) => continue,
            }
        };
        let bytes = &self.buffer[..length];
        Ok(match meta {
            None => parse_ipv4(bytes),
            Some(meta) => meta.map(|(src, dst, hop_limit)| Datagram {
                src: IpAddr::V6(src),
                dst: IpAddr::V6(dst),
                hop_limit,
                payload: bytes,
            }),
        })
    }
}

/// Registers `socket` with the tokio reactor.
fn register(socket: Socket) -> io::Result<AsyncFd<Socket>> {
    // SAFETY: a `Socket` owns its descriptor, which stays open and unchanged until the
    // `AsyncFd` drops the `Socket`.
    Ok(unsafe { AsyncFd::register(socket) }?)
}

/// Source, destination and hop limit of an IPv6 datagram, from its control messages.
type Ipv6Meta = Result<(Ipv6Addr, Ipv6Addr, u8), DropReason>;

fn receive_v6(fd: i32, buffer: &mut [u8]) -> io::Result<(usize, Ipv6Meta)> {
    let mut control = nix::cmsg_space!(libc::c_int, libc::in6_pktinfo);
    let mut iov = [IoSliceMut::new(buffer)];
    let message = recvmsg::<SockaddrIn6>(fd, &mut iov, Some(&mut control), MsgFlags::empty())?;
    let mut hop_limit = None;
    let mut destination = None;
    for cmsg in message.cmsgs()? {
        match cmsg {
            ControlMessageOwned::Ipv6HopLimit(limit) => hop_limit = u8::try_from(limit).ok(),
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                destination = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
            }
            _ => {}
        }
    }
    let meta = match (message.address, hop_limit, destination) {
        _ if message.flags.contains(MsgFlags::MSG_TRUNC) => Err(DropReason::Length),
        (Some(source), Some(hop_limit), Some(destination)) => {
            Ok((source.ip(), destination, hop_limit))
        }
        _ => Err(DropReason::Truncated),
    };
    Ok((message.bytes, meta))
}

/// Splits a raw IPv4 datagram (header included, as raw sockets deliver it).
fn parse_ipv4(bytes: &[u8]) -> Result<Datagram<'_>, DropReason> {
    let header_len = usize::from(bytes.first().ok_or(DropReason::Truncated)? & 0x0f) * 4;
    if bytes.len() < 20 || header_len < 20 || bytes.len() < header_len {
        return Err(DropReason::Truncated);
    }
    let total_len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
    if total_len < header_len || total_len > bytes.len() {
        return Err(DropReason::Length);
    }
    let address = |at: usize| {
        IpAddr::V4(Ipv4Addr::new(
            bytes[at],
            bytes[at + 1],
            bytes[at + 2],
            bytes[at + 3],
        ))
    };
    Ok(Datagram {
        src: address(12),
        dst: address(16),
        hop_limit: bytes[8],
        payload: &bytes[header_len..total_len],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Advert, Auth, Centiseconds, ChecksumForm, Version};

    /// Sends an advert to ourselves over loopback (unicast, so no multicast leaves the
    /// host) and checks what the receive path reports.
    fn round_trip(source: IpAddr, virtual_address: IpAddr) {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: raw sockets need root");
            return;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let index = nix::net::if_::if_nametoindex("lo").unwrap();
            let mut sockets = AdvertSockets::open("lo", index, source, &[source]).unwrap();
            let advert = Advert {
                version: Version::V3,
                vrid: 213,
                priority: 100,
                interval: Centiseconds(100),
                auth: Auth::None,
                addresses: vec![virtual_address],
            };
            let message = advert
                .emit(source, source, ChecksumForm::PseudoHeader)
                .unwrap();
            sockets.send(source, &message).await.unwrap();
            let deadline = std::time::Duration::from_secs(2);
            // Other raw protocol-112 traffic on loopback is possible: look for ours.
            let found = tokio::time::timeout(deadline, async {
                loop {
                    let datagram = sockets.receive().await.unwrap().unwrap();
                    if datagram.payload == message.as_slice() {
                        return (datagram.src, datagram.dst, datagram.hop_limit);
                    }
                }
            })
            .await
            .expect("own advert received over loopback");
            assert_eq!(found, (source, source, wire::REQUIRED_HOP_LIMIT));
        });
    }

    #[test]
    fn ipv4_loopback_round_trip_reports_addresses_and_ttl() {
        round_trip("127.0.0.1".parse().unwrap(), "127.0.0.100".parse().unwrap());
    }

    #[test]
    fn ipv6_loopback_round_trip_reports_addresses_and_hop_limit() {
        round_trip("::1".parse().unwrap(), "::1".parse().unwrap());
    }

    #[test]
    fn malformed_ipv4_headers_are_refused() {
        assert_eq!(parse_ipv4(&[]).err(), Some(DropReason::Truncated));
        let mut header = [0u8; 24];
        header[0] = 0x46; // IHL 6: a 24-byte header
        header[2..4].copy_from_slice(&40u16.to_be_bytes());
        assert_eq!(parse_ipv4(&header).err(), Some(DropReason::Length));
        header[2..4].copy_from_slice(&24u16.to_be_bytes());
        header[8] = 64;
        let datagram = parse_ipv4(&header).unwrap();
        assert_eq!((datagram.hop_limit, datagram.payload.len()), (64, 0));
    }
}
