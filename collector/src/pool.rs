//! Buffers handed back by the stage that emptied them to the stage that fills them, so the pipeline
//! allocates no batch (and faults in no fresh pages) per datagram batch once it runs.

use std::sync::Mutex;

/// Spare buffers, at most `cap` kept.
#[derive(Debug)]
pub struct Pool<T> {
    spare: Mutex<Vec<T>>,
    cap: usize,
}

impl<T: Default> Pool<T> {
    /// A pool that keeps at most `cap` spare buffers.
    pub fn new(cap: usize) -> Self {
        Pool {
            spare: Mutex::new(Vec::new()),
            cap,
        }
    }

    /// A spare buffer, or a new empty one.
    pub fn take(&self) -> T {
        self.lock().pop().unwrap_or_default()
    }

    /// Hands back a buffer the caller has emptied; dropped when the pool is full.
    pub fn put(&self, buffer: T) {
        let mut spare = self.lock();
        if spare.len() < self.cap {
            spare.push(buffer);
        }
    }

    /// Buffers held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no buffer is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        // A panic while holding the lock leaves a valid list of buffers.
        self.spare.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_cap_buffers_and_hands_them_back() {
        let pool: Pool<Vec<u8>> = Pool::new(2);
        assert!(pool.take().capacity() == 0, "empty pool: a new buffer");
        for _ in 0..3 {
            pool.put(Vec::with_capacity(100));
        }
        assert_eq!(pool.len(), 2);
        assert!(pool.take().capacity() >= 100);
        assert!(pool.take().capacity() >= 100);
        assert!(pool.is_empty());
    }
}
