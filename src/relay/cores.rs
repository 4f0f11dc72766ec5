//! Per-core relay runtimes: one single-threaded Tokio runtime per core. The
//! listeners accept on the daemon's runtime and hand each client, round
//! robin, to a core that serves it to the end, so a connection's work never
//! moves between threads (no work stealing, no cross-thread wake-ups on the
//! data path) and the cores share the connections evenly.
//!
//! The runtimes start with the first relay and live as long as the process.
//! Their threads are created by the thread that starts that first relay and
//! so share its network namespace: sockets to servers are opened there.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::{Builder, Handle};
use tracing::warn;

/// The per-core runtimes, or none when they could not be started (the
/// relays then serve on the caller's runtime).
static CORES: OnceLock<Vec<Handle>> = OnceLock::new();
/// The core the next client goes to.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The core that serves the next client, round robin; `None` when no relay
/// thread could start (which has been logged).
pub(crate) fn next() -> Option<&'static Handle> {
    let cores = handles();
    if cores.is_empty() {
        return None;
    }
    cores.get(NEXT.fetch_add(1, Ordering::Relaxed) % cores.len())
}

/// One runtime per core (as many as `TOKIO_WORKER_THREADS` says when set,
/// like the daemon's own runtime).
fn handles() -> &'static [Handle] {
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
