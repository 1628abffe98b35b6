//! Copying one object to another key (rename, metadata updates): server-side
//! CopyObject where the store has it, else (Storj: no copy; or objects over
//! 5 GiB) a streamed copy through ranged GETs and a multipart upload. The size
//! of the copy is verified before the caller deletes the source.

use crate::store::{CompletedPart, ObjectInfo, StoreError, UserMetadata, limits};

use super::Ctx;
use super::error::{FsError, FsResult};
use super::write::PartLayout;

/// Copies `src` to `dst_key` with `meta`, then checks the copy's size.
pub async fn copy_object(
    ctx: &Ctx,
    src: &ObjectInfo,
    dst_key: &str,
    meta: &UserMetadata,
) -> FsResult<()> {
    let server = if src.size <= limits::MAX_PART_SIZE {
        ctx.store
            .copy_object(&ctx.bucket, &src.key, dst_key, meta)
            .await
    } else {
        Err(StoreError::Unsupported("CopyObject over 5 GiB".into()))
    };
    match server {
        Ok(()) => {}
        Err(StoreError::Unsupported(what)) => {
            tracing::debug!(%what, src = %src.key, "streamed copy");
            streamed_copy(ctx, src, dst_key, meta).await?;
        }
        Err(e) => return Err(e.into()),
    }
    let copied = ctx.store.head_object(&ctx.bucket, dst_key).await?;
    match copied {
        Some(o) if o.size == src.size => Ok(()),
        other => Err(FsError::io(format!(
            "copy of {:?} to {dst_key:?} has size {:?}, expected {}",
            src.key,
            other.map(|o| o.size),
            src.size
        ))),
    }
}

async fn streamed_copy(
    ctx: &Ctx,
    src: &ObjectInfo,
    dst_key: &str,
    meta: &UserMetadata,
) -> FsResult<()> {
    let layout = PartLayout::new(ctx.part_size);
    if src.size <= layout.size_of(1) {
        let body = ctx
            .store
            .get_range(&ctx.bucket, &src.key, 0..src.size)
            .await?;
        ctx.store
            .put_object(&ctx.bucket, dst_key, body, meta)
            .await?;
        return Ok(());
    }
    let id = ctx
        .store
        .create_multipart(&ctx.bucket, dst_key, meta)
        .await?;
    let r = async {
        let mut parts = Vec::new();
        let mut n = 1;
        loop {
            let range = layout.range(n);
            if range.start >= src.size {
                break;
            }
            let range = range.start..range.end.min(src.size);
            let _permit = ctx.budget.acquire(range.end - range.start).await;
            let data = ctx
                .store
                .get_range(&ctx.bucket, &src.key, range.clone())
                .await?;
            if data.len() as u64 != range.end - range.start {
                return Err(FsError::io("source changed size during a streamed copy"));
            }
            let etag = ctx
                .store
                .upload_part(&ctx.bucket, dst_key, &id, n as i32, data)
                .await?;
            parts.push(CompletedPart {
                number: n as i32,
                etag,
            });
            n += 1;
        }
        ctx.store
            .complete_multipart(&ctx.bucket, dst_key, &id, &parts)
            .await?;
        Ok(())
    }
    .await;
    if r.is_err() {
        let _ = ctx.store.abort_multipart(&ctx.bucket, dst_key, &id).await;
    }
    r
}
