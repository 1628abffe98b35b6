//! The system calls both real mounters share: bind mounts, unmounts, mount
//! state from mountinfo and `stat`, usage from `statvfs`.

use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use tracing::{info, warn};

use super::NodeError;
use super::mounter::{MountState, MountTable, Usage};
use super::mountinfo;

/// Bind-mounts `source` onto `target`, then remounts it read-only if asked.
pub fn bind(source: &Path, target: &Path, read_only: bool) -> Result<(), NodeError> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| {
        NodeError::Mount(format!(
            "bind mount {} -> {}: {e}",
            source.display(),
            target.display()
        ))
    })?;
    if read_only {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        if let Err(e) = mount(None::<&str>, target, None::<&str>, flags, None::<&str>) {
            let _ = umount2(target, MntFlags::MNT_DETACH);
            return Err(NodeError::Mount(format!(
                "read-only remount of {}: {e}",
                target.display()
            )));
        }
    }
    info!(source = %source.display(), target = %target.display(), read_only, "bind mounted");
    Ok(())
}

/// Unmounts `target`; a dead or busy mount is detached lazily.
pub fn unmount(target: &Path) -> Result<(), NodeError> {
    match umount2(target, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) if mountinfo::find(target).is_none() => Ok(()),
        Err(e) => {
            warn!(target = %target.display(), error = %e, "unmount failed; detaching lazily");
            umount2(target, MntFlags::MNT_DETACH)
                .map_err(|e| NodeError::Mount(format!("unmount {}: {e}", target.display())))
        }
    }
}

/// Whether `path` is exactly a mount point.
pub fn is_mount_point(path: &Path) -> bool {
    mountinfo::find(path).is_some_and(|m| {
        let want = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        m.mount_point == want || m.mount_point == path
    })
}

/// What is mounted at `path`.
pub fn state(path: &Path) -> MountState {
    if mountinfo::is_disconnected(path) {
        return MountState::Dead(
            "the FUSE server of this mount is gone (transport endpoint is not connected)".into(),
        );
    }
    if is_mount_point(path) {
        MountState::Live
    } else {
        MountState::NotMounted
    }
}

/// Usage of the filesystem at `path` (`statvfs`).
pub fn usage(path: &Path) -> Result<Usage, NodeError> {
    let s = nix::sys::statvfs::statvfs(path)
        .map_err(|e| NodeError::Mount(format!("statfs {}: {e}", path.display())))?;
    let frs = s.fragment_size() as i64;
    let total = s.blocks() as i64 * frs;
    let avail = s.blocks_available() as i64 * frs;
    let free = s.blocks_free() as i64 * frs;
    Ok(Usage {
        total_bytes: total,
        available_bytes: avail,
        used_bytes: (total - free).max(0),
        total_inodes: s.files() as i64,
        free_inodes: s.files_free() as i64,
        used_inodes: (s.files() as i64 - s.files_free() as i64).max(0),
    })
}

/// The real mount table of this machine.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemMounts;

impl MountTable for SystemMounts {
    fn bind(&self, source: &Path, target: &Path, read_only: bool) -> Result<(), NodeError> {
        bind(source, target, read_only)
    }

    fn unmount(&self, target: &Path) -> Result<(), NodeError> {
        unmount(target)
    }

    fn state(&self, path: &Path) -> MountState {
        state(path)
    }

    fn usage(&self, path: &Path) -> Result<Usage, NodeError> {
        usage(path)
    }
}
