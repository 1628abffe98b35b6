//! [`MountOptions`]: how one mount presents its bucket (ownership, modes,
//! caching, write part size, memory budget). Shared by `dcs-csi mount` and the
//! node service, so it is serde-(de)serializable.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::limits;

/// Options of one mount. `Default` gives a sane standalone mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MountOptions {
    /// Owner reported for every file and directory without a stored owner.
    pub uid: u32,
    /// Group reported for every file and directory without a stored group.
    pub gid: u32,
    /// Permission bits of files without stored mode (e.g. `0o644`).
    pub file_mode: u32,
    /// Permission bits of directories without stored mode (e.g. `0o755`).
    pub dir_mode: u32,
    /// Let other users than the mounting one access the mount.
    pub allow_other: bool,
    /// Refuse every change with `EROFS`.
    pub read_only: bool,
    /// How long attributes and listings are cached (kernel and our own caches).
    pub metadata_ttl: Duration,
    /// Base size of multipart parts, bytes (at least 5 MiB; grows for big files).
    pub part_size: u64,
    /// Memory budget for prefetch and in-flight part buffers across all files, bytes.
    pub max_memory: u64,
    /// Directory for the local staging files of files being written.
    pub cache_dir: PathBuf,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            uid: 0,
            gid: 0,
            file_mode: 0o644,
            dir_mode: 0o755,
            allow_other: false,
            read_only: false,
            metadata_ttl: Duration::from_secs(1),
            part_size: 8 * 1024 * 1024,
            max_memory: 64 * 1024 * 1024,
            cache_dir: std::env::temp_dir(),
        }
    }
}

impl MountOptions {
    /// The group of a new file created by a caller of group `caller_gid`. When
    /// directories carry the set-group-ID bit (as Kubernetes makes them for an
    /// fsGroup), new files take the volume's group, like on a local filesystem.
    pub fn group_for_new(&self, caller_gid: u32) -> u32 {
        if self.dir_mode & 0o2000 != 0 {
            self.gid
        } else {
            caller_gid
        }
    }

    /// The part size actually used: at least the S3 minimum.
    pub fn effective_part_size(&self) -> u64 {
        self.part_size.max(limits::MIN_PART_SIZE)
    }
}
