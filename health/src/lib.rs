//! Health checks (TCP, MySQL, Redis, HTTP, exec) and their rise/fall state.

mod state;

pub use state::{HealthEvent, ServerHealth, Status};
