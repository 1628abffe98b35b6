//! An in-memory [`Mounter`] and [`MountTable`] for unit tests of the node logic: no root, no
//! FUSE. It records what is mounted where and can be told a mount died.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;

use super::NodeError;
use super::mounter::{MountSpec, MountState, MountTable, Mounter, Usage};

/// What the fake has at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeMount {
    /// A FUSE server for this volume id.
    Fuse {
        /// Volume id served.
        volume: String,
        /// Whether it was started read-only.
        read_only: bool,
    },
    /// A bind of `source`.
    Bind {
        /// Bind source.
        source: PathBuf,
        /// Read-only bind.
        read_only: bool,
    },
}

/// The fake mounter.
#[derive(Debug, Default)]
pub struct FakeMounter {
    mounts: Mutex<HashMap<PathBuf, (FakeMount, bool)>>,
    /// Number of FUSE servers started so far.
    pub starts: std::sync::atomic::AtomicUsize,
}

impl FakeMounter {
    /// What is mounted at `path` (and whether it is alive).
    pub fn get(&self, path: &Path) -> Option<(FakeMount, bool)> {
        self.mounts.lock().unwrap().get(path).cloned()
    }

    /// Number of mounts of any kind.
    pub fn count(&self) -> usize {
        self.mounts.lock().unwrap().len()
    }

    /// Simulates the death of the FUSE server at `staging` (and of its binds).
    pub fn kill(&self, staging: &Path) {
        let mut m = self.mounts.lock().unwrap();
        let binds: Vec<PathBuf> = m
            .iter()
            .filter(|(_, (k, _))| matches!(k, FakeMount::Bind { source, .. } if source == staging))
            .map(|(p, _)| p.clone())
            .collect();
        for p in binds.into_iter().chain([staging.to_path_buf()]) {
            if let Some(e) = m.get_mut(&p) {
                e.1 = false;
            }
        }
    }
}

#[async_trait]
impl Mounter for FakeMounter {
    async fn start(&self, spec: &MountSpec) -> Result<(), NodeError> {
        self.starts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.mounts.lock().unwrap().insert(
            spec.staging_path.clone(),
            (
                FakeMount::Fuse {
                    volume: spec.volume_id.to_string(),
                    read_only: spec.read_only,
                },
                true,
            ),
        );
        Ok(())
    }

    async fn stop(&self, staging: &Path) -> Result<(), NodeError> {
        self.mounts.lock().unwrap().remove(staging);
        Ok(())
    }
}

impl MountTable for FakeMounter {
    fn bind(&self, source: &Path, target: &Path, read_only: bool) -> Result<(), NodeError> {
        self.mounts.lock().unwrap().insert(
            target.to_path_buf(),
            (
                FakeMount::Bind {
                    source: source.to_path_buf(),
                    read_only,
                },
                true,
            ),
        );
        Ok(())
    }

    fn unmount(&self, target: &Path) -> Result<(), NodeError> {
        self.mounts.lock().unwrap().remove(target);
        Ok(())
    }

    fn state(&self, path: &Path) -> MountState {
        match self.get(path) {
            None => MountState::NotMounted,
            Some((_, true)) => MountState::Live,
            Some((_, false)) => MountState::Dead("transport endpoint is not connected".into()),
        }
    }

    fn usage(&self, path: &Path) -> Result<Usage, NodeError> {
        match self.state(path) {
            MountState::Live => Ok(Usage {
                total_bytes: 1 << 40,
                available_bytes: (1 << 40) - 4096,
                used_bytes: 4096,
                total_inodes: 1 << 20,
                free_inodes: (1 << 20) - 1,
                used_inodes: 1,
            }),
            _ => Err(NodeError::Mount("not mounted".into())),
        }
    }
}
