//! The volume marker: a small JSON object at the root of every volume we
//! create, recording what it was created with. It makes CreateVolume
//! idempotent (same name → same volume, incompatible request → ALREADY_EXISTS)
//! and keeps DeleteVolume from deleting data that is not a dcs-csi volume.
//! The filesystem hides it from the mount.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::config::naming::VOLUME_MARKER;
use crate::config::params::ClaimRef;
use crate::config::volume_id::VolumeId;
use crate::store::{ObjectStore, StoreError, StoreResult, UserMetadata};

/// Content of the marker object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// Format version of this record.
    pub version: u32,
    /// The CO's volume name (CreateVolumeRequest.name).
    pub name: String,
    /// Capacity granted, in bytes (0: unspecified).
    pub capacity_bytes: i64,
    /// Canonical parameters the volume was created with.
    pub parameters: BTreeMap<String, String>,
    /// PVC/PV names, when known.
    #[serde(default)]
    pub claim: ClaimRef,
}

/// Key of the marker object of `id`.
pub fn marker_key(id: &VolumeId) -> String {
    format!("{}{VOLUME_MARKER}", id.key_prefix())
}

/// Reads the marker of `id`; `Ok(None)` when there is none (or the bucket is gone).
pub async fn read(store: &dyn ObjectStore, id: &VolumeId) -> StoreResult<Option<Marker>> {
    let key = marker_key(id);
    match store.get_range(&id.bucket, &key, 0..64 * 1024).await {
        Ok(data) => serde_json::from_slice(&data)
            .map(Some)
            .map_err(|e| StoreError::Other(format!("volume marker {key:?} is not valid: {e}"))),
        Err(StoreError::NoSuchKey(_)) | Err(StoreError::NoSuchBucket(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes the marker of `id`.
pub async fn write(store: &dyn ObjectStore, id: &VolumeId, m: &Marker) -> StoreResult<()> {
    let body = serde_json::to_vec_pretty(m).expect("marker serialises");
    store
        .put_object(
            &id.bucket,
            &marker_key(id),
            Bytes::from(body),
            &UserMetadata::new(),
        )
        .await
        .map(|_| ())
}
