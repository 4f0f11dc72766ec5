//! Link states (carrier, operational state) from rtnetlink: read once at subscription,
//! then kept current from the link multicast group's notifications, for tracking
//! interfaces without polling or blocking reads.

use std::collections::HashMap;

use futures_util::{Stream, StreamExt, TryStreamExt};
use rtnetlink::Handle;
use rtnetlink::constants::RTMGRP_LINK;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage, State};
use rtnetlink::sys::{AsyncSocket, SocketAddr};
use tokio::task::JoinHandle;

use super::DriverError;

type Notification = (NetlinkMessage<RouteNetlinkMessage>, SocketAddr);

/// Whether each link of the network namespace of the thread that subscribed is up,
/// followed live.
pub struct LinkStates {
    messages: Box<dyn Stream<Item = Notification> + Send + Unpin>,
    connection: JoinHandle<()>,
    handle: Handle,
    /// Up or down by interface name; only the namespace's own links are ever here.
    up: HashMap<String, bool>,
}

impl LinkStates {
    /// Joins the link group, then reads every link's state. Must run inside a tokio
    /// runtime.
    pub async fn subscribe() -> Result<LinkStates, DriverError> {
        let (mut connection, handle, messages) = rtnetlink::new_connection()
            .map_err(|source| DriverError::io("opening a netlink socket", source))?;
        connection
            .socket_mut()
            .socket_mut()
            .bind(&SocketAddr::new(0, RTMGRP_LINK))
            .map_err(|source| DriverError::io("joining the netlink link group", source))?;
        let mut links = LinkStates {
            messages: Box::new(messages),
            connection: tokio::spawn(connection),
            handle,
            up: HashMap::new(),
        };
        links.refresh().await?;
        Ok(links)
    }

    /// Reads every link's state again: catches a notification lost to a full socket
    /// buffer.
    pub async fn refresh(&mut self) -> Result<(), DriverError> {
        let mut dump = self.handle.link().get().execute();
        let mut up = HashMap::new();
        while let Some(message) = dump
            .try_next()
            .await
            .map_err(|source| DriverError::netlink("reading link states", source))?
        {
            if let Some((name, state)) = link_state(&message) {
                up.insert(name, state);
            }
        }
        self.up = up;
        Ok(())
    }

    /// Waits for the next link notification and applies it; `None` once the netlink
    /// socket is gone.
    pub async fn changed(&mut self) -> Option<()> {
        let (message, _) = self.messages.next().await?;
        match message.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                if let Some((name, state)) = link_state(&link) {
                    self.up.insert(name, state);
                }
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
                if let Some((name, _)) = link_state(&link) {
                    self.up.remove(&name);
                }
            }
            _ => {}
        }
        Some(())
    }

    /// Whether `interface` has carrier and is operationally up (or reports no
    /// operational state, as virtual devices without one do). A missing link is down.
    pub fn is_up(&self, interface: &str) -> bool {
        self.up.get(interface).copied().unwrap_or(false)
    }
}

impl Drop for LinkStates {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// The link's name and whether it is up, from its attributes.
fn link_state(message: &LinkMessage) -> Option<(String, bool)> {
    let mut name = None;
    let mut carrier = false;
    let mut operational = false;
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(text) => name = Some(text.clone()),
            LinkAttribute::Carrier(value) => carrier = *value == 1,
            LinkAttribute::OperState(state) => {
                operational = matches!(state, State::Up | State::Unknown);
            }
            _ => {}
        }
    }
    Some((name?, carrier && operational))
}
