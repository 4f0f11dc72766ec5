//! Per-core relay runtimes: one single-threaded Tokio runtime per core, each
//! accepting from every relay listener and serving the connections it
//! accepted itself, so a connection's work never moves between threads (no
//! work stealing, no cross-thread wake-ups on the data path).
//!
//! The runtimes start with the first relay and live as long as the process.
//! Their threads are created by the thread that starts that first relay and
//! so share its network namespace: sockets to servers are opened there.

use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle};
use tracing::warn;

/// The per-core runtimes, or none when they could not be started (the
/// relays then run on the caller's runtime).
static CORES: OnceLock<Vec<Handle>> = OnceLock::new();

/// The runtimes relay listeners are served on: one per core (as many as
/// `TOKIO_WORKER_THREADS` says when set, like the daemon's own runtime).
/// Empty when no thread could be started, which has been logged.
pub(crate) fn handles() -> &'static [Handle] {
    CORES.get_or_init(|| {
        let count = std::env::var("TOKIO_WORKER_THREADS")
            .ok()
            .and_then(|value| value.parse::<usize>().ok())
            .filter(|&count| count > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, Into::into));
        let mut handles = Vec::with_capacity(count);
        for core in 0..count {
            match start(core) {
                Ok(handle) => handles.push(handle),
                Err(error) => {
                    warn!(%error, core, "cannot start a relay thread; relays use the ones started");
                    break;
                }
            }
        }
        handles
    })
}

/// Starts core `index`'s thread and returns a handle to its runtime.
fn start(index: usize) -> std::io::Result<Handle> {
    let runtime = Builder::new_current_thread()
        .enable_all()
        .thread_name(format!("hafront-relay-{index}"))
        .build()?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name(format!("hafront-relay-{index}"))
        .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
    Ok(handle)
}
