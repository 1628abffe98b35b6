//! File operations of the core: getattr/setattr, open/create, read/write,
//! flush/fsync (commit) and release.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::Mutex as AsyncMutex;

use crate::store::UserMetadata;

use super::attr::{Attr, Kind};
use super::error::{FsError, FsResult};
use super::inode::join;
use super::read::Reader;
use super::write::Writer;
use super::{Filesystem, Handle, SetAttr, VOLUME_MARKER, copy, lock};

impl Filesystem {
    /// Attributes of `ino`; files being written report their staged size.
    pub async fn getattr(&self, ino: u64) -> FsResult<Attr> {
        let (path, kind, cached, local) = {
            let t = lock(&self.inodes);
            let n = t
                .get(ino)
                .ok_or_else(|| FsError::not_found(format!("inode {ino}")))?;
            (n.path.clone(), n.kind, n.attr.clone(), n.local)
        };
        if let Some(w) = self.writer_of(ino) {
            let w = w.lock().await;
            let mut a = cached
                .map(|(a, _)| a)
                .unwrap_or_else(|| self.file_attr(ino, 0o7777 & self.opts.file_mode));
            a.size = w.size();
            if w.is_dirty() {
                a.mtime = SystemTime::now();
            }
            return Ok(a);
        }
        if let Some(a) = self.cached_attr(ino) {
            return Ok(a);
        }
        if kind == Kind::Dir {
            let a = Attr::dir(ino, &self.opts, self.started);
            self.cache_attr(&a);
            return Ok(a);
        }
        if local {
            return Ok(self.file_attr(ino, self.opts.file_mode));
        }
        match self
            .ctx
            .store
            .head_object(&self.ctx.bucket, &self.key(&path))
            .await?
        {
            Some(info) => {
                let a = Attr::from_object(ino, &info, &self.opts);
                self.cache_attr(&a);
                Ok(a)
            }
            None => Err(FsError::not_found(&path)),
        }
    }

    fn file_attr(&self, ino: u64, perm: u32) -> Attr {
        Attr {
            ino,
            kind: Kind::File,
            size: 0,
            mtime: SystemTime::now(),
            perm: perm & 0o7777,
            uid: self.opts.uid,
            gid: self.opts.gid,
        }
    }

    /// Changes size, mode, owner or mtime of `ino`.
    pub async fn setattr(&self, ino: u64, sa: SetAttr) -> FsResult<Attr> {
        if sa != SetAttr::default() {
            self.writable()?;
        }
        let (path, kind) = self.path_of(ino)?;
        if let Some(size) = sa.size {
            if kind == Kind::Dir {
                return Err(FsError::new(libc::EISDIR, "cannot truncate a directory"));
            }
            let w = self.writer_for(ino, &path).await?;
            w.lock().await.truncate(&self.ctx, size).await?;
            let open = lock(&self.inodes).get(ino).map_or(0, |n| n.open);
            if open == 0 {
                let r = self.commit_ino(ino, &w).await;
                lock(&self.writers).remove(&ino);
                r?;
            }
        }
        if (sa.mode.is_some() || sa.uid.is_some() || sa.gid.is_some() || sa.mtime.is_some())
            && kind == Kind::File
        {
            let mut a = self.getattr(ino).await?;
            a.perm = sa.mode.map_or(a.perm, |m| m & 0o7777);
            a.uid = sa.uid.unwrap_or(a.uid);
            a.gid = sa.gid.unwrap_or(a.gid);
            a.mtime = sa.mtime.unwrap_or(a.mtime);
            let staged = match self.writer_of(ino) {
                Some(w) => {
                    let mut w = w.lock().await;
                    a.store_in(&mut w.meta);
                    w.is_dirty()
                }
                None => false,
            };
            if !staged && !lock(&self.inodes).get(ino).is_some_and(|n| n.local) {
                let key = self.key(&path);
                let info = self
                    .ctx
                    .store
                    .head_object(&self.ctx.bucket, &key)
                    .await?
                    .ok_or_else(|| FsError::not_found(&path))?;
                let mut meta = info.metadata.clone();
                a.store_in(&mut meta);
                copy::copy_object(&self.ctx, &info, &key, &meta).await?;
            }
            self.cache_attr(&a);
        } else if sa.mode.is_some() || sa.uid.is_some() || sa.gid.is_some() {
            tracing::debug!(path, "mode/owner change of a directory or symlink ignored");
        }
        self.invalidate(&path);
        self.getattr(ino).await
    }

    /// The writer of `ino`, created over the committed object if needed.
    async fn writer_for(&self, ino: u64, path: &str) -> FsResult<Arc<AsyncMutex<Writer>>> {
        if let Some(w) = self.writer_of(ino) {
            return Ok(w);
        }
        let key = self.key(path);
        let info = self
            .ctx
            .store
            .head_object(&self.ctx.bucket, &key)
            .await?
            .ok_or_else(|| FsError::not_found(path))?;
        let w = Writer::over(&self.ctx, &key, info.size, info.metadata)?;
        let w = Arc::new(AsyncMutex::new(w));
        Ok(lock(&self.writers).entry(ino).or_insert(w).clone())
    }

    /// Opens file `ino` with open(2) `flags`; returns a handle.
    pub async fn open(&self, ino: u64, flags: i32) -> FsResult<u64> {
        let (path, kind) = self.path_of(ino)?;
        if kind == Kind::Dir {
            return Err(FsError::new(
                libc::EISDIR,
                format!("{path:?} is a directory"),
            ));
        }
        let writable = flags & libc::O_ACCMODE != libc::O_RDONLY;
        if writable {
            self.writable()?;
            let w = self.writer_for(ino, &path).await?;
            if flags & libc::O_TRUNC != 0 {
                w.lock().await.truncate(&self.ctx, 0).await?;
            }
        }
        if let Some(n) = lock(&self.inodes).get_mut(ino) {
            n.open += 1;
        }
        Ok(self.new_fh(Handle::File {
            writable,
            reader: AsyncMutex::new(None),
        }))
    }

