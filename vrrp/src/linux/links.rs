//! Link change notifications (administrative state, carrier) over rtnetlink's link
//! multicast group, for tracking interfaces without polling.

use futures_util::{Stream, StreamExt};
use rtnetlink::Handle;
use rtnetlink::constants::RTMGRP_LINK;
use rtnetlink::packet_core::NetlinkMessage;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{AsyncSocket, SocketAddr};
use tokio::task::JoinHandle;

use super::DriverError;

type Notification = (NetlinkMessage<RouteNetlinkMessage>, SocketAddr);

/// Notifications of link changes in the network namespace of the thread that subscribed.
pub struct LinkChanges {
    messages: Box<dyn Stream<Item = Notification> + Send + Unpin>,
    connection: JoinHandle<()>,
    // The connection runs as long as a handle exists.
    _handle: Handle,
}

impl LinkChanges {
    /// Subscribes to the link group. Must run inside a tokio runtime.
    pub fn subscribe() -> Result<LinkChanges, DriverError> {
        let (mut connection, handle, messages) = rtnetlink::new_connection()
            .map_err(|source| DriverError::io("opening a netlink socket", source))?;
        connection
            .socket_mut()
            .socket_mut()
            .bind(&SocketAddr::new(0, RTMGRP_LINK))
            .map_err(|source| DriverError::io("joining the netlink link group", source))?;
        Ok(LinkChanges {
            messages: Box::new(messages),
            connection: tokio::spawn(connection),
            _handle: handle,
        })
    }

    /// Waits until some link changed; `None` once the netlink socket is gone. Read the
    /// links' state afterwards: a notification says that, not what, changed.
    pub async fn changed(&mut self) -> Option<()> {
        self.messages.next().await.map(drop)
    }
}

impl Drop for LinkChanges {
    fn drop(&mut self) {
        self.connection.abort();
    }
}
