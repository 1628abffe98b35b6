//! An in-memory [`ObjectStore`] for unit tests and property tests.
//!
//! It behaves like the strictest store we target: listings are paginated with a
//! small configurable page size and each page comes back in reverse order (as
//! unsorted as Storj's), non-empty buckets cannot be deleted, parts below the
//! minimum size are refused at completion. It can also be told to fail calls.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    BucketCreated, CompletedPart, ListPage, ObjectInfo, ObjectStore, PendingUpload, StoreError,
    StoreResult, UserMetadata, limits,
};

#[derive(Debug, Clone)]
struct Object {
    data: Bytes,
    metadata: UserMetadata,
    last_modified: SystemTime,
    etag: String,
}

#[derive(Debug, Default)]
struct Upload {
    key: String,
    metadata: UserMetadata,
    parts: BTreeMap<i32, (String, Bytes)>,
}

#[derive(Debug, Default)]
struct Bucket {
    objects: BTreeMap<String, Object>,
    uploads: HashMap<String, Upload>,
}

/// In-memory store. Cheap to create; share it with `Arc`.
#[derive(Debug)]
pub struct MemoryStore {
    buckets: Mutex<BTreeMap<String, Bucket>>,
    page_size: usize,
    max_buckets: usize,
    min_part_size: u64,
    copy_supported: bool,
    counter: AtomicU64,
    calls: AtomicU64,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A store with 1000-key pages, no bucket limit, 5 MiB minimum part size.
    pub fn new() -> Self {
        MemoryStore {
            buckets: Mutex::new(BTreeMap::new()),
            page_size: 1000,
            max_buckets: usize::MAX,
            min_part_size: limits::MIN_PART_SIZE,
            copy_supported: true,
            counter: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        }
    }

