//! StorageClass parameters of CreateVolume, parsed once into [`VolumeParams`].
//!
//! Accepts the ctrox/csi-s3 parameters (`bucket`, `usePrefix`, `prefix`,
//! `mounter`) so csi-s3 users only change `provisioner:`, our own
//! (`bucketPrefix` and the filesystem options of [`FsOptions`]), and the keys
//! external-provisioner adds (`csi.storage.k8s.io/...`). Any other key is an
//! error that names it: a typo in a StorageClass must not pass silently.

use std::collections::{BTreeMap, HashMap};

use super::fsopts::FsOptions;
use super::naming;

/// Parameter: an existing bucket in which every volume is a prefix.
pub const PARAM_BUCKET: &str = "bucket";
/// Parameter (csi-s3): "true" to put volumes under a prefix of `bucket`.
pub const PARAM_USE_PREFIX: &str = "usePrefix";
/// Parameter (csi-s3): a path inside the shared bucket that holds the volumes.
pub const PARAM_PREFIX: &str = "prefix";
/// Parameter (csi-s3): the FUSE client to use; ignored, we always use our own.
pub const PARAM_MOUNTER: &str = "mounter";
/// Parameter: prefix of generated bucket names in bucket-per-volume mode.
pub const PARAM_BUCKET_PREFIX: &str = "bucketPrefix";
/// Parameter: an existing bucket where a volume becomes a prefix when the store
/// refuses a new bucket (Storj: 100 buckets per project).
pub const PARAM_FALLBACK_BUCKET: &str = "fallbackBucket";
/// Prefix of the keys Kubernetes itself adds (`--extra-create-metadata`, secret references).
pub const K8S_PREFIX: &str = "csi.storage.k8s.io/";
/// Added by `--extra-create-metadata`: the PVC's name.
pub const PARAM_PVC_NAME: &str = "csi.storage.k8s.io/pvc/name";
/// Added by `--extra-create-metadata`: the PVC's namespace.
pub const PARAM_PVC_NAMESPACE: &str = "csi.storage.k8s.io/pvc/namespace";
/// Added by `--extra-create-metadata`: the PV's name.
pub const PARAM_PV_NAME: &str = "csi.storage.k8s.io/pv/name";

/// Where a new volume's data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// A new bucket per volume, its name starting with this prefix.
    BucketPerVolume {
        /// Prefix of the generated bucket name (may be empty).
        bucket_prefix: String,
        /// Shared bucket to fall back to when the store refuses a new bucket.
        fallback_bucket: Option<String>,
    },
    /// A prefix per volume inside an existing shared bucket.
    SharedBucket {
        /// The shared bucket.
        bucket: String,
        /// Path inside the bucket under which volumes are created (may be empty).
        prefix: String,
    },
}

/// Who asked for the volume, from `--extra-create-metadata` (for logs and the marker).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClaimRef {
    /// PVC name.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pvc_name: Option<String>,
    /// PVC namespace.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pvc_namespace: Option<String>,
    /// PV name.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pv_name: Option<String>,
}

/// The parsed StorageClass parameters of one CreateVolume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeParams {
    /// Where the volume goes.
    pub placement: Placement,
    /// Options every mount of the volume uses (carried in the volume context).
    pub fs: FsOptions,
    /// The PVC/PV, when the provisioner sent them.
    pub claim: ClaimRef,
    /// Whether a csi-s3 `mounter` parameter was given (and ignored).
    pub ignored_mounter: Option<String>,
}

/// A parameter that cannot be used. Names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter {key:?}: {reason}")]
pub struct ParamError {
    /// The offending key.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ParamError {
    /// An error about `key`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ParamError {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

pub(crate) fn parse_bool(key: &str, v: &str) -> Result<bool, ParamError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" | "" => Ok(false),
        _ => Err(ParamError::new(key, "expected true or false")),
    }
}

