//! Namespace operations of the core: lookup/forget, directory listing,
//! mkdir/rmdir, unlink, rename, symlinks, hard links (refused), statfs.

use std::time::{Instant, SystemTime};

use bytes::Bytes;

use crate::store::{UserMetadata, limits, list_all};

use super::attr::{Attr, Kind, META_SYMLINK};
use super::error::{FsError, FsResult};
use super::inode::{join, parent_of};
use super::{DirItem, Filesystem, Handle, StatFs, VOLUME_MARKER, copy, dir, lock};

/// Most attributes fetched ahead when a directory is opened.
const PREFETCH_MAX: usize = 4096;
/// HEAD requests in flight for that.
const PREFETCH_PARALLEL: usize = 32;

impl Filesystem {
    /// Looks `name` up in `parent`; counts one kernel reference on success.
    pub async fn lookup(&self, parent: u64, name: &str) -> FsResult<Attr> {
        let dir = self.dir_path_of(parent)?;
        let path = join(&dir, name);
        if dir.is_empty() && name == VOLUME_MARKER {
            return Err(FsError::not_found(&path));
        }
        let known = {
            let t = lock(&self.inodes);
            t.ino_of(&path)
                .filter(|&i| t.get(i).is_some_and(|n| n.local) || self.writer_of(i).is_some())
        };
        // An inode whose attributes are fresh (looked up or prefetched by
        // opendir moments ago) needs no round trip.
        let fresh = known.or_else(|| {
            let t = lock(&self.inodes);
            t.ino_of(&path).filter(|&i| {
                t.get(i)
                    .and_then(|n| n.attr.as_ref())
                    .is_some_and(|(_, at)| at.elapsed() < self.opts.metadata_ttl)
            })
        });
        let ino = match fresh {
            Some(ino) => ino,
            None => {
                let listed = self.dirs.get(&dir).map(|l| l.get(name).cloned());
                let kind = match listed {
                    Some(None) => return Err(FsError::not_found(&path)),
                    Some(Some(e)) if e.kind == Kind::Dir => Kind::Dir,
                    // Listed as an object: no need to ask whether it is a directory.
                    // Its attributes were fetched when the directory was opened, or
                    // are fetched now by getattr (one HEAD).
                    Some(Some(_)) => {
                        let t = lock(&self.inodes);
                        match t.ino_of(&path).and_then(|i| t.get(i)) {
                            Some(n) => n.kind,
                            None => Kind::File,
                        }
                    }
                    _ => match self.probe(&path).await? {
                        None => return Err(FsError::not_found(&path)),
                        Some((kind, info)) => {
                            let ino = lock(&self.inodes).intern(&path, kind);
                            if let Some(info) = info {
                                self.cache_attr(&Attr::from_object(ino, &info, &self.opts));
                            }
                            kind
                        }
                    },
                };
                lock(&self.inodes).intern(&path, kind)
            }
        };
        let attr = self.getattr(ino).await?;
        if let Some(n) = lock(&self.inodes).get_mut(ino) {
            n.lookups += 1;
        }
        Ok(attr)
    }

