//! Write handles. Every file being written has a [`Writer`]: a local staging
//! file (unlinked at creation, so it vanishes with the writer) holding the
//! file's bytes, plus an optional multipart upload that streams parts as soon
//! as they are complete. Parts have fixed ranges ([`PartLayout`]); a write into
//! a part already sent marks it dirty and it is sent again (same part number)
//! before completion, so seek-back writes cost one part re-upload. Nothing is
//! visible at the key before `commit` completes the upload (or PUTs a small
//! file); on any failure the upload is aborted and the previous object stays.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use tokio::task::JoinHandle;

use crate::store::{CompletedPart, UserMetadata};

pub use super::parts::PartLayout;

use super::Ctx;
use super::attr::META_MTIME;
use super::error::{FsError, FsResult};

#[derive(Debug)]
enum Part {
    /// Being uploaded; `bool` = written again since it was read.
    InFlight(JoinHandle<FsResult<String>>, bool),
    /// Uploaded with this ETag; `bool` = written again since.
    Done(String, bool),
}

/// The staging state of one file being written.
#[derive(Debug)]
pub struct Writer {
    file: Arc<File>,
    layout: PartLayout,
    /// Current size of the file.
    size: u64,
    /// Size of the committed object still to download before the first change.
    base: Option<(String, u64)>,
    /// Changed since the last commit.
    dirty: bool,
    /// Metadata the next commit stores.
    pub meta: UserMetadata,
    upload: Option<Upload>,
    parts: BTreeMap<u32, Part>,
}

#[derive(Debug)]
struct Upload {
    id: String,
    key: String,
    meta: UserMetadata,
}

impl Writer {
    /// A writer for an empty file (new, or opened with `O_TRUNC`); `dirty`
    /// says whether a commit must store it even without writes.
    pub fn new(ctx: &Ctx, meta: UserMetadata, dirty: bool) -> FsResult<Self> {
        let file = tempfile::tempfile_in(&ctx.cache_dir)
            .map_err(|e| FsError::io(format!("cannot create a staging file: {e}")))?;
        Ok(Writer {
            file: Arc::new(file),
            layout: PartLayout::new(ctx.part_size),
            size: 0,
            base: None,
            dirty,
            meta,
            upload: None,
            parts: BTreeMap::new(),
        })
    }

    /// A writer over the existing object `key` of `size` bytes, downloaded on first change.
    pub fn over(ctx: &Ctx, key: &str, size: u64, meta: UserMetadata) -> FsResult<Self> {
        let mut w = Self::new(ctx, meta, false)?;
        w.base = Some((key.to_string(), size));
        w.size = size;
        Ok(w)
    }

    /// Current size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether the staging file holds changes not yet committed.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Whether reads must be served from the staging file.
    pub fn is_loaded(&self) -> bool {
        self.base.is_none()
    }

    async fn load(&mut self, ctx: &Ctx, upto: u64) -> FsResult<()> {
        let Some((key, size)) = self.base.clone() else {
            return Ok(());
        };
        let end = size.min(upto);
        let chunk = 8 * 1024 * 1024;
        let mut off = 0;
        while off < end {
            let n = chunk.min(end - off);
            let data = ctx.store.get_range(&ctx.bucket, &key, off..off + n).await?;
            if data.len() as u64 != n {
                return Err(FsError::io("object changed size while being read"));
            }
            self.file.write_all_at(&data, off)?;
            off += n;
        }
        self.file.set_len(self.size)?;
        self.base = None;
        Ok(())
    }

    /// Reads from the staging file (the caller checked [`Self::is_loaded`]).
    pub fn read(&self, offset: u64, len: u32) -> FsResult<Bytes> {
        if offset >= self.size {
            return Ok(Bytes::new());
        }
        let n = (len as u64).min(self.size - offset) as usize;
        let mut buf = vec![0; n];
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(buf.into())
    }

    /// Writes `data` at `offset`; uploads parts that became complete.
    pub async fn write(&mut self, ctx: &Ctx, key: &str, offset: u64, data: &[u8]) -> FsResult<()> {
        let end = offset + data.len() as u64;
        if end > self.layout.max_size() {
            return Err(FsError::new(libc::EFBIG, "file larger than the S3 limit"));
        }
        if data.is_empty() {
            return Ok(());
        }
        self.load(ctx, u64::MAX).await?;
        self.touch();
        self.file.write_all_at(data, offset)?;
        self.size = self.size.max(end);
        self.dirty = true;
        let first = self.layout.part_at(offset).expect("checked size");
        let last = self.layout.part_at(end - 1).expect("checked size");
        for n in first..=last {
            match self.parts.get_mut(&n) {
                Some(Part::InFlight(_, d)) | Some(Part::Done(_, d)) => *d = true,
                None if self.layout.range(n).end <= self.size => {
                    let h = self.spawn_part(ctx, key, n).await?;
                    self.parts.insert(n, Part::InFlight(h, false));
                }
                None => {}
            }
        }
        Ok(())
    }

    /// Sets the size to `size` (zero-filled when growing).
    pub async fn truncate(&mut self, ctx: &Ctx, size: u64) -> FsResult<()> {
        if size > self.layout.max_size() {
            return Err(FsError::new(libc::EFBIG, "file larger than the S3 limit"));
        }
        self.load(ctx, size).await?;
        self.touch();
        self.file.set_len(size)?;
        let keep = if size == 0 {
            0
        } else {
            self.layout.part_at(size - 1).expect("checked size")
        };
        let cut: Vec<u32> = self.parts.range(keep..).map(|(&n, _)| n).collect();
        for n in cut {
            if n == keep && self.layout.range(n).end <= size {
                continue;
            }
            if let Some(Part::InFlight(h, _)) = self.parts.remove(&n) {
                h.abort();
            }
        }
        self.size = size;
        self.dirty = true;
        Ok(())
    }

