//! The filesystem core: a bucket (or a prefix of it) as a directory tree.
//! Objects are files, `/` in keys makes directories (implicit common prefixes
//! or explicit `dir/` marker objects). The core speaks only
//! [`ObjectStore`](crate::store::ObjectStore) and knows nothing of FUSE or S3;
//! [`fuse`] adapts it to fuser. Operations are async and take inode numbers;
//! errors are [`FsError`]s carrying an errno. See `docs/SEMANTICS.md`.

pub mod attr;
pub mod budget;
pub mod dir;
pub mod error;
pub mod fuse;
pub mod inode;
pub mod options;
pub mod parts;
pub mod read;
pub mod write;

mod copy;
mod ops_file;
mod ops_ns;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod test_store;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use tokio::sync::Mutex as AsyncMutex;

use crate::store::{ObjectInfo, ObjectStore};

pub use attr::{Attr, Kind};
pub use error::{FsError, FsResult};
pub use inode::ROOT_INO;
pub use options::MountOptions;

use budget::Budget;
use dir::{DirCache, Listing};
use inode::InodeTable;
use read::Reader;
use write::Writer;

/// Name of the controller's volume marker object at the volume root; never shown.
pub const VOLUME_MARKER: &str = ".dcs-csi-volume.json";

/// What every store-facing helper needs.
pub struct Ctx {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// The bucket.
    pub bucket: String,
    /// Shared memory budget.
    pub budget: Budget,
    /// Base part size.
    pub part_size: u64,
    /// Where staging files go.
    pub cache_dir: PathBuf,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("bucket", &self.bucket).finish()
    }
}

/// One entry of a directory snapshot handed to readdir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirItem {
    /// Inode number.
    pub ino: u64,
    /// Kind.
    pub kind: Kind,
    /// Name (`.` and `..` included).
    pub name: String,
}

/// What `statfs` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFs {
    /// Total blocks.
    pub blocks: u64,
    /// Free blocks.
    pub bfree: u64,
    /// Total inodes.
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
    /// Block size.
    pub bsize: u32,
    /// Longest name.
    pub namelen: u32,
}

/// Attribute changes of `setattr`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetAttr {
    /// New size (truncate or extend).
    pub size: Option<u64>,
    /// New permission bits.
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New modification time.
    pub mtime: Option<SystemTime>,
}

#[derive(Debug)]
enum Handle {
    File {
        writable: bool,
        reader: AsyncMutex<Option<Reader>>,
    },
    Dir(Vec<DirItem>),
}

/// The filesystem over one volume (bucket + key prefix).
#[derive(Debug)]
pub struct Filesystem {
    ctx: Arc<Ctx>,
    prefix: String,
    opts: MountOptions,
    inodes: Mutex<InodeTable>,
    dirs: DirCache,
    writers: Mutex<HashMap<u64, Arc<AsyncMutex<Writer>>>>,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    next_fh: AtomicU64,
    started: SystemTime,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Filesystem {
    /// A filesystem over `bucket`, rooted at key prefix `prefix` (`""` or e.g. `vols/pvc-1/`).
    pub fn new(
        store: Arc<dyn ObjectStore>,
        bucket: &str,
        prefix: &str,
        opts: MountOptions,
    ) -> Self {
        let part_size = opts.effective_part_size();
        Self::with_part_size(store, bucket, prefix, opts, part_size)
    }

    /// Like [`Self::new`] with any part size (tests use tiny parts with a
    /// store configured to accept them).
    pub(crate) fn with_part_size(
        store: Arc<dyn ObjectStore>,
        bucket: &str,
        prefix: &str,
        opts: MountOptions,
        part_size: u64,
    ) -> Self {
        let mut prefix = prefix.trim_start_matches('/').to_string();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Filesystem {
            ctx: Arc::new(Ctx {
                store,
                bucket: bucket.to_string(),
                budget: Budget::new(opts.max_memory),
                part_size,
                cache_dir: opts.cache_dir.clone(),
            }),
            prefix,
            dirs: DirCache::new(opts.metadata_ttl),
            opts,
            inodes: Mutex::new(InodeTable::new()),
            writers: Mutex::new(HashMap::new()),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            started: SystemTime::now(),
        }
    }

    /// The mount options.
    pub fn options(&self) -> &MountOptions {
        &self.opts
    }

    /// Fails unless the bucket answers (used before mounting).
    pub async fn check_bucket(&self) -> FsResult<()> {
        match self.ctx.store.bucket_exists(&self.ctx.bucket).await? {
            true => Ok(()),
            false => Err(FsError::not_found(format!("bucket {:?}", self.ctx.bucket))),
        }
    }

    fn key(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    fn dir_prefix(&self, path: &str) -> String {
        if path.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}{path}/", self.prefix)
        }
    }

