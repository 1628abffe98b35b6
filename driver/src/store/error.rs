//! The store layer's error enum. The CSI layer maps it to gRPC status codes
//! (`csi::status`), the filesystem maps it to errno (`fs::error`): one place each.
//! Messages never contain credentials.

use thiserror::Error;

/// Why a store call failed, in terms the layers above can act on.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The bucket does not exist.
    #[error("bucket {0:?} does not exist")]
    NoSuchBucket(String),
    /// The object does not exist.
    #[error("object {0:?} does not exist")]
    NoSuchKey(String),
    /// DeleteBucket on a bucket that still holds objects.
    #[error("bucket {0:?} is not empty")]
    BucketNotEmpty(String),
    /// The bucket name is taken by another account.
    #[error("bucket name {0:?} is already taken by another account")]
    BucketNameTaken(String),
    /// The store refuses more buckets (Storj: 100 per project by default).
    #[error("the store refuses to create more buckets: {0}")]
    TooManyBuckets(String),
    /// The bucket name is not valid for this store.
    #[error("invalid bucket name {0:?}")]
    InvalidBucketName(String),
    /// Credentials were rejected (bad key, bad signature, no permission).
    #[error("access denied by the store: {0}")]
    AccessDenied(String),
    /// The store does not implement this call; the caller should use a fallback.
    #[error("the store does not support {0}")]
    Unsupported(String),
    /// A temporary failure (throttling, 5xx, timeout, reset) that survived retries.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// Anything else the store reported.
    #[error("store error: {0}")]
    Other(String),
}

impl StoreError {
    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}
