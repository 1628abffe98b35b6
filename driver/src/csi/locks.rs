//! One operation per volume at a time: a second concurrent request on the same
//! volume gets `ABORTED` (as the CSI spec recommends) instead of waiting on a
//! global lock. Requests on other volumes proceed in parallel.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tonic::Status;

/// The set of volumes with an operation in flight.
#[derive(Debug, Default, Clone)]
pub struct VolumeLocks {
    busy: Arc<Mutex<HashSet<String>>>,
}

/// Held while an operation on a volume runs; releases it on drop.
#[derive(Debug)]
pub struct VolumeGuard {
    busy: Arc<Mutex<HashSet<String>>>,
    key: String,
}

impl VolumeLocks {
    /// Takes the volume `key` or fails with `ABORTED`.
    pub fn try_lock(&self, key: &str) -> Result<VolumeGuard, Status> {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        if !busy.insert(key.to_string()) {
            return Err(Status::aborted(format!(
                "an operation on volume {key:?} is already in progress"
            )));
        }
        Ok(VolumeGuard {
            busy: self.busy.clone(),
            key: key.to_string(),
        })
    }
}

impl Drop for VolumeGuard {
    fn drop(&mut self) {
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_same_volume_aborts_until_released() {
        let l = VolumeLocks::default();
        let g = l.try_lock("a").unwrap();
        assert_eq!(l.try_lock("a").unwrap_err().code(), tonic::Code::Aborted);
        let _other = l.try_lock("b").unwrap();
        drop(g);
        l.try_lock("a").unwrap();
    }
}