    /// Sets the listing page size (small values exercise pagination).
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.page_size = n.max(1);
        self
    }

    /// Refuses bucket creation beyond `n` buckets, like Storj's project limit.
    pub fn with_max_buckets(mut self, n: usize) -> Self {
        self.max_buckets = n;
        self
    }

    /// Sets the minimum size of non-final parts accepted at completion.
    pub fn with_min_part_size(mut self, n: u64) -> Self {
        self.min_part_size = n;
        self
    }

    /// Makes `copy_object` return [`StoreError::Unsupported`], like a store without CopyObject.
    pub fn without_copy(mut self) -> Self {
        self.copy_supported = false;
        self
    }

    /// Number of store calls served so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Names of the existing buckets.
    pub fn bucket_names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Keys of every object in `bucket` (sorted), or `None` if it does not exist.
    pub fn keys(&self, bucket: &str) -> Option<Vec<String>> {
        self.lock()
            .get(bucket)
            .map(|b| b.objects.keys().cloned().collect())
    }

    /// Content of one object, for assertions.
    pub fn object(&self, bucket: &str, key: &str) -> Option<Bytes> {
        self.lock()
            .get(bucket)
            .and_then(|b| b.objects.get(key))
            .map(|o| o.data.clone())
    }

    /// Number of incomplete multipart uploads in `bucket`.
    pub fn pending_uploads(&self, bucket: &str) -> usize {
        self.lock().get(bucket).map_or(0, |b| b.uploads.len())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Bucket>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn next_tag(&self) -> String {
        format!("{:032x}", self.counter.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn with_bucket<T>(
        &self,
        bucket: &str,
        f: impl FnOnce(&mut Bucket) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut buckets = self.lock();
        let b = buckets
            .get_mut(bucket)
            .ok_or_else(|| StoreError::NoSuchBucket(bucket.to_string()))?;
        f(b)
    }

    fn info(key: &str, o: &Object, with_meta: bool) -> ObjectInfo {
        ObjectInfo {
            key: key.to_string(),
            size: o.data.len() as u64,
            last_modified: o.last_modified,
            etag: o.etag.clone(),
            metadata: if with_meta {
                o.metadata.clone()
            } else {
                UserMetadata::new()
            },
        }
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    async fn create_bucket(&self, bucket: &str) -> StoreResult<BucketCreated> {
        let mut buckets = self.lock();
        if buckets.contains_key(bucket) {
            return Ok(BucketCreated::AlreadyOwned);
        }
        if buckets.len() >= self.max_buckets {
            return Err(StoreError::TooManyBuckets(format!(
                "limit of {} buckets reached",
                self.max_buckets
            )));
        }
        buckets.insert(bucket.to_string(), Bucket::default());
        Ok(BucketCreated::Created)
    }

    async fn bucket_exists(&self, bucket: &str) -> StoreResult<bool> {
        Ok(self.lock().contains_key(bucket))
    }

    async fn delete_bucket(&self, bucket: &str) -> StoreResult<()> {
        let mut buckets = self.lock();
        match buckets.get(bucket) {
            None => Err(StoreError::NoSuchBucket(bucket.to_string())),
            Some(b) if !b.objects.is_empty() => Err(StoreError::BucketNotEmpty(bucket.to_string())),
            Some(_) => {
                buckets.remove(bucket);
                Ok(())
            }
        }
    }

    async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        continuation: Option<String>,
    ) -> StoreResult<ListPage> {
        let page_size = self.page_size;
        self.with_bucket(bucket, |b| {
            // Entries in key order: (sort key, either an object or a common prefix).
            let mut entries: Vec<(String, Option<ObjectInfo>)> = Vec::new();
            for (key, o) in b.objects.range(prefix.to_string()..) {
                if !key.starts_with(prefix) {
                    break;
                }
                let rest = &key[prefix.len()..];
                match delimiter.and_then(|d| rest.find(d).map(|i| (d, i))) {
                    Some((d, i)) => {
                        let cp = format!("{prefix}{}", &rest[..i + d.len()]);
                        if entries.last().map(|(k, _)| k != &cp).unwrap_or(true) {
                            entries.push((cp, None));
                        }
                    }
                    None => entries.push((key.clone(), Some(Self::info(key, o, false)))),
                }
            }
            let start = match &continuation {
                Some(after) => entries.partition_point(|(k, _)| k <= after),
                None => 0,
            };
            let end = (start + page_size).min(entries.len());
            let next_token = (end < entries.len()).then(|| entries[end - 1].0.clone());
            let mut page = ListPage {
                next_token,
                ..Default::default()
            };
            // Reverse order inside the page: callers must not rely on sorting.
            for (k, o) in entries[start..end].iter().rev() {
                match o {
                    Some(info) => page.objects.push(info.clone()),
                    None => page.common_prefixes.push(k.clone()),
                }
            }
            Ok(page)
        })
    }

    async fn head_object(&self, bucket: &str, key: &str) -> StoreResult<Option<ObjectInfo>> {
        self.with_bucket(bucket, |b| {
            Ok(b.objects.get(key).map(|o| Self::info(key, o, true)))
        })
    }

    async fn get_range(&self, bucket: &str, key: &str, range: Range<u64>) -> StoreResult<Bytes> {
        self.with_bucket(bucket, |b| {
            let o = b
                .objects
                .get(key)
                .ok_or_else(|| StoreError::NoSuchKey(key.to_string()))?;
            let len = o.data.len() as u64;
            let start = range.start.min(len) as usize;
            let end = range.end.min(len) as usize;
            Ok(o.data.slice(start..end.max(start)))
        })
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        metadata: &UserMetadata,
    ) -> StoreResult<String> {
        let etag = self.next_tag();
        self.with_bucket(bucket, |b| {
            b.objects.insert(
                key.to_string(),
                Object {
                    data: body,
                    metadata: metadata.clone(),
                    last_modified: SystemTime::now(),
                    etag: etag.clone(),
                },
            );
            Ok(etag)
        })
    }

    async fn copy_object(
        &self,
        bucket: &str,
        src_key: &str,
        dst_key: &str,
        metadata: &UserMetadata,
    ) -> StoreResult<()> {
        if !self.copy_supported {
            return Err(StoreError::Unsupported("CopyObject".into()));
        }
        let etag = self.next_tag();
        self.with_bucket(bucket, |b| {
            let src = b
                .objects
                .get(src_key)
                .ok_or_else(|| StoreError::NoSuchKey(src_key.to_string()))?
                .clone();
            b.objects.insert(
                dst_key.to_string(),
                Object {
                    metadata: metadata.clone(),
                    last_modified: SystemTime::now(),
                    etag,
                    ..src
                },
            );
            Ok(())
        })
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> StoreResult<()> {
        self.with_bucket(bucket, |b| {
            b.objects.remove(key);
            Ok(())
        })
    }

    async fn delete_objects(&self, bucket: &str, keys: &[String]) -> StoreResult<()> {
        self.with_bucket(bucket, |b| {
            for k in keys {
                b.objects.remove(k);
            }
            Ok(())
        })
    }

    async fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        metadata: &UserMetadata,
    ) -> StoreResult<String> {
        let id = self.next_tag();
        self.with_bucket(bucket, |b| {
            b.uploads.insert(
                id.clone(),
                Upload {
                    key: key.to_string(),
                    metadata: metadata.clone(),
                    parts: BTreeMap::new(),
                },
            );
            Ok(id)
        })
    }

    async fn upload_part(
        &self,
        bucket: &str,
        _key: &str,
        upload_id: &str,
        number: i32,
        body: Bytes,
    ) -> StoreResult<String> {
        if !(1..=limits::MAX_PARTS as i32).contains(&number) {
            return Err(StoreError::Other(format!("invalid part number {number}")));
        }
        let etag = self.next_tag();
        self.with_bucket(bucket, |b| {
            let up = b
                .uploads
                .get_mut(upload_id)
                .ok_or_else(|| StoreError::Other(format!("no such upload {upload_id}")))?;
            up.parts.insert(number, (etag.clone(), body));
            Ok(etag)
        })
    }

    async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> StoreResult<String> {
        let min = self.min_part_size;
        let etag = self.next_tag();
        self.with_bucket(bucket, |b| {
            let up = b
                .uploads
                .get(upload_id)
                .ok_or_else(|| StoreError::Other(format!("no such upload {upload_id}")))?;
            if up.key != key {
                return Err(StoreError::Other("upload key mismatch".into()));
            }
            let mut data = Vec::new();
            let mut last = 0;
            for (i, p) in parts.iter().enumerate() {
                if p.number <= last {
                    return Err(StoreError::Other("parts not in ascending order".into()));
                }
                last = p.number;
                let (etag, body) = up
                    .parts
                    .get(&p.number)
                    .ok_or_else(|| StoreError::Other(format!("part {} missing", p.number)))?;
                if etag != &p.etag {
                    return Err(StoreError::Other(format!(
                        "part {} etag mismatch",
                        p.number
                    )));
                }
                if i + 1 < parts.len() && (body.len() as u64) < min {
                    return Err(StoreError::Other(format!(
                        "part {} smaller than the minimum part size",
                        p.number
                    )));
                }
                data.extend_from_slice(body);
            }
            let up = b.uploads.remove(upload_id).expect("checked above");
            b.objects.insert(
                key.to_string(),
                Object {
                    data: Bytes::from(data),
                    metadata: up.metadata,
                    last_modified: SystemTime::now(),
                    etag: etag.clone(),
                },
            );
            Ok(etag)
        })
    }

    async fn abort_multipart(&self, bucket: &str, _key: &str, upload_id: &str) -> StoreResult<()> {
        self.with_bucket(bucket, |b| {
            b.uploads.remove(upload_id);
            Ok(())
        })
    }

    async fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> StoreResult<Vec<PendingUpload>> {
        self.with_bucket(bucket, |b| {
            Ok(b.uploads
                .iter()
                .filter(|(_, u)| u.key.starts_with(prefix))
                .map(|(id, u)| PendingUpload {
                    key: u.key.clone(),
                    upload_id: id.clone(),
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::list_all;

    #[tokio::test]
    async fn listing_paginates_and_groups_by_delimiter() {
        let s = MemoryStore::new().with_page_size(2);
        s.create_bucket("b").await.unwrap();
        for k in ["a/1", "a/2", "b", "c/x/y", "d"] {
            s.put_object("b", k, Bytes::from_static(b"x"), &UserMetadata::new())
                .await
                .unwrap();
        }
        let mut names = Vec::new();
        let mut token = None;
        loop {
            let p = s.list_page("b", "", Some("/"), token).await.unwrap();
            names.extend(p.objects.into_iter().map(|o| o.key));
            names.extend(p.common_prefixes);
            token = p.next_token;
            if token.is_none() {
                break;
            }
        }
        names.sort();
        assert_eq!(names, ["a/", "b", "c/", "d"]);
        assert_eq!(list_all(&s, "b", "a/").await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn multipart_enforces_min_part_size() {
        let s = MemoryStore::new().with_min_part_size(4);
        s.create_bucket("b").await.unwrap();
        let id = s
            .create_multipart("b", "k", &UserMetadata::new())
            .await
            .unwrap();
        let e1 = s
            .upload_part("b", "k", &id, 1, Bytes::from_static(b"ab"))
            .await
            .unwrap();
        let e2 = s
            .upload_part("b", "k", &id, 2, Bytes::from_static(b"cd"))
            .await
            .unwrap();
        let parts = [
            CompletedPart {
                number: 1,
                etag: e1,
            },
            CompletedPart {
                number: 2,
                etag: e2,
            },
        ];
        assert!(s.complete_multipart("b", "k", &id, &parts).await.is_err());
        let e1 = s
            .upload_part("b", "k", &id, 1, Bytes::from_static(b"abcd"))
            .await
            .unwrap();
        let parts = [
            CompletedPart {
                number: 1,
                etag: e1,
            },
            parts[1].clone(),
        ];
        s.complete_multipart("b", "k", &id, &parts).await.unwrap();
        assert_eq!(s.object("b", "k").unwrap(), Bytes::from_static(b"abcdcd"));
        assert_eq!(s.pending_uploads("b"), 0);
    }
}
