//! Gratuitous ARP (IPv4, over an AF_PACKET socket) and unsolicited neighbour advertisements
//! (IPv6, over an ICMPv6 socket) that move clients' caches to this node.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV6};

use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, Socket, Type};

/// EtherType of ARP.
const ETHERTYPE_ARP: u16 = 0x0806;
/// All-nodes multicast group, where unsolicited neighbour advertisements go.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const BROADCAST_MAC: [u8; 6] = [0xff; 6];

/// Sends announcements for the VIPs of one interface.
pub(crate) struct Announcer {
    packet: Socket,
    broadcast: SockAddr,
    icmpv6: Option<Socket>,
    mac: [u8; 6],
}

impl Announcer {
    /// Opens the sockets for interface `index` with hardware address `mac`; the ICMPv6
    /// socket only when `link_local` (the IPv6 source) is given.
    pub(crate) fn open(
        index: u32,
        mac: [u8; 6],
        link_local: Option<Ipv6Addr>,
    ) -> io::Result<Announcer> {
        // Protocol 0: this socket only sends, it never queues received frames.
        let packet = Socket::new(Domain::PACKET, Type::RAW, None)?;
        let mut storage = SockAddrStorage::zeroed();
        // SAFETY: sockaddr_ll is a sockaddr type of this platform and fits the storage.
        let link = unsafe { storage.view_as::<libc::sockaddr_ll>() };
        link.sll_family = libc::AF_PACKET as u16;
        link.sll_protocol = ETHERTYPE_ARP.to_be();
        link.sll_ifindex =
            i32::try_from(index).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        link.sll_halen = 6;
        link.sll_addr[..6].copy_from_slice(&BROADCAST_MAC);
        let length = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: the storage holds an initialised sockaddr_ll of `length` bytes.
        let broadcast = unsafe { SockAddr::new(storage, length) };
        let icmpv6 = match link_local {
            None => None,
            Some(source) => {
                let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
                socket.set_multicast_hops_v6(255)?;
                socket.set_multicast_if_v6(index)?;
                socket.set_multicast_loop_v6(false)?;
                socket.bind(&SockAddr::from(SocketAddrV6::new(source, 0, 0, index)))?;
                Some(socket)
            }
        };
        Ok(Announcer {
            packet,
            broadcast,
            icmpv6,
            mac,
        })
    }

    /// Announces `address` once.
    pub(crate) fn announce(&self, address: IpAddr) -> io::Result<()> {
        match address {
            IpAddr::V4(v4) => self
                .packet
                .send_to(&gratuitous_arp(self.mac, v4), &self.broadcast)?,
            IpAddr::V6(v6) => {
                let socket = self
                    .icmpv6
                    .as_ref()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no IPv6 source"))?;
                // The kernel fills in the ICMPv6 checksum.
                let destination = SockAddr::from(SocketAddrV6::new(ALL_NODES, 0, 0, 0));
                socket.send_to(&unsolicited_neighbour_advert(self.mac, v6), &destination)?
            }
        };
        Ok(())
    }
}

/// A broadcast ARP request for `address` from `address` (RFC 5227 announcement form, as
/// keepalived sends it).
fn gratuitous_arp(mac: [u8; 6], address: Ipv4Addr) -> Vec<u8> {
    let mut frame = Vec::with_capacity(42);
    frame.extend_from_slice(&BROADCAST_MAC);
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    frame.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]); // Ethernet, IPv4, request
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&address.octets());
    frame.extend_from_slice(&BROADCAST_MAC);
    frame.extend_from_slice(&address.octets());
    frame
}

/// An ICMPv6 neighbour advertisement for `target` with the override flag and the target
/// link-layer address option (RFC 4861 section 7.2.6); checksum left to the kernel.
fn unsolicited_neighbour_advert(mac: [u8; 6], target: Ipv6Addr) -> Vec<u8> {
    let mut message = Vec::with_capacity(32);
    message.extend_from_slice(&[136, 0, 0, 0]); // type, code, checksum
    message.extend_from_slice(&[0x20, 0, 0, 0]); // O flag
    message.extend_from_slice(&target.octets());
    message.extend_from_slice(&[2, 1]); // target link-layer address, 8 bytes
    message.extend_from_slice(&mac);
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gratuitous_arp_layout() {
        let mac = [2, 0, 0, 0, 0, 1];
        let frame = gratuitous_arp(mac, Ipv4Addr::new(10, 213, 0, 100));
        assert_eq!(frame.len(), 42);
        assert_eq!(&frame[12..14], &[0x08, 0x06]);
        assert_eq!(&frame[20..22], &[0, 1], "request");
        assert_eq!(&frame[22..28], &mac, "sender hardware address");
        assert_eq!(
            &frame[28..32],
            &[10, 213, 0, 100],
            "sender protocol address"
        );
        assert_eq!(
            &frame[38..42],
            &[10, 213, 0, 100],
            "target protocol address"
        );
    }

    #[test]
    fn neighbour_advert_layout() {
        let message =
            unsolicited_neighbour_advert([2, 0, 0, 0, 0, 1], "2001:db8::1".parse().unwrap());
        assert_eq!(message.len(), 32);
        assert_eq!(message[0], 136);
        assert_eq!(message[4], 0x20, "override, not solicited");
        assert_eq!(&message[24..26], &[2, 1]);
    }
}