    /// Data changed: the object's own LastModified (set at commit) becomes its
    /// mtime, so an explicit mtime stored earlier is dropped.
    fn touch(&mut self) {
        self.meta.remove(META_MTIME);
    }

    async fn ensure_upload(&mut self, ctx: &Ctx, key: &str) -> FsResult<String> {
        if let Some(u) = &self.upload {
            if u.key == key && u.meta == self.meta {
                return Ok(u.id.clone());
            }
            self.abort(ctx).await;
        }
        let id = ctx
            .store
            .create_multipart(&ctx.bucket, key, &self.meta)
            .await?;
        self.upload = Some(Upload {
            id: id.clone(),
            key: key.to_string(),
            meta: self.meta.clone(),
        });
        Ok(id)
    }

    async fn spawn_part(
        &mut self,
        ctx: &Ctx,
        key: &str,
        n: u32,
    ) -> FsResult<JoinHandle<FsResult<String>>> {
        let id = self.ensure_upload(ctx, key).await?;
        let r = self.layout.range(n);
        let len = r.end.min(self.size) - r.start;
        let permit = ctx.budget.acquire(len).await;
        let mut buf = vec![0; len as usize];
        self.file.read_exact_at(&mut buf, r.start)?;
        let (store, bucket, key) = (ctx.store.clone(), ctx.bucket.clone(), key.to_string());
        Ok(tokio::spawn(async move {
            let r = store
                .upload_part(&bucket, &key, &id, n as i32, buf.into())
                .await;
            drop(permit);
            r.map_err(FsError::from)
        }))
    }

    /// Makes the bucket hold exactly the staging file at `key`: PUT for a file
    /// of one part or less, else the remaining parts and CompleteMultipartUpload.
    /// Returns only when the object is in the bucket; on failure the upload is
    /// aborted, the previous object is untouched and the data stays staged.
    pub async fn commit(&mut self, ctx: &Ctx, key: &str) -> FsResult<()> {
        if !self.dirty {
            return Ok(());
        }
        let r = self.try_commit(ctx, key).await;
        if let Err(e) = &r {
            tracing::warn!(key, error = %e, "commit failed; upload aborted, previous version kept");
            self.abort(ctx).await;
        }
        r.map_err(|e| FsError::new(libc::EIO, format!("commit of {key:?} failed: {e}")))
    }

    async fn try_commit(&mut self, ctx: &Ctx, key: &str) -> FsResult<()> {
        self.load(ctx, u64::MAX).await?;
        if self.upload.is_none() && self.size <= self.layout.size_of(1) {
            let body = self.read(0, self.size as u32)?;
            ctx.store
                .put_object(&ctx.bucket, key, body, &self.meta)
                .await?;
            self.dirty = false;
            return Ok(());
        }
        let id = self.ensure_upload(ctx, key).await?;
        let last = self
            .layout
            .part_at(self.size - 1)
            .expect("size checked on write");
        let stale: Vec<u32> = self.parts.range(last + 1..).map(|(&n, _)| n).collect();
        for n in stale {
            if let Some(Part::InFlight(h, _)) = self.parts.remove(&n) {
                h.abort();
            }
        }
        for n in 1..=last {
            let again = match self.parts.remove(&n) {
                Some(Part::InFlight(h, d)) => {
                    let etag = h
                        .await
                        .map_err(|e| FsError::io(format!("part upload task: {e}")))??;
                    self.parts.insert(n, Part::Done(etag, d));
                    d
                }
                Some(Part::Done(etag, d)) => {
                    self.parts.insert(n, Part::Done(etag, d));
                    d
                }
                None => true,
            };
            if again || (n == last && self.layout.range(n).end != self.size) {
                let h = self.spawn_part(ctx, key, n).await?;
                self.parts.insert(n, Part::InFlight(h, false));
            }
        }
        let mut done = Vec::with_capacity(last as usize);
        for n in 1..=last {
            let etag = match self.parts.remove(&n) {
                Some(Part::InFlight(h, _)) => h
                    .await
                    .map_err(|e| FsError::io(format!("part upload task: {e}")))??,
                Some(Part::Done(etag, _)) => etag,
                None => unreachable!("every part was scheduled above"),
            };
            self.parts.insert(n, Part::Done(etag.clone(), false));
            done.push(CompletedPart {
                number: n as i32,
                etag,
            });
        }
        ctx.store
            .complete_multipart(&ctx.bucket, key, &id, &done)
            .await?;
        self.upload = None;
        self.parts.clear();
        self.dirty = false;
        Ok(())
    }

    /// Aborts the multipart upload in progress, if any (the data stays staged).
    pub async fn abort(&mut self, ctx: &Ctx) {
        for (_, p) in std::mem::take(&mut self.parts) {
            if let Part::InFlight(h, _) = p {
                h.abort();
            }
        }
        if let Some(u) = self.upload.take()
            && let Err(e) = ctx.store.abort_multipart(&ctx.bucket, &u.key, &u.id).await
        {
            tracing::warn!(key = %u.key, error = %e, "could not abort a multipart upload");
        }
    }
}
