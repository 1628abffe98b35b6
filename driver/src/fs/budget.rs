//! The memory budget (`max_memory`): one semaphore, counted in 64 KiB units,
//! that every prefetch buffer and every in-flight part buffer holds a permit of
//! for as long as the bytes live. Waiting for it is the write backpressure.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

const UNIT: u64 = 64 * 1024;

/// Shared memory budget.
#[derive(Debug, Clone)]
pub struct Budget {
    sem: Arc<Semaphore>,
    total: u32,
}

impl Budget {
    /// A budget of `bytes` (at least one unit).
    pub fn new(bytes: u64) -> Self {
        let total = (bytes / UNIT).clamp(1, u32::MAX as u64 / 2) as u32;
        Budget {
            sem: Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }

    fn units(&self, bytes: u64) -> u32 {
        (bytes.div_ceil(UNIT).max(1)).min(self.total as u64) as u32
    }

    /// Waits until `bytes` fit in the budget.
    pub async fn acquire(&self, bytes: u64) -> OwnedSemaphorePermit {
        self.sem
            .clone()
            .acquire_many_owned(self.units(bytes))
            .await
            .expect("the budget semaphore is never closed")
    }

    /// Takes `bytes` of the budget if available now.
    pub fn try_acquire(&self, bytes: u64) -> Option<OwnedSemaphorePermit> {
        self.sem
            .clone()
            .try_acquire_many_owned(self.units(bytes))
            .ok()
    }

    /// Bytes currently free.
    pub fn available(&self) -> u64 {
        self.sem.available_permits() as u64 * UNIT
    }
}
