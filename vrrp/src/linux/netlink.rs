//! Interface lookup and virtual address management over rtnetlink (no `ip` subprocess).
//!
//! VIPs are added with a short valid lifetime that is renewed with every advert sent, so
//! a daemon killed with SIGKILL loses its addresses within seconds instead of leaving a
//! duplicate IP behind.

use std::net::IpAddr;
use std::time::Duration;

use futures_util::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::Handle;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, CacheInfo,
};
use rtnetlink::packet_route::link::LinkAttribute;

use super::DriverError;

/// An interface's index and hardware address.
pub(crate) struct Link {
    pub(crate) index: u32,
    pub(crate) mac: [u8; 6],
}

/// A netlink connection scoped to one interface.
pub(crate) struct Netlink {
    handle: Handle,
    index: u32,
}

impl Netlink {
    /// Connects (in the calling thread's network namespace) and looks up `interface`.
    pub(crate) async fn connect(interface: &str) -> Result<(Netlink, Link), DriverError> {
        let (connection, handle, _) = rtnetlink::new_connection()
            .map_err(|source| DriverError::io("opening a netlink socket", source))?;
        tokio::spawn(connection);
        let message = handle
            .link()
            .get()
            .match_name(interface)
            .execute()
            .try_next()
            .await
            .map_err(|_| DriverError::NoSuchInterface(interface.to_owned()))?
            .ok_or_else(|| DriverError::NoSuchInterface(interface.to_owned()))?;
        let mac = message
            .attributes
            .iter()
            .find_map(|attribute| match attribute {
                LinkAttribute::Address(bytes) => <[u8; 6]>::try_from(bytes.as_slice()).ok(),
                _ => None,
            })
            .ok_or_else(|| DriverError::NotEthernet(interface.to_owned()))?;
        let index = message.header.index;
        Ok((Netlink { handle, index }, Link { index, mac }))
    }

    /// Adds `vip`, or renews its lifetime when present.
    pub(crate) async fn add(&self, vip: IpNet, lifetime: Duration) -> Result<(), rtnetlink::Error> {
        let mut request = self
            .handle
            .address()
            .add(self.index, vip.addr(), vip.prefix_len())
            .replace();
        let seconds = u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX).max(1);
        let mut cache_info = CacheInfo::default();
        cache_info.ifa_valid = seconds;
        cache_info.ifa_preferred = seconds;
        let attributes = &mut request.message_mut().attributes;
        attributes.push(AddressAttribute::CacheInfo(cache_info));
        if vip.addr().is_ipv6() {
            // Usable at once: duplicate address detection would hold it back ~1 s.
            attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        request.execute().await
    }

    /// Removes every address in `vips` present on the interface (whatever its prefix).
    pub(crate) async fn remove(&self, vips: &[IpNet]) -> Result<(), rtnetlink::Error> {
        for message in self.find(vips).await? {
            match self.handle.address().del(message).execute().await {
                // Already gone (expired, or removed by someone else): the goal is met.
                Err(rtnetlink::Error::NetlinkError(error))
                    if error.raw_code() == -libc::EADDRNOTAVAIL =>
                {
                    continue;
                }
                result => result?,
            }
        }
        Ok(())
    }

    /// The addresses of `vips` currently on the interface.
    pub(crate) async fn present(&self, vips: &[IpNet]) -> Result<Vec<IpAddr>, rtnetlink::Error> {
        Ok(self
            .find(vips)
            .await?
            .iter()
            .filter_map(message_address)
            .collect())
    }

    /// The interface's primary IPv4 address, or its IPv6 link-local address when `ipv6`,
    /// ignoring `vips` (a /32 VIP is primary for the kernel, but not ours to advertise from).
    pub(crate) async fn primary(
        &self,
        ipv6: bool,
        vips: &[IpNet],
    ) -> Result<Option<IpAddr>, rtnetlink::Error> {
        let messages = self.addresses().await?;
        Ok(messages
            .iter()
            .filter(|message| !message.header.flags.contains(AddressHeaderFlags::Secondary))
            .filter_map(message_address)
            .filter(|address| !vips.iter().any(|vip| vip.addr() == *address))
            .find(|address| match address {
                IpAddr::V4(_) => !ipv6,
                IpAddr::V6(v6) => ipv6 && v6.is_unicast_link_local(),
            }))
    }

    /// Every address on the interface, as the kernel lists them.
    async fn addresses(&self) -> Result<Vec<AddressMessage>, rtnetlink::Error> {
        self.handle
            .address()
            .get()
            .set_link_index_filter(self.index)
            .execute()
            .try_collect()
            .await
    }

    async fn find(&self, vips: &[IpNet]) -> Result<Vec<AddressMessage>, rtnetlink::Error> {
        let messages = self.addresses().await?;
        Ok(messages
            .into_iter()
            .filter(|message| {
                message_address(message)
                    .is_some_and(|address| vips.iter().any(|vip| vip.addr() == address))
            })
            .collect())
    }
}

/// The interface address of an address message (IFA_LOCAL for IPv4, IFA_ADDRESS for IPv6).
fn message_address(message: &AddressMessage) -> Option<IpAddr> {
    let local = message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            AddressAttribute::Local(address) => Some(*address),
            _ => None,
        });
    local.or_else(|| {
        message
            .attributes
            .iter()
            .find_map(|attribute| match attribute {
                AddressAttribute::Address(address) => Some(*address),
                _ => None,
            })
    })
}
