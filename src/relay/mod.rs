//! TCP relays: listeners that forward clients to the healthy servers of a pool.
