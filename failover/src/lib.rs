//! MariaDB failover for hafront: a dead primary confirmed by its replicas, the most
//! advanced replica promoted once it applied what it received, the others re-pointed with
//! GTID, the old primary fenced and rejoined only without errant transactions, planned
//! switchover, and a block window against flapping.
//!
//! [`gtid`] and [`decide`] are pure; [`mariadb`] speaks to one server; [`Coordinator`] runs
//! one pool's failover as a task, reporting each step as a [`FailoverEvent`].

pub mod decide;
pub mod gtid;
pub mod journal;
pub mod mariadb;

mod coordinator;
mod event;

pub use coordinator::{
    Coordinator, EventSink, Member, Request, Requester, ServerReplication, Settings, Topology,
};
pub use event::{FailoverEvent, Step};
