//! A director that is also one of its servers (the classic co-located pair,
//! each database host running the director too).
//!
//! Such a host must accept packets for the VIP whichever node is master, and
//! answer ARP for the VIP only while its VRRP instance holds it on the
//! interface. keepalived users toggle this with notify scripts; here it is
//! one idempotent step: the VIP as a /32 on `lo` (permanent: the host stays
//! a server while another node directs) and, on the VIP's interface,
//! `arp_ignore=1` (answer only for addresses on that interface) and
//! `arp_announce=2` (never name the VIP as the source of an ARP request).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::DirectError;
use crate::netlink::{interface_index, request_reply};

/// Makes this host accept packets for `vips` arriving on `interface`
/// without answering ARP for them there unless they are on `interface`.
/// Blocking (netlink and `/proc/sys`), and idempotent.
pub fn serve_locally(interface: &str, vips: &[Ipv4Addr]) -> Result<(), DirectError> {
    raise_sysctl(interface, "arp_ignore", 1)?;
    raise_sysctl(interface, "arp_announce", 2)?;
    let loopback = interface_index("lo")?;
    for vip in vips {
        let mut message = AddressMessage::default();
        message.header.family = AddressFamily::Inet;
        message.header.prefix_len = 32;
        message.header.index = loopback;
        message
            .attributes
            .push(AddressAttribute::Local(IpAddr::V4(*vip)));
        message
            .attributes
            .push(AddressAttribute::Address(IpAddr::V4(*vip)));
        request_reply(
            RouteNetlinkMessage::NewAddress(message),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            &format!("add {vip}/32 to lo"),
        )?;
    }
    Ok(())
}

/// Sets `net.ipv4.conf.<interface>.<name>` to `value` unless it is already
/// as high (the kernel uses the highest of `all` and the interface's).
fn raise_sysctl(interface: &str, name: &str, value: u8) -> Result<(), DirectError> {
    let path = PathBuf::from("/proc/sys/net/ipv4/conf")
        .join(interface)
        .join(name);
    let failure = |source: std::io::Error| DirectError::Sysctl {
        path: path.clone(),
        source,
    };
    let current: u8 = std::fs::read_to_string(&path)
        .map_err(failure)?
        .trim()
        .parse()
        .unwrap_or(0);
    if current < value {
        std::fs::write(&path, value.to_string()).map_err(|source| DirectError::Sysctl {
            path: path.clone(),
            source: std::io::Error::new(
                source.kind(),
                format!(
                    "{source}; set net.ipv4.conf.{interface}.{name}={value} in /etc/sysctl.d \
                     (the systemd unit keeps /proc/sys read-only)"
                ),
            ),
        })?;
    }
    Ok(())
}
