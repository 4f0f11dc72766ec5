//! Per-thread pools of large I/O buffers for the encrypted data paths: a
//! connection takes a buffer only while bytes are in flight and gives it
//! back before waiting for more, so an idle connection holds none, and a
//! busy one allocates none once its thread has spares.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

thread_local! {
    /// Buffers given back, of any length, for the next taker on this thread.
    static SPARES: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

#[cfg(test)]
thread_local! {
    /// Buffers taken on this thread, and those not yet dropped on it.
    static COUNTS: std::cell::Cell<(usize, isize)> = const { std::cell::Cell::new((0, 0)) };
}

/// Buffers taken on this thread so far, and those not given back yet
/// (tests run the connection under test on one thread).
#[cfg(test)]
pub(crate) fn counts() -> (usize, isize) {
    COUNTS.get()
}

/// Spare buffers kept per thread; more are freed.
const SPARE_LIMIT: usize = 16;

/// A buffer from this thread's pool, given back to the pool of the thread
/// that drops it.
pub(crate) struct PooledBuffer(Option<Box<[u8]>>);

impl PooledBuffer {
    /// A buffer of `len` bytes; its content is whatever its last user left.
    pub(crate) fn take(len: usize) -> PooledBuffer {
        #[cfg(test)]
        COUNTS.set((COUNTS.get().0 + 1, COUNTS.get().1 + 1));
        // The spare given back last: its bytes are the likeliest to be
        // in the CPU's cache still. (Taking the oldest cycled a busy
        // thread through all its spares, up to 16 x 64 KiB.)
        let spare = SPARES.with_borrow_mut(|spares| {
            let index = spares.iter().rposition(|buffer| buffer.len() == len)?;
            Some(spares.remove(index))
        });
        PooledBuffer(Some(
            spare.unwrap_or_else(|| vec![0; len].into_boxed_slice()),
        ))
    }
}

impl Deref for PooledBuffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or_default()
    }
}

impl DerefMut for PooledBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.0.as_deref_mut().unwrap_or_default()
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        #[cfg(test)]
        COUNTS.set((COUNTS.get().0, COUNTS.get().1 - 1));
        if let Some(buffer) = self.0.take() {
            // A thread being torn down has no pool left; the buffer is freed.
            let _ = SPARES.try_with(|spares| {
                let mut spares = spares.borrow_mut();
                if spares.len() < SPARE_LIMIT {
                    spares.push(buffer);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again_by_its_length() {
        let first = PooledBuffer::take(1000);
        let address = first.as_ptr();
        drop(first);
        let other = PooledBuffer::take(2000);
        assert_eq!(other.len(), 2000);
        assert_ne!(other.as_ptr(), address, "another length, another buffer");
        let again = PooledBuffer::take(1000);
        assert_eq!(again.as_ptr(), address, "the spare is reused");
    }

    #[test]
    fn the_buffer_given_back_last_is_taken_first() {
        let older = PooledBuffer::take(3000);
        let newer = PooledBuffer::take(3000);
        let (older_address, newer_address) = (older.as_ptr(), newer.as_ptr());
        drop(older);
        drop(newer);
        let first = PooledBuffer::take(3000);
        let second = PooledBuffer::take(3000);
        assert_eq!(first.as_ptr(), newer_address);
        assert_eq!(second.as_ptr(), older_address);
    }
}
