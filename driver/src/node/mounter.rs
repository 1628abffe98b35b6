//! The boundary between node logic and the system: starting and stopping a
//! volume's FUSE server, bind mounts, and what is mounted where. Node logic is
//! unit-tested against [`super::fake::FakeMounter`] (both traits); production
//! uses [`super::system::SystemMounts`] with [`super::process::ProcessMounter`]
//! or [`super::pod::PodMounter`].

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::NodeError;
use crate::config::fsopts::FsOptions;
use crate::config::secrets::StoreSecrets;
use crate::config::volume_id::VolumeId;

/// Everything needed to serve one volume at a staging path.
#[derive(Debug, Clone)]
pub struct MountSpec {
    /// Which bucket/prefix.
    pub volume_id: VolumeId,
    /// Where the FUSE filesystem is mounted (kubelet's staging path).
    pub staging_path: PathBuf,
    /// Credentials and endpoint (never logged: `Debug` redacts the secret).
    pub secrets: StoreSecrets,
    /// Filesystem options (volume context, fsGroup applied).
    pub fs: FsOptions,
    /// Serve read-only.
    pub read_only: bool,
}

/// What is mounted at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountState {
    /// Nothing is mounted there.
    NotMounted,
    /// A working mount.
    Live,
    /// A mount whose FUSE server is gone (ENOTCONN) or that fails; the message says how.
    Dead(String),
}

/// Space and inode usage of a mounted volume.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Total bytes reported by the filesystem.
    pub total_bytes: i64,
    /// Bytes available.
    pub available_bytes: i64,
    /// Bytes used.
    pub used_bytes: i64,
    /// Total inodes.
    pub total_inodes: i64,
    /// Free inodes.
    pub free_inodes: i64,
    /// Used inodes.
    pub used_inodes: i64,
}

/// How a staged volume's FUSE server is run (a process, a Pod...).
#[async_trait]
pub trait Mounter: Send + Sync + 'static {
    /// Starts serving `spec` at its staging path; returns once the mount is live.
    async fn start(&self, spec: &MountSpec) -> Result<(), NodeError>;
    /// Unmounts the staging path; the FUSE server ends once no bind of it remains.
    async fn stop(&self, staging: &Path) -> Result<(), NodeError>;
}

/// The node's mount table: bind mounts, unmounts, and what is mounted where.
pub trait MountTable: Send + Sync + 'static {
    /// Bind-mounts `source` onto `target` (which exists), read-only if asked.
    fn bind(&self, source: &Path, target: &Path, read_only: bool) -> Result<(), NodeError>;
    /// Unmounts `target` (lazily when the mount is dead).
    fn unmount(&self, target: &Path) -> Result<(), NodeError>;
    /// What is mounted at `path`.
    fn state(&self, path: &Path) -> MountState;
    /// Usage of the mount at `path`.
    fn usage(&self, path: &Path) -> Result<Usage, NodeError>;
}
