//! A store wrapper for tests that fails commits (PutObject,
//! CompleteMultipartUpload) on demand, to check failure handling.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use crate::store::memory::MemoryStore;
use crate::store::*;

/// A MemoryStore that fails CompleteMultipartUpload and PutObject on demand.
pub struct Flaky {
    pub inner: MemoryStore,
    pub fail_commit: AtomicBool,
}

#[async_trait]
impl ObjectStore for Flaky {
    async fn create_bucket(&self, b: &str) -> StoreResult<BucketCreated> {
        self.inner.create_bucket(b).await
    }
    async fn bucket_exists(&self, b: &str) -> StoreResult<bool> {
        self.inner.bucket_exists(b).await
    }
    async fn delete_bucket(&self, b: &str) -> StoreResult<()> {
        self.inner.delete_bucket(b).await
    }
    async fn list_page(
        &self,
        b: &str,
        p: &str,
        d: Option<&str>,
        c: Option<String>,
    ) -> StoreResult<ListPage> {
        self.inner.list_page(b, p, d, c).await
    }
    async fn head_object(&self, b: &str, k: &str) -> StoreResult<Option<ObjectInfo>> {
        self.inner.head_object(b, k).await
    }
    async fn get_range(&self, b: &str, k: &str, r: Range<u64>) -> StoreResult<Bytes> {
        self.inner.get_range(b, k, r).await
    }
    async fn put_object(
        &self,
        b: &str,
        k: &str,
        body: Bytes,
        m: &UserMetadata,
    ) -> StoreResult<String> {
        if self.fail_commit.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable("injected".into()));
        }
        self.inner.put_object(b, k, body, m).await
    }
    async fn copy_object(&self, b: &str, s: &str, d: &str, m: &UserMetadata) -> StoreResult<()> {
        self.inner.copy_object(b, s, d, m).await
    }
    async fn delete_object(&self, b: &str, k: &str) -> StoreResult<()> {
        self.inner.delete_object(b, k).await
    }
    async fn delete_objects(&self, b: &str, k: &[String]) -> StoreResult<()> {
        self.inner.delete_objects(b, k).await
    }
    async fn create_multipart(&self, b: &str, k: &str, m: &UserMetadata) -> StoreResult<String> {
        self.inner.create_multipart(b, k, m).await
    }
    async fn upload_part(
        &self,
        b: &str,
        k: &str,
        u: &str,
        n: i32,
        body: Bytes,
    ) -> StoreResult<String> {
        self.inner.upload_part(b, k, u, n, body).await
    }
    async fn complete_multipart(
        &self,
        b: &str,
        k: &str,
        u: &str,
        p: &[CompletedPart],
    ) -> StoreResult<String> {
        if self.fail_commit.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable("injected".into()));
        }
        self.inner.complete_multipart(b, k, u, p).await
    }
    async fn abort_multipart(&self, b: &str, k: &str, u: &str) -> StoreResult<()> {
        self.inner.abort_multipart(b, k, u).await
    }
    async fn list_multipart_uploads(&self, b: &str, p: &str) -> StoreResult<Vec<PendingUpload>> {
        self.inner.list_multipart_uploads(b, p).await
    }
}
