//! The volume id: all the node needs to find a volume's data.
//!
//! `<bucket>` for a bucket-per-volume volume, `<bucket>/<prefix>` for a volume
//! that is a prefix of a bucket (shared-bucket mode or a static PV on a
//! sub-directory). Bucket names cannot contain `/`, so parsing is unambiguous,
//! and the format is the one csi-s3 users already write in static PVs.

use std::fmt;

use super::naming;

/// CSI's limit on the length of string fields such as the volume id.
pub const MAX_VOLUME_ID_LEN: usize = 128;

/// A parsed volume id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VolumeId {
    /// Bucket holding the volume.
    pub bucket: String,
    /// Key prefix of the volume inside the bucket, without slashes at the ends;
    /// empty when the volume is the whole bucket.
    pub prefix: String,
}

impl VolumeId {
    /// Parses a volume id, checking the bucket name loosely (existing buckets
    /// may predate today's naming rules) and the prefix strictly.
    pub fn parse(id: &str) -> Result<Self, String> {
        if id.is_empty() {
            return Err("is empty".into());
        }
        if id.len() > MAX_VOLUME_ID_LEN {
            return Err(format!("is longer than {MAX_VOLUME_ID_LEN} bytes"));
        }
        let (bucket, prefix) = match id.split_once('/') {
            Some((b, p)) => (b, naming::clean_prefix(p)?),
            None => (id, String::new()),
        };
        if bucket.len() < 3
            || !bucket
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
        {
            return Err(format!("{bucket:?} is not a bucket name"));
        }
        Ok(VolumeId {
            bucket: bucket.to_string(),
            prefix,
        })
    }

    /// The key prefix of the volume's objects: empty, or the prefix and a `/`.
    pub fn key_prefix(&self) -> String {
        if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        }
    }

    /// Whether the volume is a whole bucket (deleting it deletes the bucket).
    pub fn is_whole_bucket(&self) -> bool {
        self.prefix.is_empty()
    }
}

impl fmt::Display for VolumeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            f.write_str(&self.bucket)
        } else {
            write!(f, "{}/{}", self.bucket, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for s in ["pvc-1234", "shared/k8s/pvc-1234"] {
            assert_eq!(VolumeId::parse(s).unwrap().to_string(), s);
        }
        let v = VolumeId::parse("shared/a/b").unwrap();
        assert_eq!(v.key_prefix(), "a/b/");
        assert!(VolumeId::parse("pvc-1").unwrap().is_whole_bucket());
    }

    #[test]
    fn bad_ids_are_refused() {
        for s in ["", "ab", "b/../x", "bad bucket", &"x".repeat(200)] {
            assert!(VolumeId::parse(s).is_err(), "{s}");
        }
    }
}
