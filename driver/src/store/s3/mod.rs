//! [`ObjectStore`] on aws-sdk-s3, for any S3-compatible endpoint.
//!
//! Built from explicit settings, never from the process environment (so
//! `AWS_*` variables of the host neither leak in nor break us), with
//! path-style addressing by default, a region string even when the store
//! ignores it, bounded retries with jittered backoff (the SDK's standard
//! mode), and a checksum policy that works on stores that reject the newer
//! checksum headers (see [`ChecksumPolicy`]).

mod config;
mod errors;
mod read;

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart as S3CompletedPart, Delete, MetadataDirective,
    ObjectIdentifier,
};
use bytes::Bytes;

use super::{
    BucketCreated, CompletedPart, ListPage, ObjectInfo, ObjectStore, PendingUpload, StoreError,
    StoreResult, UserMetadata,
};

pub use config::{ChecksumPolicy, S3Config};
use errors::{HttpStatus, etag_in_body, map_err};
use read::{BODY_ATTEMPTS, backoff};

/// The S3 implementation of [`ObjectStore`].
#[derive(Clone)]
pub struct S3Store {
    client: Client,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("S3Store")
    }
}

impl S3Store {
    /// Builds a client for `cfg`. Does no network I/O.
    pub fn new(cfg: &S3Config) -> Self {
        let creds = Credentials::new(
            cfg.access_key_id.clone(),
            cfg.secret_access_key.clone(),
            None,
            None,
            "dcs-csi",
        );
        let (req, resp) = match cfg.checksum {
            ChecksumPolicy::WhenRequired => (
                RequestChecksumCalculation::WhenRequired,
                ResponseChecksumValidation::WhenRequired,
            ),
            ChecksumPolicy::Always => (
                RequestChecksumCalculation::WhenSupported,
                ResponseChecksumValidation::WhenSupported,
            ),
        };
        let mut b = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(cfg.region.clone()))
            .credentials_provider(creds)
            .force_path_style(cfg.path_style)
            .request_checksum_calculation(req)
            .response_checksum_validation(resp)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(cfg.max_attempts.max(1))
                    .with_initial_backoff(Duration::from_millis(100))
                    .with_max_backoff(Duration::from_secs(5)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(120))
                    .operation_timeout(Duration::from_secs(600))
                    .build(),
            );
        if let Some(ep) = &cfg.endpoint {
            b = b.endpoint_url(ep.clone());
        }
        S3Store {
            client: Client::from_conf(b.build()),
        }
    }
}

