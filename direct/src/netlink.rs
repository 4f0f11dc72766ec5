//! Blocking rtnetlink requests (no async runtime, so callers inside one are fine): interface
//! index and XDP attachments, addresses, neighbours.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkInfo, LinkMessage, LinkXdp, XdpAttached};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr as NetlinkAddress, protocols::NETLINK_ROUTE};

use crate::DirectError;

/// How long [`resolve_mac`] waits for an answer to the ARP request it provoked.
const RESOLVE_WAIT: Duration = Duration::from_secs(1);
/// How often it reads the neighbour table meanwhile.
const RESOLVE_POLL: Duration = Duration::from_millis(10);
/// The discard port: a datagram there makes the kernel resolve the address and bothers no
/// service.
const DISCARD_PORT: u16 = 9;

/// XDP_FLAGS_SKB_MODE and XDP_FLAGS_DRV_MODE (linux/if_link.h).
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const XDP_FLAGS_HW_MODE: u32 = 1 << 3;

/// The MAC address of `address` as the kernel's neighbour table on `interface` knows it (in
/// any state that has one). If it has none, sends one UDP datagram to the discard port of
/// `address` from `interface` (which makes the kernel ask by ARP) and reads again for up to
/// a second. `None`: nobody answered.
pub fn resolve_mac(interface: &str, address: Ipv4Addr) -> Result<Option<[u8; 6]>, DirectError> {
    let ifindex = interface_index(interface)?;
    if let Some(mac) = neighbour(ifindex, address)? {
        return Ok(Some(mac));
    }
    provoke_resolution(interface, address);
    let deadline = Instant::now() + RESOLVE_WAIT;
    while Instant::now() < deadline {
        std::thread::sleep(RESOLVE_POLL);
        if let Some(mac) = neighbour(ifindex, address)? {
            return Ok(Some(mac));
        }
    }
    Ok(None)
}

/// The IPv4 networks of the addresses on `interface` (for checking that servers are on the
/// director's segment).
pub fn interface_networks(interface: &str) -> Result<Vec<Ipv4Net>, DirectError> {
    let ifindex = interface_index(interface)?;
    let mut request = AddressMessage::default();
    request.header.family = AddressFamily::Inet;
    let replies = dump(
        RouteNetlinkMessage::GetAddress(request),
        &format!("list the addresses of {interface}"),
    )?;
    let mut networks = Vec::new();
    for reply in replies {
        let RouteNetlinkMessage::NewAddress(message) = reply else {
            continue;
        };
        if message.header.index != ifindex {
            continue;
        }
        let address = message
            .attributes
            .iter()
            .find_map(|attribute| match attribute {
                AddressAttribute::Local(IpAddr::V4(address))
                | AddressAttribute::Address(IpAddr::V4(address)) => Some(*address),
                _ => None,
            });
        if let Some(network) = address
            .and_then(|address| Ipv4Net::new(address, message.header.prefix_len).ok())
            .map(|network| network.trunc())
            && !networks.contains(&network)
        {
            networks.push(network);
        }
    }
    Ok(networks)
}

/// The index of `interface`.
pub(crate) fn interface_index(interface: &str) -> Result<u32, DirectError> {
    let missing = || DirectError::NoInterface {
        interface: interface.to_owned(),
    };
    let name = std::ffi::CString::new(interface).map_err(|_| missing())?;
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        Err(missing())
    } else {
        Ok(index)
    }
}

/// What the director needs to know of an interface, read in the caller's network
/// namespace (sysfs shows the namespace it was mounted in, not the thread's).
pub(crate) struct Link {
    /// Its Ethernet address.
    pub(crate) mac: Option<[u8; 6]>,
    /// A virtual device (veth, bridge, macvlan, ...: the kernel names a kind), as opposed
    /// to one with a hardware driver.
    pub(crate) is_virtual: bool,
    /// The XDP programs attached: (program id, attach mode flags).
    pub(crate) xdp_programs: Vec<(u32, u32)>,
}

/// Reads interface `ifindex`.
pub(crate) fn link(ifindex: u32) -> Result<Link, DirectError> {
    let mut request = LinkMessage::default();
    request.header.index = ifindex;
    let replies = request_reply(
        RouteNetlinkMessage::GetLink(request),
        NLM_F_REQUEST,
        &format!("read interface {ifindex}"),
    )?;
    let mut link = Link {
        mac: None,
        is_virtual: false,
        xdp_programs: Vec::new(),
    };
    for reply in replies {
        let RouteNetlinkMessage::NewLink(message) = reply else {
            continue;
        };
        for attribute in &message.attributes {
            match attribute {
                LinkAttribute::Address(bytes) => {
                    link.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok()
                }
                LinkAttribute::LinkInfo(infos) => {
                    link.is_virtual |= infos.iter().any(|info| matches!(info, LinkInfo::Kind(_)));
                }
                LinkAttribute::Xdp(xdp) => link.xdp_programs.extend(xdp_programs(xdp)),
                _ => {}
            }
        }
    }
    link.xdp_programs.sort_unstable();
    link.xdp_programs.dedup();
    Ok(link)
}