impl VolumeParams {
    /// Parses the `parameters` map of a CreateVolumeRequest.
    pub fn parse(params: &HashMap<String, String>) -> Result<Self, ParamError> {
        let mut fs_keys = HashMap::new();
        let mut bucket = None;
        let mut use_prefix = false;
        let mut prefix = String::new();
        let mut bucket_prefix = String::new();
        let mut fallback_bucket = None;
        let mut claim = ClaimRef::default();
        let mut ignored_mounter = None;
        for (k, v) in params {
            match k.as_str() {
                PARAM_BUCKET => bucket = Some(v.trim().to_string()).filter(|b| !b.is_empty()),
                PARAM_USE_PREFIX => use_prefix = parse_bool(k, v)?,
                PARAM_PREFIX => {
                    prefix = naming::clean_prefix(v).map_err(|r| ParamError::new(k, r))?
                }
                PARAM_MOUNTER => ignored_mounter = Some(v.clone()),
                PARAM_BUCKET_PREFIX => bucket_prefix = v.trim().to_string(),
                PARAM_FALLBACK_BUCKET => {
                    let b = v.trim().to_string();
                    naming::validate_bucket(&b).map_err(|r| ParamError::new(k, r))?;
                    fallback_bucket = Some(b);
                }
                PARAM_PVC_NAME => claim.pvc_name = Some(v.clone()),
                PARAM_PVC_NAMESPACE => claim.pvc_namespace = Some(v.clone()),
                PARAM_PV_NAME => claim.pv_name = Some(v.clone()),
                // Other Kubernetes-reserved keys (secret references) are the CO's business.
                _ if k.starts_with(K8S_PREFIX) => {}
                _ if FsOptions::is_key(k) => {
                    fs_keys.insert(k.clone(), v.clone());
                }
                _ => {
                    return Err(ParamError::new(
                        k,
                        "unknown StorageClass parameter (see docs/CONFIGURATION.md)",
                    ));
                }
            }
        }
        let placement = match bucket {
            Some(b) => {
                naming::validate_bucket(&b).map_err(|r| ParamError::new(PARAM_BUCKET, r))?;
                if fallback_bucket.is_some() {
                    return Err(ParamError::new(
                        PARAM_FALLBACK_BUCKET,
                        "only applies to bucket-per-volume mode (without bucket)",
                    ));
                }
                if !bucket_prefix.is_empty() {
                    return Err(ParamError::new(
                        PARAM_BUCKET_PREFIX,
                        "cannot be combined with bucket (shared-bucket mode creates no buckets)",
                    ));
                }
                Placement::SharedBucket { bucket: b, prefix }
            }
            None if use_prefix => {
                return Err(ParamError::new(
                    PARAM_USE_PREFIX,
                    "\"true\" requires the bucket parameter",
                ));
            }
            None if !prefix.is_empty() => {
                return Err(ParamError::new(
                    PARAM_PREFIX,
                    "requires the bucket parameter",
                ));
            }
            None => {
                naming::validate_bucket_prefix(&bucket_prefix)
                    .map_err(|r| ParamError::new(PARAM_BUCKET_PREFIX, r))?;
                Placement::BucketPerVolume {
                    bucket_prefix,
                    fallback_bucket,
                }
            }
        };
        Ok(VolumeParams {
            placement,
            fs: FsOptions::parse(&fs_keys)?,
            claim,
            ignored_mounter,
        })
    }

    /// The parameters that define the volume, as a canonical map. Two CreateVolume
    /// calls with the same name are compatible only if these are equal.
    pub fn fingerprint(&self) -> BTreeMap<String, String> {
        let mut m = self.fs.to_context();
        match &self.placement {
            Placement::BucketPerVolume {
                bucket_prefix,
                fallback_bucket,
            } => {
                m.insert(PARAM_BUCKET_PREFIX.into(), bucket_prefix.clone());
                if let Some(f) = fallback_bucket {
                    m.insert(PARAM_FALLBACK_BUCKET.into(), f.clone());
                }
            }
            Placement::SharedBucket { bucket, prefix } => {
                m.insert(PARAM_BUCKET.into(), bucket.clone());
                m.insert(PARAM_PREFIX.into(), prefix.clone());
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn empty_parameters_mean_bucket_per_volume() {
        let p = VolumeParams::parse(&HashMap::new()).unwrap();
        assert_eq!(
            p.placement,
            Placement::BucketPerVolume {
                bucket_prefix: String::new(),
                fallback_bucket: None,
            }
        );
    }

    #[test]
    fn csi_s3_parameters_are_accepted() {
        let p = VolumeParams::parse(&map(&[
            ("bucket", "shared"),
            ("usePrefix", "true"),
            ("prefix", "/k8s/vols/"),
            ("mounter", "geesefs"),
            ("csi.storage.k8s.io/pvc/name", "data"),
            ("csi.storage.k8s.io/pvc/namespace", "db"),
        ]))
        .unwrap();
        assert_eq!(
            p.placement,
            Placement::SharedBucket {
                bucket: "shared".into(),
                prefix: "k8s/vols".into()
            }
        );
        assert_eq!(p.ignored_mounter.as_deref(), Some("geesefs"));
        assert_eq!(p.claim.pvc_namespace.as_deref(), Some("db"));
    }

    #[test]
    fn bad_parameters_name_the_key() {
        for (kv, key) in [
            (vec![("bucket", "Bad_Name")], "bucket"),
            (vec![("usePrefix", "true")], "usePrefix"),
            (vec![("usePrefix", "maybe")], "usePrefix"),
            (vec![("prefix", "x")], "prefix"),
            (vec![("bucket", "ok-bucket"), ("prefix", "../up")], "prefix"),
            (vec![("bucketPrefix", "UPPER")], "bucketPrefix"),
            (vec![("colour", "blue")], "colour"),
            (vec![("uid", "-1")], "uid"),
        ] {
            let e = VolumeParams::parse(&map(&kv)).unwrap_err();
            assert_eq!(e.key, key, "{kv:?}: {e}");
        }
    }

    #[test]
    fn fingerprint_ignores_claim_metadata_but_not_options() {
        let a = VolumeParams::parse(&map(&[("csi.storage.k8s.io/pvc/name", "a")])).unwrap();
        let b = VolumeParams::parse(&map(&[("csi.storage.k8s.io/pvc/name", "b")])).unwrap();
        let c = VolumeParams::parse(&map(&[("uid", "1000")])).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
    }
}