fn to_system_time(t: Option<&aws_smithy_types::DateTime>) -> SystemTime {
    t.and_then(|d| SystemTime::try_from(*d).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

fn strip_quotes(s: Option<&str>) -> String {
    s.unwrap_or_default().trim_matches('"').to_string()
}

fn to_hash(m: &UserMetadata) -> Option<HashMap<String, String>> {
    (!m.is_empty()).then(|| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn create_bucket(&self, bucket: &str) -> StoreResult<BucketCreated> {
        match self.client.create_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(BucketCreated::Created),
            Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => {
                Ok(BucketCreated::AlreadyOwned)
            }
            Err(e) => Err(map_err(e, bucket)),
        }
    }

    async fn bucket_exists(&self, bucket: &str) -> StoreResult<bool> {
        match self.client.head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(true),
            Err(e) => match map_err(e, bucket) {
                StoreError::NoSuchKey(_) | StoreError::NoSuchBucket(_) => Ok(false),
                other => Err(other),
            },
        }
    }

    async fn delete_bucket(&self, bucket: &str) -> StoreResult<()> {
        self.client
            .delete_bucket()
            .bucket(bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| match map_err(e, bucket) {
                StoreError::NoSuchKey(b) => StoreError::NoSuchBucket(b),
                other => other,
            })
    }

    async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        continuation: Option<String>,
    ) -> StoreResult<ListPage> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_delimiter(delimiter.map(str::to_string))
            .set_continuation_token(continuation)
            .send()
            .await
            .map_err(|e| match map_err(e, bucket) {
                StoreError::NoSuchKey(b) => StoreError::NoSuchBucket(b),
                other => other,
            })?;
        let objects = out
            .contents()
            .iter()
            .filter_map(|o| {
                Some(ObjectInfo {
                    key: o.key()?.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    last_modified: to_system_time(o.last_modified()),
                    etag: strip_quotes(o.e_tag()),
                    metadata: UserMetadata::new(),
                })
            })
            .collect();
        let common_prefixes = out
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix().map(str::to_string))
            .collect();
        let next_token = if out.is_truncated() == Some(true) {
            out.next_continuation_token().map(str::to_string)
        } else {
            None
        };
        Ok(ListPage {
            objects,
            common_prefixes,
            next_token,
        })
    }

    async fn head_object(&self, bucket: &str, key: &str) -> StoreResult<Option<ObjectInfo>> {
        match self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => Ok(Some(ObjectInfo {
                key: key.to_string(),
                size: o.content_length().unwrap_or(0).max(0) as u64,
                last_modified: to_system_time(o.last_modified()),
                etag: strip_quotes(o.e_tag()),
                metadata: o
                    .metadata()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
            })),
            Err(e) => match map_err(e, key) {
                StoreError::NoSuchKey(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn get_range(&self, bucket: &str, key: &str, range: Range<u64>) -> StoreResult<Bytes> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        // The SDK retries a request whose response did not arrive, but not a body
        // cut short after the headers (a reset or truncation mid-stream): retry those here.
        let mut attempt = 0;
        loop {
            match self.get_range_once(bucket, key, &range).await {
                Err(StoreError::Unavailable(m)) if attempt + 1 < BODY_ATTEMPTS => {
                    attempt += 1;
                    tracing::debug!(key, attempt, error = %m, "ranged GET body failed; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        metadata: &UserMetadata,
    ) -> StoreResult<String> {
        let out = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .set_metadata(to_hash(metadata))
            .content_length(body.len() as i64)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| map_err(e, key))?;
        Ok(strip_quotes(out.e_tag()))
    }

    async fn copy_object(
        &self,
        bucket: &str,
        src_key: &str,
        dst_key: &str,
        metadata: &UserMetadata,
    ) -> StoreResult<()> {
        let source = format!("{bucket}/{}", encode_key(src_key));
        self.client
            .copy_object()
            .bucket(bucket)
            .key(dst_key)
            .copy_source(source)
            .metadata_directive(MetadataDirective::Replace)
            .set_metadata(to_hash(metadata))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_err(e, src_key))
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> StoreResult<()> {
        match self
            .client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match map_err(e, key) {
                StoreError::NoSuchKey(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn delete_objects(&self, bucket: &str, keys: &[String]) -> StoreResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let ids = keys
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Other(e.to_string()))?;
        let delete = Delete::builder()
            .set_objects(Some(ids))
            .quiet(true)
            .build()
            .map_err(|e| StoreError::Other(e.to_string()))?;
        let out = self
            .client
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| map_err(e, bucket))?;
        if let Some(err) = out.errors().iter().find(|e| e.code() != Some("NoSuchKey")) {
            return Err(StoreError::Other(format!(
                "deleting {:?}: {} {}",
                err.key().unwrap_or_default(),
                err.code().unwrap_or_default(),
                err.message().unwrap_or_default()
            )));
        }
        Ok(())
    }

    async fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        metadata: &UserMetadata,
    ) -> StoreResult<String> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .set_metadata(to_hash(metadata))
            .send()
            .await
            .map_err(|e| map_err(e, key))?;
        out.upload_id()
            .map(str::to_string)
            .ok_or_else(|| StoreError::Other("CreateMultipartUpload returned no upload id".into()))
    }

    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Bytes,
    ) -> StoreResult<String> {
        let out = self
            .client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .content_length(body.len() as i64)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| map_err(e, key))?;
        Ok(strip_quotes(out.e_tag()))
    }

    async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> StoreResult<String> {
        let parts = parts
            .iter()
            .map(|p| {
                S3CompletedPart::builder()
                    .part_number(p.number)
                    .e_tag(format!("\"{}\"", p.etag))
                    .build()
            })
            .collect();
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        match out {
            Ok(out) => Ok(strip_quotes(out.e_tag())),
            // moto 5.2 wraps a successful answer in a `CompleteMultipartUploadResponse`
            // root the SDK refuses; a 200 whose body carries an ETag (an error body
            // has none) is a completed upload.
            Err(SdkError::ServiceError(ctx))
                if ctx.raw().http_status() == 200
                    && etag_in_body(ctx.raw().body().bytes()).is_some() =>
            {
                Ok(etag_in_body(ctx.raw().body().bytes()).expect("checked"))
            }
            Err(e) => Err(map_err(e, key)),
        }
    }

    async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> StoreResult<()> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match map_err(e, key) {
                StoreError::NoSuchKey(_) => Ok(()),
                StoreError::Other(m) if m.starts_with("NoSuchUpload") => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> StoreResult<Vec<PendingUpload>> {
        let mut out = Vec::new();
        let (mut key_marker, mut id_marker) = (None, None);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| map_err(e, bucket))?;
            out.extend(page.uploads().iter().filter_map(|u| {
                Some(PendingUpload {
                    key: u.key()?.to_string(),
                    upload_id: u.upload_id()?.to_string(),
                })
            }));
            if page.is_truncated() != Some(true) {
                return Ok(out);
            }
            key_marker = page.next_key_marker().map(str::to_string);
            id_marker = page.next_upload_id_marker().map(str::to_string);
            if key_marker.is_none() {
                return Ok(out);
            }
        }
    }
}

/// Percent-encodes a key for `x-amz-copy-source`, keeping `/` and unreserved characters.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let cfg = S3Config {
            endpoint: Some("http://127.0.0.1:1".into()),
            region: "us-east-1".into(),
            access_key_id: "AKID".into(),
            secret_access_key: "very-secret-value".into(),
            path_style: true,
            checksum: ChecksumPolicy::WhenRequired,
            max_attempts: 1,
        };
        let s = format!("{cfg:?}");
        assert!(!s.contains("very-secret-value"), "{s}");
        assert!(s.contains("AKID"));
    }

    #[test]
    fn copy_source_keys_are_percent_encoded() {
        assert_eq!(encode_key("a b/c+d.txt"), "a%20b/c%2Bd.txt");
        assert_eq!(encode_key("é"), "%C3%A9");
    }
}
