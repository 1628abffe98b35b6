//! Ranged reads: one GET per call, and the retry of bodies cut short after
//! the headers (resets, truncation), which the SDK's own retries do not cover.

use std::ops::Range;
use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata;
use bytes::Bytes;

use super::S3Store;
use super::errors::map_err;
use crate::store::{StoreError, StoreResult};

/// Attempts of a ranged GET whose body fails mid-stream.
pub(super) const BODY_ATTEMPTS: u32 = 5;

/// Exponential backoff with full jitter: up to 100 ms × 2^attempt, at most 5 s.
pub(super) fn backoff(attempt: u32) -> Duration {
    use rand::Rng;
    let cap = (100u64 << attempt.min(6)).min(5_000);
    Duration::from_millis(rand::rng().random_range(cap / 2..=cap))
}

impl S3Store {
    pub(super) async fn get_range_once(
        &self,
        bucket: &str,
        key: &str,
        range: &Range<u64>,
    ) -> StoreResult<Bytes> {
        let resp = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await;
        let out = match resp {
            Ok(o) => o,
            Err(e) if e.code() == Some("InvalidRange") => return Ok(Bytes::new()),
            Err(e) => return Err(map_err(e, key)),
        };
        let want = (range.end - range.start) as usize;
        let announced = out.content_length().map(|l| l.max(0) as usize);
        let data = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Unavailable(format!("reading {key:?}: {e}")))?
            .into_bytes();
        if let Some(len) = announced
            && data.len() < len
        {
            return Err(StoreError::Unavailable(format!(
                "reading {key:?}: body cut short ({} of {len} bytes)",
                data.len()
            )));
        }
        if data.len() > want {
            // A store that ignored the Range header: keep only what was asked for.
            return Ok(data.slice(0..want));
        }
        Ok(data)
    }
}