    /// Creates and opens file `name` in `parent`. It exists locally until the
    /// first flush/fsync commits it.
    pub async fn create(
        &self,
        parent: u64,
        name: &str,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> FsResult<(Attr, u64)> {
        self.writable()?;
        let dir = self.dir_path_of(parent)?;
        if dir.is_empty() && name == VOLUME_MARKER {
            return Err(FsError::new(libc::EACCES, "reserved name"));
        }
        let path = join(&dir, name);
        let ino = lock(&self.inodes).intern(&path, Kind::File);
        let attr = Attr {
            ino,
            kind: Kind::File,
            size: 0,
            mtime: SystemTime::now(),
            perm: mode & 0o7777,
            uid,
            gid: self.opts.group_for_new(gid),
        };
        let mut meta = UserMetadata::new();
        attr.store_in(&mut meta);
        let w = Writer::new(&self.ctx, meta, true)?;
        lock(&self.writers).insert(ino, Arc::new(AsyncMutex::new(w)));
        {
            let mut t = lock(&self.inodes);
            let n = t.get_mut(ino).expect("interned above");
            n.local = true;
            n.open += 1;
            n.lookups += 1;
            n.attr = Some((attr.clone(), Instant::now()));
        }
        self.dirs.invalidate(&dir);
        let fh = self.new_fh(Handle::File {
            writable: true,
            reader: AsyncMutex::new(None),
        });
        Ok((attr, fh))
    }

    /// Reads up to `len` bytes at `offset`.
    pub async fn read(&self, ino: u64, fh: u64, offset: u64, len: u32) -> FsResult<Bytes> {
        let h = self.handle(fh)?;
        let Handle::File { reader, .. } = h.as_ref() else {
            return Err(FsError::new(libc::EISDIR, "read on a directory handle"));
        };
        if let Some(w) = self.writer_of(ino) {
            let w = w.lock().await;
            if w.is_loaded() {
                return w.read(offset, len);
            }
        }
        let mut r = reader.lock().await;
        if r.is_none() {
            let a = self.getattr(ino).await?;
            let (path, _) = self.path_of(ino)?;
            *r = Some(Reader::new(self.key(&path), a.size));
        }
        r.as_mut()
            .expect("set above")
            .read(&self.ctx, offset, len)
            .await
    }

    /// Writes `data` at `offset` through a writable handle.
    pub async fn write(&self, ino: u64, fh: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        let h = self.handle(fh)?;
        if !matches!(h.as_ref(), Handle::File { writable: true, .. }) {
            return Err(FsError::new(libc::EBADF, "handle not open for writing"));
        }
        let w = self
            .writer_of(ino)
            .ok_or_else(|| FsError::new(libc::EBADF, "no writer for this file"))?;
        let path = lock(&self.inodes)
            .get(ino)
            .map(|n| n.path.clone())
            .ok_or_else(|| FsError::not_found(format!("inode {ino}")))?;
        w.lock()
            .await
            .write(&self.ctx, &self.key(&path), offset, data)
            .await?;
        Ok(data.len() as u32)
    }

    /// close(2) of a descriptor: commits pending writes; returns when they are in the bucket.
    pub async fn flush(&self, ino: u64, fh: u64) -> FsResult<()> {
        let h = self.handle(fh)?;
        if matches!(h.as_ref(), Handle::File { writable: true, .. })
            && let Some(w) = self.writer_of(ino)
        {
            self.commit_ino(ino, &w).await?;
        }
        Ok(())
    }

    /// fsync(2): same as [`Self::flush`].
    pub async fn fsync(&self, ino: u64, fh: u64) -> FsResult<()> {
        self.flush(ino, fh).await
    }

    /// Commits the writer of `ino` to its current path (unless it was unlinked).
    pub(super) async fn commit_ino(&self, ino: u64, w: &AsyncMutex<Writer>) -> FsResult<()> {
        let mut w = w.lock().await;
        let Some(path) = lock(&self.inodes)
            .get(ino)
            .filter(|n| !n.detached)
            .map(|n| n.path.clone())
        else {
            return Ok(());
        };
        w.commit(&self.ctx, &self.key(&path)).await?;
        if let Some(n) = lock(&self.inodes).get_mut(ino) {
            n.local = false;
            n.attr = None;
        }
        self.invalidate(&path);
        Ok(())
    }

    /// Last close of a handle: drops its state; the staging file goes with the
    /// last handle of the file.
    pub async fn release(&self, ino: u64, fh: u64) -> FsResult<()> {
        lock(&self.handles).remove(&fh);
        let last = {
            let mut t = lock(&self.inodes);
            match t.get_mut(ino) {
                Some(n) => {
                    n.open = n.open.saturating_sub(1);
                    let last = n.open == 0;
                    if last && n.lookups == 0 && !n.local {
                        t.remove(ino);
                    }
                    last
                }
                None => true,
            }
        };
        if last {
            let w = lock(&self.writers).remove(&ino);
            if let Some(w) = w {
                let mut w = w.lock().await;
                if w.is_dirty() {
                    tracing::warn!(ino, "released with uncommitted writes (commit failed)");
                    w.abort(&self.ctx).await;
                }
            }
            let mut t = lock(&self.inodes);
            if let Some(n) = t.get_mut(ino)
                && n.local
            {
                let path = n.path.clone();
                t.detach(&path);
            }
        }
        Ok(())
    }
}
