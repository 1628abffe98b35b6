//! Volume provisioning: what CreateVolume and DeleteVolume do on the store,
//! independent of gRPC. Below the CSI services, above the store.
//!
//! - Bucket-per-volume: the bucket is derived from the volume name
//!   ([`naming::bucket_for_volume`]) and created; the volume is the whole bucket.
//! - Shared bucket: the volume is `<bucket>/[<prefix>/]<name>/` in an existing bucket.
//!
//! Both write a [`marker`] at the volume root, which makes creation idempotent
//! and deletion safe: DeleteVolume removes only volumes that carry it.

pub mod error;
pub mod marker;

use std::collections::BTreeMap;

pub use error::VolumeError;
use tracing::{info, warn};

use crate::config::naming;
use crate::config::params::{Placement, VolumeParams};
use crate::config::volume_id::{MAX_VOLUME_ID_LEN, VolumeId};
use crate::store::{BucketCreated, ObjectStore, StoreError, limits};
use marker::Marker;

/// Capacity asked for by the CO, in bytes (0: not given).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capacity {
    /// `required_bytes`.
    pub required: i64,
    /// `limit_bytes`.
    pub limit: i64,
}

impl Capacity {
    /// Checks the range; the capacity we grant is `required`, else `limit`, else 0.
    pub fn grant(&self) -> Result<i64, VolumeError> {
        if self.required < 0 || self.limit < 0 {
            return Err(VolumeError::invalid(
                "capacity_range",
                "bytes must not be negative",
            ));
        }
        if self.limit > 0 && self.required > self.limit {
            return Err(VolumeError::invalid(
                "capacity_range",
                "required_bytes is larger than limit_bytes",
            ));
        }
        Ok(if self.required > 0 {
            self.required
        } else {
            self.limit
        })
    }

    /// Whether an existing volume of `capacity` bytes satisfies this request.
    pub fn satisfied_by(&self, capacity: i64) -> bool {
        (self.required == 0 || capacity >= self.required)
            && (self.limit == 0 || capacity <= self.limit)
    }
}

/// A provisioned volume, as CreateVolume returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Where the data lives.
    pub id: VolumeId,
    /// Capacity granted (0: unspecified; object stores have no fixed size).
    pub capacity_bytes: i64,
    /// Non-secret options the node needs (filesystem options).
    pub context: BTreeMap<String, String>,
}

/// Where a volume named `name` with `params` lives.
pub fn volume_id_for(name: &str, params: &VolumeParams) -> Result<VolumeId, VolumeError> {
    let id = match &params.placement {
        Placement::BucketPerVolume { bucket_prefix, .. } => VolumeId {
            bucket: naming::bucket_for_volume(bucket_prefix, name),
            prefix: String::new(),
        },
        Placement::SharedBucket { bucket, prefix } => {
            let seg = naming::segment_for_volume(name);
            VolumeId {
                bucket: bucket.clone(),
                prefix: if prefix.is_empty() {
                    seg
                } else {
                    format!("{prefix}/{seg}")
                },
            }
        }
    };
    if id.to_string().len() > MAX_VOLUME_ID_LEN {
        return Err(VolumeError::invalid(
            "parameters.prefix",
            format!("the volume id would exceed {MAX_VOLUME_ID_LEN} bytes; use a shorter prefix"),
        ));
    }
    Ok(id)
}

/// The id of volume `name` as a prefix of a shared bucket.
fn shared_id(bucket: &str, prefix: &str, name: &str) -> VolumeId {
    let seg = naming::segment_for_volume(name);
    VolumeId {
        bucket: bucket.to_string(),
        prefix: if prefix.is_empty() {
            seg
        } else {
            format!("{prefix}/{seg}")
        },
    }
}

async fn require_bucket(store: &dyn ObjectStore, bucket: &str) -> Result<(), VolumeError> {
    if store.bucket_exists(bucket).await? {
        Ok(())
    } else {
        Err(VolumeError::FailedPrecondition(format!(
            "shared bucket {bucket:?} does not exist; create it first"
        )))
    }
}

