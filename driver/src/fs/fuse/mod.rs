//! The thin fuser adapter. Each callback becomes one core call spawned as a
//! tokio task that replies when done (so a slow commit never blocks other
//! operations), inside a `fuse` tracing span; [`errno`] is the one place where
//! [`FsError`] becomes an errno.

use std::ffi::OsStr;
use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fuser::{Errno, FileAttr, FileType, INodeNo, MountOption, Session, SessionACL};
use tracing::Instrument;

use super::{Attr, Filesystem, FsError, Kind};

mod callbacks;

/// The errno the kernel gets for `e` (the one mapping point).
pub fn errno(e: &FsError) -> Errno {
    if e.errno() == libc::EIO {
        tracing::warn!(error = %e, "operation failed");
    } else {
        tracing::debug!(error = %e, "operation failed");
    }
    Errno::from_i32(e.errno())
}

fn file_attr(a: &Attr) -> FileAttr {
    let kind = match a.kind {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
        Kind::Symlink => FileType::Symlink,
    };
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.mtime,
        mtime: a.mtime,
        ctime: a.mtime,
        crtime: a.mtime,
        kind,
        perm: a.perm as u16,
        nlink: if a.kind == Kind::Dir { 2 } else { 1 },
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: 1 << 20,
        flags: 0,
    }
}

fn name(n: &OsStr) -> Result<&str, Errno> {
    n.to_str().ok_or(Errno::EINVAL)
}

/// fuser [`fuser::Filesystem`] over the core.
#[derive(Debug)]
pub struct FuseAdapter {
    fs: Arc<Filesystem>,
    rt: tokio::runtime::Handle,
    ttl: Duration,
}

impl FuseAdapter {
    /// An adapter running core calls on `rt`.
    pub fn new(fs: Arc<Filesystem>, rt: tokio::runtime::Handle) -> Self {
        let ttl = fs.options().metadata_ttl;
        FuseAdapter { fs, rt, ttl }
    }

    fn spawn<F, Fut>(&self, op: &'static str, ino: u64, f: F)
    where
        F: FnOnce(Arc<Filesystem>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let span = tracing::debug_span!("fuse", op, ino);
        self.rt.spawn(f(self.fs.clone()).instrument(span));
    }
}

/// Mounts `fs` at `mountpoint`; returns once the kernel handshake is done
/// (the mount is live). Run the returned session to serve requests.
pub fn mount(
    fs: Arc<Filesystem>,
    rt: tokio::runtime::Handle,
    mountpoint: &Path,
) -> io::Result<Session<FuseAdapter>> {
    let o = fs.options().clone();
    let mut cfg = fuser::Config::default();
    cfg.mount_options = vec![
        MountOption::FSName("dcs-csi".into()),
        MountOption::Subtype("dcs-csi".into()),
        MountOption::NoAtime,
        MountOption::NoDev,
        MountOption::NoSuid,
        // The kernel checks permission bits against the attributes we report
        // (uid/gid/modes, fsGroup): a pod cannot write where its user may not.
        MountOption::DefaultPermissions,
    ];
    if o.read_only {
        cfg.mount_options.push(MountOption::RO);
    }
    cfg.acl = if o.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    cfg.n_threads = Some(1);
    Session::new(FuseAdapter::new(fs, rt), mountpoint, &cfg)
}