    /// The kernel dropped `n` references to `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        lock(&self.inodes).forget(ino, n);
    }

    /// Opens directory `ino`: snapshots its entries for readdir.
    pub async fn opendir(&self, ino: u64) -> FsResult<u64> {
        let dir = self.dir_path_of(ino)?;
        let listing = self.listing(&dir).await?;
        let items = {
            let mut t = lock(&self.inodes);
            let parent = t.ino_of(parent_of(&dir)).unwrap_or(ino);
            let mut items = vec![
                DirItem {
                    ino,
                    kind: Kind::Dir,
                    name: ".".into(),
                },
                DirItem {
                    ino: parent,
                    kind: Kind::Dir,
                    name: "..".into(),
                },
            ];
            for (name, e) in listing.iter() {
                let path = join(&dir, name);
                let kind = match t.ino_of(&path).and_then(|i| t.get(i)) {
                    Some(n) if n.kind == Kind::Symlink && e.kind == Kind::File => Kind::Symlink,
                    _ => e.kind,
                };
                items.push(DirItem {
                    ino: t.intern(&path, kind),
                    kind,
                    name: name.clone(),
                });
            }
            for (i, name, kind) in t.local_children(&dir) {
                if !listing.contains_key(&name) {
                    items.push(DirItem { ino: i, kind, name });
                }
            }
            items
        };
        self.prefetch_attrs(&items).await;
        Ok(self.new_fh(Handle::Dir(items)))
    }

    /// Fetches the attributes of listed files in parallel (bounded), so the
    /// lookups that follow a listing (`ls -l`, `find -ls`) need no round trip
    /// each. Listings do not carry user metadata (mode, owner, symlink target).
    async fn prefetch_attrs(&self, items: &[DirItem]) {
        use futures::StreamExt;
        let todo: Vec<(u64, String)> = {
            let t = lock(&self.inodes);
            items
                .iter()
                .filter(|it| it.kind == Kind::File)
                .filter_map(|it| {
                    let n = t.get(it.ino)?;
                    let fresh = n
                        .attr
                        .as_ref()
                        .is_some_and(|(_, at)| at.elapsed() < self.opts.metadata_ttl);
                    (!fresh && !n.local).then(|| (it.ino, n.path.clone()))
                })
                .take(PREFETCH_MAX)
                .collect()
        };
        let heads = futures::stream::iter(todo.into_iter().map(|(ino, path)| async move {
            let info = self
                .ctx
                .store
                .head_object(&self.ctx.bucket, &self.key(&path))
                .await;
            (ino, info)
        }))
        .buffer_unordered(PREFETCH_PARALLEL)
        .collect::<Vec<_>>()
        .await;
        let now = Instant::now();
        let mut t = lock(&self.inodes);
        for (ino, info) in heads {
            if let (Ok(Some(info)), Some(n)) = (info, t.get_mut(ino)) {
                let a = Attr::from_object(ino, &info, &self.opts);
                n.kind = a.kind;
                n.attr = Some((a, now));
            }
        }
    }

    /// Entries of an open directory from `offset` on, each with the offset of the next.
    pub fn readdir(&self, fh: u64, offset: u64) -> FsResult<Vec<(DirItem, u64)>> {
        let h = self.handle(fh)?;
        let Handle::Dir(items) = h.as_ref() else {
            return Err(FsError::new(libc::ENOTDIR, "not a directory handle"));
        };
        Ok(items
            .iter()
            .enumerate()
            .skip(offset as usize)
            .map(|(i, it)| (it.clone(), i as u64 + 1))
            .collect())
    }

    /// Closes a directory handle.
    pub fn releasedir(&self, fh: u64) {
        lock(&self.handles).remove(&fh);
    }

    async fn exists(&self, path: &str) -> FsResult<Option<Kind>> {
        // Known without a round trip: a local file, or attributes fresh within
        // the metadata TTL (the kernel looked the name up just before).
        let known = {
            let t = lock(&self.inodes);
            t.ino_of(path)
                .and_then(|i| t.get(i))
                .filter(|n| {
                    n.local
                        || n.attr
                            .as_ref()
                            .is_some_and(|(_, at)| at.elapsed() < self.opts.metadata_ttl)
                })
                .map(|n| n.kind)
        };
        if known.is_some() {
            return Ok(known);
        }
        Ok(self.probe(path).await?.map(|(k, _)| k))
    }

    /// Creates directory `name` (an empty `name/` marker object).
    pub async fn mkdir(&self, parent: u64, name: &str, _mode: u32) -> FsResult<Attr> {
        self.writable()?;
        let dir = self.dir_path_of(parent)?;
        let path = join(&dir, name);
        if self.exists(&path).await?.is_some() || (dir.is_empty() && name == VOLUME_MARKER) {
            return Err(FsError::new(libc::EEXIST, format!("{path:?} exists")));
        }
        self.ctx
            .store
            .put_object(
                &self.ctx.bucket,
                &self.dir_prefix(&path),
                Bytes::new(),
                &UserMetadata::new(),
            )
            .await?;
        self.dirs.invalidate(&dir);
        let ino = lock(&self.inodes).intern(&path, Kind::Dir);
        let attr = Attr::dir(ino, &self.opts, SystemTime::now());
        if let Some(n) = lock(&self.inodes).get_mut(ino) {
            n.lookups += 1;
            n.attr = Some((attr.clone(), Instant::now()));
        }
        Ok(attr)
    }

    /// Removes empty directory `name` (`ENOTEMPTY` otherwise).
    pub async fn rmdir(&self, parent: u64, name: &str) -> FsResult<()> {
        self.writable()?;
        let dir = self.dir_path_of(parent)?;
        let path = join(&dir, name);
        match self.exists(&path).await? {
            None => return Err(FsError::not_found(&path)),
            Some(Kind::Dir) => {}
            Some(_) => return Err(FsError::new(libc::ENOTDIR, format!("{path:?}"))),
        }
        self.check_empty(&path).await?;
        self.ctx
            .store
            .delete_object(&self.ctx.bucket, &self.dir_prefix(&path))
            .await?;
        self.dirs.invalidate(&dir);
        self.dirs.invalidate(&path);
        lock(&self.inodes).detach(&path);
        Ok(())
    }

    async fn check_empty(&self, path: &str) -> FsResult<()> {
        let l = dir::list_dir(
            self.ctx.store.as_ref(),
            &self.ctx.bucket,
            &self.dir_prefix(path),
            &[],
        )
        .await?;
        if !l.is_empty() || lock(&self.inodes).has_local_under(path) {
            return Err(FsError::new(
                libc::ENOTEMPTY,
                format!("{path:?} is not empty"),
            ));
        }
        Ok(())
    }

    /// Removes file or symlink `name`.
    pub async fn unlink(&self, parent: u64, name: &str) -> FsResult<()> {
        self.writable()?;
        let dir = self.dir_path_of(parent)?;
        let path = join(&dir, name);
        match self.exists(&path).await? {
            None => return Err(FsError::not_found(&path)),
            Some(Kind::Dir) => return Err(FsError::new(libc::EISDIR, format!("{path:?}"))),
            Some(_) => {}
        }
        self.ctx
            .store
            .delete_object(&self.ctx.bucket, &self.key(&path))
            .await?;
        self.dirs.remove_entry(&dir, name);
        lock(&self.inodes).detach(&path);
        Ok(())
    }

    /// Renames a file, symlink or directory (copy, verify, then delete the source).
    pub async fn rename(
        &self,
        parent: u64,
        name: &str,
        newparent: u64,
        newname: &str,
        noreplace: bool,
    ) -> FsResult<()> {
        self.writable()?;
        let src = join(&self.dir_path_of(parent)?, name);
        let dst_dir = self.dir_path_of(newparent)?;
        let dst = join(&dst_dir, newname);
        if dst_dir.is_empty() && newname == VOLUME_MARKER {
            return Err(FsError::new(libc::EACCES, "reserved name"));
        }
        let src_kind = self
            .exists(&src)
            .await?
            .ok_or_else(|| FsError::not_found(&src))?;
        if src == dst {
            return Ok(());
        }
        let dst_kind = self.exists(&dst).await?;
        if noreplace && dst_kind.is_some() {
            return Err(FsError::new(libc::EEXIST, format!("{dst:?} exists")));
        }
        match (src_kind, dst_kind) {
            (Kind::Dir, Some(k)) if k != Kind::Dir => {
                return Err(FsError::new(libc::ENOTDIR, format!("{dst:?}")));
            }
            (k, Some(Kind::Dir)) if k != Kind::Dir => {
                return Err(FsError::new(libc::EISDIR, format!("{dst:?}")));
            }
            _ => {}
        }
        if src_kind == Kind::Dir {
            if dst.starts_with(&format!("{src}/")) {
                return Err(FsError::new(
                    libc::EINVAL,
                    "cannot move a directory into itself",
                ));
            }
            if dst_kind.is_some() {
                self.check_empty(&dst).await?;
            }
            self.rename_dir(&src, &dst).await?;
        } else {
            let key = self.key(&src);
            if let Some(info) = self.ctx.store.head_object(&self.ctx.bucket, &key).await? {
                copy::copy_object(&self.ctx, &info, &self.key(&dst), &info.metadata).await?;
                self.ctx.store.delete_object(&self.ctx.bucket, &key).await?;
            }
        }
        lock(&self.inodes).rename(&src, &dst);
        self.dirs.clear();
        Ok(())
    }

    async fn rename_dir(&self, src: &str, dst: &str) -> FsResult<()> {
        let (from, to) = (self.dir_prefix(src), self.dir_prefix(dst));
        let objects = list_all(self.ctx.store.as_ref(), &self.ctx.bucket, &from).await?;
        for o in &objects {
            let info = match self.ctx.store.head_object(&self.ctx.bucket, &o.key).await? {
                Some(i) => i,
                None => continue,
            };
            let new_key = format!("{to}{}", &o.key[from.len()..]);
            copy::copy_object(&self.ctx, &info, &new_key, &info.metadata).await?;
        }
        if objects.is_empty() {
            // Only local files inside: keep the directory visible at its new name.
            self.ctx
                .store
                .put_object(&self.ctx.bucket, &to, Bytes::new(), &UserMetadata::new())
                .await?;
        }
        let keys: Vec<String> = objects.into_iter().map(|o| o.key).collect();
        for chunk in keys.chunks(limits::MAX_DELETE_BATCH) {
            self.ctx
                .store
                .delete_objects(&self.ctx.bucket, chunk)
                .await?;
        }
        Ok(())
    }

    /// Creates symlink `name` → `target` (an object whose metadata holds the target).
    pub async fn symlink(
        &self,
        parent: u64,
        name: &str,
        target: &str,
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        self.writable()?;
        let dir = self.dir_path_of(parent)?;
        let path = join(&dir, name);
        if self.exists(&path).await?.is_some() {
            return Err(FsError::new(libc::EEXIST, format!("{path:?} exists")));
        }
        let ino = lock(&self.inodes).intern(&path, Kind::Symlink);
        let attr = Attr {
            ino,
            kind: Kind::Symlink,
            size: target.len() as u64,
            mtime: SystemTime::now(),
            perm: 0o777,
            uid,
            gid: self.opts.group_for_new(gid),
        };
        let mut meta = UserMetadata::new();
        attr.store_in(&mut meta);
        meta.insert(META_SYMLINK.into(), target.to_string());
        self.ctx
            .store
            .put_object(
                &self.ctx.bucket,
                &self.key(&path),
                Bytes::copy_from_slice(target.as_bytes()),
                &meta,
            )
            .await?;
        self.dirs.invalidate(&dir);
        if let Some(n) = lock(&self.inodes).get_mut(ino) {
            n.lookups += 1;
            n.attr = Some((attr.clone(), Instant::now()));
        }
        Ok(attr)
    }

    /// Target of symlink `ino`.
    pub async fn readlink(&self, ino: u64) -> FsResult<String> {
        let (path, _) = self.path_of(ino)?;
        let info = self
            .ctx
            .store
            .head_object(&self.ctx.bucket, &self.key(&path))
            .await?
            .ok_or_else(|| FsError::not_found(&path))?;
        info.metadata
            .get(META_SYMLINK)
            .cloned()
            .ok_or_else(|| FsError::new(libc::EINVAL, format!("{path:?} is not a symlink")))
    }

    /// Hard links are not supported: always `EPERM`.
    pub fn link(&self, ino: u64, newname: &str) -> FsResult<Attr> {
        tracing::info!(
            ino,
            newname,
            "hard link refused: objects cannot share data (EPERM)"
        );
        Err(FsError::new(libc::EPERM, "hard links are not supported"))
    }

    /// Filesystem statistics: an object store has no fixed capacity, so large constant numbers.
    pub fn statfs(&self) -> StatFs {
        StatFs {
            blocks: 1 << 38,
            bfree: 1 << 38,
            files: 1 << 32,
            ffree: 1 << 32,
            bsize: 4096,
            namelen: 1024,
        }
    }
}
