//! Read handles: ranged GETs with sequential-read detection. A handle that
//! reads sequentially keeps a window of prefetched chunks (8 MiB each) in
//! flight in parallel, growing from one chunk to [`MAX_WINDOW`]; each chunk
//! holds memory-budget permits while it lives, and prefetch only happens when
//! the budget has room. A random read fetches only a small range around it.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;

use super::Ctx;
use super::error::{FsError, FsResult};

/// Size of one prefetch chunk.
pub const CHUNK: u64 = 8 * 1024 * 1024;
/// Most chunks in flight per handle.
pub const MAX_WINDOW: usize = 8;
/// Smallest range a random read fetches.
pub const RANDOM_READ: u64 = 256 * 1024;

#[derive(Debug)]
enum Data {
    Pending(JoinHandle<FsResult<Bytes>>),
    Ready(Bytes),
}

#[derive(Debug)]
struct Chunk {
    start: u64,
    end: u64,
    data: Data,
    _permit: Option<OwnedSemaphorePermit>,
}

/// Read state of one open handle on a committed object.
#[derive(Debug)]
pub struct Reader {
    key: String,
    size: u64,
    next: u64,
    window: usize,
    chunks: VecDeque<Chunk>,
}

impl Reader {
    /// A reader of `size` bytes of object `key`.
    pub fn new(key: String, size: u64) -> Self {
        Reader {
            key,
            size,
            next: 0,
            window: 1,
            chunks: VecDeque::new(),
        }
    }

    fn spawn(ctx: &Ctx, key: &str, start: u64, end: u64) -> Data {
        let (store, bucket, key) = (ctx.store.clone(), ctx.bucket.clone(), key.to_string());
        Data::Pending(tokio::spawn(async move {
            store
                .get_range(&bucket, &key, start..end)
                .await
                .map_err(FsError::from)
        }))
    }

    /// Reads up to `len` bytes at `offset`.
    pub async fn read(&mut self, ctx: &Ctx, offset: u64, len: u32) -> FsResult<Bytes> {
        if offset >= self.size || len == 0 {
            return Ok(Bytes::new());
        }
        let end = (offset + len as u64).min(self.size);
        let covered = self
            .chunks
            .iter()
            .any(|c| c.start <= offset && offset < c.end);
        let near = offset >= self.next.saturating_sub(CHUNK) && offset <= self.next + CHUNK;
        let sequential = covered || near;
        self.next = end;
        while self.chunks.front().is_some_and(|c| c.end <= offset) {
            self.chunks.pop_front();
            self.window = (self.window * 2).min(MAX_WINDOW);
        }
        if !covered {
            self.chunks.clear();
        }
        if sequential {
            self.fill(ctx, offset, end);
        } else {
            self.window = 1;
            let stop = (offset + RANDOM_READ).max(end).min(self.size);
            let data = Self::spawn(ctx, &self.key, offset, stop);
            self.chunks.push_back(Chunk {
                start: offset,
                end: stop,
                data,
                _permit: None,
            });
        }
        self.collect(offset, end).await
    }

    fn fill(&mut self, ctx: &Ctx, offset: u64, end: u64) {
        loop {
            let start = self.chunks.back().map_or(offset, |c| c.end);
            let needed = start < end;
            if start >= self.size || (!needed && self.chunks.len() >= self.window) {
                break;
            }
            let stop = (start + CHUNK).min(self.size);
            let permit = ctx.budget.try_acquire(stop - start);
            if permit.is_none() && !needed {
                break;
            }
            let data = Self::spawn(ctx, &self.key, start, stop);
            self.chunks.push_back(Chunk {
                start,
                end: stop,
                data,
                _permit: permit,
            });
        }
    }

    async fn collect(&mut self, offset: u64, end: u64) -> FsResult<Bytes> {
        let mut out = BytesMut::new();
        for c in self.chunks.iter_mut() {
            if c.end <= offset || c.start >= end {
                continue;
            }
            if let Data::Pending(h) = &mut c.data {
                let r = h
                    .await
                    .map_err(|e| FsError::io(format!("read task: {e}")))
                    .and_then(|r| r);
                match r {
                    Ok(b) => c.data = Data::Ready(b),
                    Err(e) => {
                        self.chunks.clear();
                        return Err(e);
                    }
                }
            }
            let Data::Ready(b) = &c.data else {
                unreachable!("awaited above")
            };
            let from = (offset.max(c.start) - c.start) as usize;
            let to = ((end.min(c.end) - c.start) as usize).min(b.len());
            if from < to {
                out.extend_from_slice(&b[from..to]);
            }
            if (b.len() as u64) < c.end - c.start {
                break;
            }
        }
        Ok(out.freeze())
    }
}
