//! Health checks (TCP, MySQL, Redis, HTTP, exec) and their rise/fall state.
//!
//! [`Monitor`] runs one probe task per configured server and publishes
//! changes; [`probe`] runs a single probe; [`RiseFall`] is the pure debouncer
//! between the two.

mod monitor;
mod probe;
mod rise_fall;
mod state;

pub use monitor::{Monitor, MonitorError};
pub use probe::probe;
pub use rise_fall::{RiseFall, Transition, Verdict};
pub use state::{HealthEvent, ProbeResult, ServerHealth, Status};