    fn hidden(&self, dir: &str) -> &'static [&'static str] {
        if dir.is_empty() {
            &[VOLUME_MARKER]
        } else {
            &[]
        }
    }

    fn writable(&self) -> FsResult<()> {
        if self.opts.read_only {
            Err(FsError::new(libc::EROFS, "read-only mount"))
        } else {
            Ok(())
        }
    }

    /// Path and kind of a live (not detached) inode.
    fn path_of(&self, ino: u64) -> FsResult<(String, Kind)> {
        let t = lock(&self.inodes);
        match t.get(ino) {
            Some(n) if !n.detached => Ok((n.path.clone(), n.kind)),
            _ => Err(FsError::not_found(format!("inode {ino}"))),
        }
    }

    fn dir_path_of(&self, ino: u64) -> FsResult<String> {
        match self.path_of(ino)? {
            (p, Kind::Dir) => Ok(p),
            (p, _) => Err(FsError::new(
                libc::ENOTDIR,
                format!("{p:?} is not a directory"),
            )),
        }
    }

    fn writer_of(&self, ino: u64) -> Option<Arc<AsyncMutex<Writer>>> {
        lock(&self.writers).get(&ino).cloned()
    }

    fn invalidate(&self, path: &str) {
        self.dirs.invalidate(inode::parent_of(path));
        let mut t = lock(&self.inodes);
        if let Some(ino) = t.ino_of(path)
            && let Some(n) = t.get_mut(ino)
        {
            n.attr = None;
        }
    }

    fn cache_attr(&self, attr: &Attr) {
        if let Some(n) = lock(&self.inodes).get_mut(attr.ino) {
            n.attr = Some((attr.clone(), Instant::now()));
        }
    }

    fn cached_attr(&self, ino: u64) -> Option<Attr> {
        let t = lock(&self.inodes);
        let (a, at) = t.get(ino)?.attr.as_ref()?;
        (at.elapsed() < self.opts.metadata_ttl).then(|| a.clone())
    }

    async fn listing(&self, dir: &str) -> FsResult<Arc<Listing>> {
        if let Some(l) = self.dirs.get(dir) {
            return Ok(l);
        }
        let l = dir::list_dir(
            self.ctx.store.as_ref(),
            &self.ctx.bucket,
            &self.dir_prefix(dir),
            self.hidden(dir),
        )
        .await?;
        let l = Arc::new(l);
        self.dirs.put(dir, l.clone());
        Ok(l)
    }

    /// What the store has at `path`: a directory, an object, or nothing.
    async fn probe(&self, path: &str) -> FsResult<Option<(Kind, Option<ObjectInfo>)>> {
        let key = self.key(path);
        let dp = self.dir_prefix(path);
        let (head, dir) = tokio::join!(
            self.ctx.store.head_object(&self.ctx.bucket, &key),
            dir::prefix_exists(self.ctx.store.as_ref(), &self.ctx.bucket, &dp)
        );
        if dir? {
            return Ok(Some((Kind::Dir, None)));
        }
        Ok(head?.map(|o| {
            let kind = Attr::from_object(0, &o, &self.opts).kind;
            (kind, Some(o))
        }))
    }

    fn new_fh(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(fh, Arc::new(h));
        fh
    }

    fn handle(&self, fh: u64) -> FsResult<Arc<Handle>> {
        lock(&self.handles)
            .get(&fh)
            .cloned()
            .ok_or_else(|| FsError::new(libc::EBADF, format!("no open handle {fh}")))
    }

    /// Commits every file with pending writes (before unmounting).
    pub async fn commit_all(&self) -> FsResult<()> {
        let writers: Vec<(u64, Arc<AsyncMutex<Writer>>)> = lock(&self.writers)
            .iter()
            .map(|(&i, w)| (i, w.clone()))
            .collect();
        let mut result = Ok(());
        for (ino, w) in writers {
            if let Err(e) = self.commit_ino(ino, &w).await {
                result = Err(e);
            }
        }
        result
    }
}