/// Creates (or finds, when it already exists compatibly) the volume `name`.
pub async fn create(
    store: &dyn ObjectStore,
    name: &str,
    params: &VolumeParams,
    capacity: Capacity,
) -> Result<Volume, VolumeError> {
    let granted = capacity.grant()?;
    let id = volume_id_for(name, params)?;
    let fingerprint = params.fingerprint();
    let context = params.fs.to_context();

    // "Created" is not proof that the bucket is new: in us-east-1, S3 (and moto)
    // answer 200 to CreateBucket of a bucket we already own. Always look for a marker.
    let id = match &params.placement {
        Placement::BucketPerVolume {
            fallback_bucket, ..
        } => {
            // A volume that fell back to the shared bucket earlier stays there.
            let fallback = fallback_bucket.as_ref().map(|b| shared_id(b, "", name));
            if let Some(f) = &fallback
                && marker::read(store, f).await?.is_some()
            {
                f.clone()
            } else {
                match store.create_bucket(&id.bucket).await {
                    Ok(BucketCreated::Created | BucketCreated::AlreadyOwned) => id,
                    Err(StoreError::BucketNameTaken(b)) => {
                        return Err(VolumeError::AlreadyExists(format!(
                            "bucket {b:?} belongs to another account; set bucketPrefix to choose other names"
                        )));
                    }
                    Err(StoreError::TooManyBuckets(m)) => match fallback {
                        Some(f) => {
                            warn!(volume = name, bucket = %id.bucket, fallback = %f, reason = %m,
                                "the store refuses more buckets; creating the volume as a prefix of the fallback bucket");
                            require_bucket(store, &f.bucket).await?;
                            f
                        }
                        None => {
                            return Err(VolumeError::ResourceExhausted(format!(
                                "cannot create bucket {:?}: {m}; set the fallbackBucket parameter or use shared-bucket mode (parameter bucket)",
                                id.bucket
                            )));
                        }
                    },
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Placement::SharedBucket { bucket, .. } => {
            require_bucket(store, bucket).await?;
            id
        }
    };

    {
        if let Some(existing) = marker::read(store, &id).await? {
            if existing.name != name {
                return Err(VolumeError::AlreadyExists(format!(
                    "{id} already holds volume {:?}",
                    existing.name
                )));
            }
            if existing.parameters != fingerprint {
                return Err(VolumeError::AlreadyExists(format!(
                    "volume {name:?} exists with other parameters"
                )));
            }
            if !capacity.satisfied_by(existing.capacity_bytes) {
                return Err(VolumeError::AlreadyExists(format!(
                    "volume {name:?} exists with capacity {} bytes, outside the requested range",
                    existing.capacity_bytes
                )));
            }
            return Ok(Volume {
                id,
                capacity_bytes: existing.capacity_bytes,
                context,
            });
        }
        // No marker: only an empty bucket/prefix may become the volume (a crash
        // between creating the bucket and writing the marker leaves it empty).
        let page = store
            .list_page(&id.bucket, &id.key_prefix(), None, None)
            .await?;
        if !page.objects.is_empty() {
            return Err(VolumeError::AlreadyExists(format!(
                "{id} already holds data that is not a dcs-csi volume; refusing to take it over"
            )));
        }
    }

    let m = Marker {
        version: 1,
        name: name.to_string(),
        capacity_bytes: granted,
        parameters: fingerprint,
        claim: params.claim.clone(),
    };
    marker::write(store, &id, &m).await?;
    info!(volume = %id, name, pvc = ?params.claim.pvc_name, namespace = ?params.claim.pvc_namespace, "volume created");
    Ok(Volume {
        id,
        capacity_bytes: granted,
        context,
    })
}

/// Listing-and-deleting passes before DeleteVolume gives up (and the CO retries).
const DELETE_PASSES: u32 = 5;

/// What [`delete`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// The volume's objects (and its bucket, in bucket mode) are gone; this many objects.
    Removed(u64),
    /// Nothing to do: the volume (or its bucket) does not exist.
    NotFound,
    /// The location holds data without a dcs-csi marker (e.g. a static PV): left intact.
    KeptForeignData,
}

/// Deletes volume `id`: every object and incomplete upload under it, the
/// marker last (so an interrupted delete can be retried), then the bucket in
/// bucket mode. Idempotent.
pub async fn delete(store: &dyn ObjectStore, id: &VolumeId) -> Result<Deleted, VolumeError> {
    if marker::read(store, id).await?.is_none() {
        let objects = match store
            .list_page(&id.bucket, &id.key_prefix(), None, None)
            .await
        {
            Ok(p) => p.objects.len(),
            Err(StoreError::NoSuchBucket(_)) => return Ok(Deleted::NotFound),
            Err(e) => return Err(e.into()),
        };
        if objects > 0 {
            warn!(volume = %id, "volume has no dcs-csi marker; its data is left in place");
            return Ok(Deleted::KeptForeignData);
        }
        if id.is_whole_bucket() {
            delete_bucket(store, &id.bucket).await?;
        }
        return Ok(Deleted::NotFound);
    }
    let prefix = id.key_prefix();
    let marker_key = marker::marker_key(id);
    abort_uploads(store, &id.bucket, &prefix).await?;
    // Page by page (memory stays bounded), then list again: a store may
    // acknowledge deletes it has not applied yet. A bounded number of passes.
    let mut removed = 0u64;
    let mut pass = 0;
    loop {
        let mut deleted_this_pass = 0u64;
        let mut token = None;
        loop {
            let page = store.list_page(&id.bucket, &prefix, None, token).await?;
            let keys: Vec<String> = page
                .objects
                .into_iter()
                .map(|o| o.key)
                .filter(|k| *k != marker_key)
                .collect();
            for chunk in keys.chunks(limits::MAX_DELETE_BATCH) {
                store.delete_objects(&id.bucket, chunk).await?;
                deleted_this_pass += chunk.len() as u64;
            }
            token = page.next_token;
            if token.is_none() {
                break;
            }
        }
        removed += deleted_this_pass;
        if deleted_this_pass == 0 {
            break;
        }
        pass += 1;
        if pass >= DELETE_PASSES {
            return Err(StoreError::Unavailable(format!(
                "objects still listed under {id} after {DELETE_PASSES} deletion passes; retry later"
            ))
            .into());
        }
    }
    store.delete_object(&id.bucket, &marker_key).await?;
    if id.is_whole_bucket() {
        delete_bucket(store, &id.bucket).await?;
    } else if !store
        .list_page(&id.bucket, &prefix, None, None)
        .await?
        .objects
        .is_empty()
    {
        return Err(StoreError::Other(format!("objects remain under {id} after deletion")).into());
    }
    info!(volume = %id, objects = removed, "volume deleted");
    Ok(Deleted::Removed(removed))
}

/// Aborts incomplete multipart uploads under `prefix`. A store that cannot list
/// them (s3s-fs, some gateways) is logged and skipped: it has none we can see.
async fn abort_uploads(
    store: &dyn ObjectStore,
    bucket: &str,
    prefix: &str,
) -> Result<(), VolumeError> {
    let uploads = match store.list_multipart_uploads(bucket, prefix).await {
        Ok(u) => u,
        Err(StoreError::Unsupported(m)) => {
            warn!(bucket, %m, "the store cannot list multipart uploads; skipping their cleanup");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    for upload in uploads {
        store
            .abort_multipart(bucket, &upload.key, &upload.upload_id)
            .await?;
    }
    Ok(())
}

async fn delete_bucket(store: &dyn ObjectStore, bucket: &str) -> Result<(), VolumeError> {
    match store.delete_bucket(bucket).await {
        Ok(()) | Err(StoreError::NoSuchBucket(_)) => Ok(()),
        Err(StoreError::BucketNotEmpty(b)) => Err(StoreError::Unavailable(format!(
            "bucket {b:?} still lists objects after they were deleted; retry later"
        ))
        .into()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests;
