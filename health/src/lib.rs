//! Health checks (TCP, MySQL, Redis, HTTP, exec) and their rise/fall state.
//!
//! [`Monitor`] runs one probe task per configured server and publishes
//! changes; [`probe()`] runs a single probe; [`RiseFall`] is the pure debouncer
//! between the two. Relays read each server's [`ServerHealth`] (lock-free
//! status and role, plus the last [`ProbeResult`] for status reports).
//!
//! ```no_run
//! # async fn run(config: hafront_config::Config) -> Result<(), hafront_health::MonitorError> {
//! let monitor = hafront_health::Monitor::start(&config)?;
//! let mut events = monitor.subscribe();
//! while let Ok(event) = events.recv().await {
//!     println!(
//!         "{}/{}: {} -> {} ({})",
//!         event.pool, event.server, event.old, event.new, event.reason
//!     );
//! }
//! # Ok(())
//! # }
//! ```

mod monitor;
mod probe;
mod rise_fall;
mod state;

pub use monitor::{Monitor, MonitorError};
pub use probe::{mysql_error, probe};
pub use rise_fall::{RiseFall, Transition, Verdict};
pub use state::{HealthEvent, ProbeResult, ServerHealth, Status};
