//! The object-store layer: the one interface the controller and the filesystem
//! use to reach a bucket, with an S3 implementation ([`s3::S3Store`]) and an
//! in-memory one ([`memory::MemoryStore`]) for unit tests.
//!
//! The trait speaks only core S3 concepts (buckets, keys, ranged reads,
//! multipart uploads, delimiter listings) so it maps onto every S3-compatible
//! store we target: Storj's gateway, Garage, Filebase, MinIO, Ceph, AWS.
//! Nothing above this layer may assume listings come back sorted.

pub mod error;
pub mod memory;
pub mod s3;

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

pub use error::StoreError;

/// Result type of every store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// User metadata attached to an object (`x-amz-meta-*` without the prefix).
pub type UserMetadata = BTreeMap<String, String>;

/// What a HEAD (or a listing) tells about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Full key of the object.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last-modified time reported by the store.
    pub last_modified: SystemTime,
    /// ETag as reported by the store (quotes stripped).
    pub etag: String,
    /// User metadata; only filled by [`ObjectStore::head_object`], empty in listings.
    pub metadata: UserMetadata,
}

/// One page of a `ListObjectsV2` call.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    /// Objects directly matched (under the delimiter, if one was given). Unordered.
    pub objects: Vec<ObjectInfo>,
    /// Common prefixes (each ends with the delimiter). Unordered.
    pub common_prefixes: Vec<String>,
    /// Token for the next page, `None` on the last page.
    pub next_token: Option<String>,
}

/// An incomplete multipart upload found by [`ObjectStore::list_multipart_uploads`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    /// Key the upload targets.
    pub key: String,
    /// Upload id to abort it with.
    pub upload_id: String,
}

/// A completed part of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    /// Part number, 1..=10000.
    pub number: i32,
    /// ETag returned by `UploadPart`.
    pub etag: String,
}

/// Outcome of [`ObjectStore::create_bucket`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketCreated {
    /// The bucket did not exist and was created.
    Created,
    /// The bucket already existed and belongs to these credentials.
    AlreadyOwned,
}

/// S3 limits that shape multipart uploads.
pub mod limits {
    /// Smallest part size every target store accepts (Storj and AWS: 5 MiB).
    pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
    /// Largest part size S3 allows.
    pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
    /// Largest number of parts in one upload.
    pub const MAX_PARTS: u32 = 10_000;
    /// Largest object S3 allows (5 TiB).
    pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024 * 1024;
    /// Most keys one `DeleteObjects` call may carry.
    pub const MAX_DELETE_BATCH: usize = 1000;
}

/// The operations dcs-csi needs from an S3-compatible store.
///
/// Implementations must be cheap to share (`Arc<dyn ObjectStore>`); every call
/// is independent and may run concurrently with others.
#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Creates `bucket`; an existing bucket owned by us is not an error.
    async fn create_bucket(&self, bucket: &str) -> StoreResult<BucketCreated>;

    /// Whether `bucket` exists and is reachable with our credentials.
    async fn bucket_exists(&self, bucket: &str) -> StoreResult<bool>;

    /// Deletes an empty bucket. `NoSuchBucket` and `BucketNotEmpty` are reported as such.
    async fn delete_bucket(&self, bucket: &str) -> StoreResult<()>;

    /// One page of ListObjectsV2 under `prefix`, grouped by `delimiter` when given.
    async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        continuation: Option<String>,
    ) -> StoreResult<ListPage>;

    /// HEAD of an object; `Ok(None)` when it does not exist.
    async fn head_object(&self, bucket: &str, key: &str) -> StoreResult<Option<ObjectInfo>>;

    /// Reads `range` of an object (clamped to its size by the store).
    async fn get_range(&self, bucket: &str, key: &str, range: Range<u64>) -> StoreResult<Bytes>;

    /// Stores a whole object in one request; returns its ETag.
    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        metadata: &UserMetadata,
    ) -> StoreResult<String>;

    /// Server-side copy of a whole object, replacing its metadata with `metadata`.
    /// Stores without CopyObject return [`StoreError::Unsupported`]; callers fall back
    /// to a streamed copy.
    async fn copy_object(
        &self,
        bucket: &str,
        src_key: &str,
        dst_key: &str,
        metadata: &UserMetadata,
    ) -> StoreResult<()>;

    /// Deletes one object; deleting a missing key is not an error.
    async fn delete_object(&self, bucket: &str, key: &str) -> StoreResult<()>;

    /// Deletes up to [`limits::MAX_DELETE_BATCH`] keys; missing keys are not an error.
    async fn delete_objects(&self, bucket: &str, keys: &[String]) -> StoreResult<()>;

    /// Starts a multipart upload; returns its upload id.
    async fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        metadata: &UserMetadata,
    ) -> StoreResult<String>;

    /// Uploads (or re-uploads) one part; returns its ETag.
    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Bytes,
    ) -> StoreResult<String>;

    /// Completes a multipart upload from its parts, in ascending part order.
    async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> StoreResult<String>;

    /// Aborts a multipart upload; an unknown upload is not an error.
    async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> StoreResult<()>;

    /// Incomplete multipart uploads under `prefix` (all pages).
    async fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> StoreResult<Vec<PendingUpload>>;
}

/// Lists every object under `prefix` (all pages, no delimiter). Unordered.
pub async fn list_all(
    store: &dyn ObjectStore,
    bucket: &str,
    prefix: &str,
) -> StoreResult<Vec<ObjectInfo>> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = store.list_page(bucket, prefix, None, token).await?;
        out.extend(page.objects);
        match page.next_token {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}