fn xdp_programs(xdp: &[LinkXdp]) -> Vec<(u32, u32)> {
    let mut mode = 0;
    for item in xdp {
        match item {
            LinkXdp::Attached(XdpAttached::Driver) => mode = XDP_FLAGS_DRV_MODE,
            LinkXdp::Attached(XdpAttached::SocketBuffer) => mode = XDP_FLAGS_SKB_MODE,
            LinkXdp::Attached(XdpAttached::Hardware) => mode = XDP_FLAGS_HW_MODE,
            _ => {}
        }
    }
    let mut programs = Vec::new();
    for item in xdp {
        match *item {
            LinkXdp::ProgId(id) if mode != 0 => programs.push((id, mode)),
            LinkXdp::DrvProgId(id) => programs.push((id, XDP_FLAGS_DRV_MODE)),
            LinkXdp::SkbProgId(id) => programs.push((id, XDP_FLAGS_SKB_MODE)),
            LinkXdp::HwProgId(id) => programs.push((id, XDP_FLAGS_HW_MODE)),
            _ => {}
        }
    }
    programs
}

/// Detaches the XDP program attached in `mode` through netlink (fails for one held by a
/// bpf_link).
pub(crate) fn detach_xdp(ifindex: u32, mode: u32) -> Result<(), DirectError> {
    let mut request = LinkMessage::default();
    request.header.index = ifindex;
    request.attributes.push(LinkAttribute::Xdp(vec![
        LinkXdp::Fd(-1),
        LinkXdp::Flags(mode),
    ]));
    request_reply(
        RouteNetlinkMessage::SetLink(request),
        NLM_F_REQUEST | NLM_F_ACK,
        &format!("detach the XDP program of interface {ifindex}"),
    )
    .map(drop)
}

fn neighbour(ifindex: u32, address: Ipv4Addr) -> Result<Option<[u8; 6]>, DirectError> {
    let mut request = NeighbourMessage::default();
    request.header.family = AddressFamily::Inet;
    let replies = dump(
        RouteNetlinkMessage::GetNeighbour(request),
        "read the neighbour table",
    )?;
    for reply in replies {
        let RouteNetlinkMessage::NewNeighbour(entry) = reply else {
            continue;
        };
        if entry.header.ifindex != ifindex
            || matches!(
                entry.header.state,
                NeighbourState::Incomplete | NeighbourState::Failed
            )
        {
            continue;
        }
        let matches = entry.attributes.iter().any(|attribute| {
            matches!(attribute, NeighbourAttribute::Destination(NeighbourAddress::Inet(destination)) if *destination == address)
        });
        let mac = entry
            .attributes
            .iter()
            .find_map(|attribute| match attribute {
                NeighbourAttribute::LinkLayerAddress(bytes) => {
                    <[u8; 6]>::try_from(bytes.as_slice()).ok()
                }
                _ => None,
            });
        if matches && let Some(mac) = mac {
            return Ok(Some(mac));
        }
    }
    Ok(None)
}

/// Sends one datagram to `address`'s discard port from `interface`; failures are ignored
/// (the neighbour table then just stays empty).
fn provoke_resolution(interface: &str, address: Ipv4Addr) {
    let Ok(socket) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)) else {
        return;
    };
    let _ = bind_to_device(&socket, interface);
    let _ = socket.send_to(&[0], SocketAddr::from((address, DISCARD_PORT)));
}

fn bind_to_device(socket: &UdpSocket, interface: &str) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the pointer and length describe `interface`'s bytes, valid for the call.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            interface.as_ptr().cast(),
            interface.len() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn dump(
    request: RouteNetlinkMessage,
    action: &str,
) -> Result<Vec<RouteNetlinkMessage>, DirectError> {
    request_reply(request, NLM_F_REQUEST | NLM_F_DUMP, action)
}

/// Sends `request` and collects the replies until the dump ends, the ACK arrives or (for a
/// plain request) the answer came.
pub(crate) fn request_reply(
    request: RouteNetlinkMessage,
    flags: u16,
    action: &str,
) -> Result<Vec<RouteNetlinkMessage>, DirectError> {
    let fail = |source: std::io::Error| DirectError::Netlink {
        action: action.to_owned(),
        source,
    };
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(fail)?;
    socket.bind_auto().map_err(fail)?;
    socket.connect(&NetlinkAddress::new(0, 0)).map_err(fail)?;
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = 1;
    let mut message = NetlinkMessage::new(header, NetlinkPayload::from(request));
    message.finalize();
    let mut buffer = vec![0; message.buffer_len()];
    message.serialize(&mut buffer);
    socket.send(&buffer, 0).map_err(fail)?;

    let is_dump = flags & NLM_F_DUMP == NLM_F_DUMP;
    let wants_ack = flags & NLM_F_ACK != 0;
    let mut replies = Vec::new();
    loop {
        let (bytes, _) = socket.recv_from_full().map_err(fail)?;
        let mut offset = 0;
        while offset < bytes.len() {
            let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[offset..])
                .map_err(|error| fail(std::io::Error::other(error.to_string())))?;
            let length = reply.header.length as usize;
            match reply.payload {
                NetlinkPayload::Done(_) => return Ok(replies),
                NetlinkPayload::Error(error) => {
                    return match error.code {
                        None => Ok(replies),
                        Some(_) => Err(fail(error.to_io())),
                    };
                }
                NetlinkPayload::InnerMessage(inner) => {
                    replies.push(inner);
                    if !is_dump && !wants_ack {
                        return Ok(replies);
                    }
                }
                _ => {}
            }
            if length == 0 {
                break;
            }
            offset += length;
        }
    }
}
