//! Filesystem options of a volume: given as StorageClass parameters (or PV
//! volumeAttributes for static volumes), carried to the node in the volume
//! context, and turned into `dcs-csi mount` flags there.

use std::collections::{BTreeMap, HashMap};

use super::params::ParamError;
use crate::store::s3::ChecksumPolicy;

/// Key: owner uid of every file (default 0, or the pod's fsGroup rules).
pub const KEY_UID: &str = "uid";
/// Key: owner gid of every file.
pub const KEY_GID: &str = "gid";
/// Key: permission bits of files, octal (`0644`).
pub const KEY_FILE_MODE: &str = "fileMode";
/// Key: permission bits of directories, octal (`0755`).
pub const KEY_DIR_MODE: &str = "dirMode";
/// Key: how long attributes and listings are cached, in seconds.
pub const KEY_METADATA_TTL: &str = "metadataTTLSeconds";
/// Key: multipart part size in MiB (at least 5).
pub const KEY_PART_SIZE: &str = "partSizeMiB";
/// Key: memory budget of the mount for buffers, in MiB.
pub const KEY_MAX_MEMORY: &str = "maxMemoryMiB";
/// Key: checksum policy, `when-required` or `always`.
pub const KEY_CHECKSUM: &str = "checksum";

const KEYS: [&str; 8] = [
    KEY_UID,
    KEY_GID,
    KEY_FILE_MODE,
    KEY_DIR_MODE,
    KEY_METADATA_TTL,
    KEY_PART_SIZE,
    KEY_MAX_MEMORY,
    KEY_CHECKSUM,
];

/// Mount options of a volume; `None` means the mount's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsOptions {
    /// Owner uid of files and directories.
    pub uid: Option<u32>,
    /// Owner gid of files and directories.
    pub gid: Option<u32>,
    /// Permission bits of files.
    pub file_mode: Option<u32>,
    /// Permission bits of directories.
    pub dir_mode: Option<u32>,
    /// Metadata cache TTL in seconds.
    pub metadata_ttl_secs: Option<u64>,
    /// Part size in MiB.
    pub part_size_mib: Option<u64>,
    /// Memory budget in MiB.
    pub max_memory_mib: Option<u64>,
    /// Checksum policy.
    pub checksum: Option<ChecksumPolicy>,
}

fn num<T: std::str::FromStr>(k: &str, v: &str) -> Result<T, ParamError> {
    v.trim()
        .parse()
        .map_err(|_| ParamError::new(k, "expected a non-negative integer"))
}

fn mode(k: &str, v: &str) -> Result<u32, ParamError> {
    u32::from_str_radix(v.trim(), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| ParamError::new(k, "expected octal permission bits such as 0644"))
}

impl FsOptions {
    /// Whether `key` is one of the filesystem option keys.
    pub fn is_key(key: &str) -> bool {
        KEYS.contains(&key)
    }

    /// Parses the option keys of `m`; other keys are ignored (the caller checks them).
    pub fn parse(m: &HashMap<String, String>) -> Result<Self, ParamError> {
        let mut o = FsOptions::default();
        for (k, v) in m {
            match k.as_str() {
                KEY_UID => o.uid = Some(num(k, v)?),
                KEY_GID => o.gid = Some(num(k, v)?),
                KEY_FILE_MODE => o.file_mode = Some(mode(k, v)?),
                KEY_DIR_MODE => o.dir_mode = Some(mode(k, v)?),
                KEY_METADATA_TTL => o.metadata_ttl_secs = Some(num(k, v)?),
                KEY_PART_SIZE => {
                    let n: u64 = num(k, v)?;
                    if !(5..=5120).contains(&n) {
                        return Err(ParamError::new(k, "must be between 5 and 5120 (MiB)"));
                    }
                    o.part_size_mib = Some(n);
                }
                KEY_MAX_MEMORY => {
                    let n: u64 = num(k, v)?;
                    if n < 16 {
                        return Err(ParamError::new(k, "must be at least 16 (MiB)"));
                    }
                    o.max_memory_mib = Some(n);
                }
                KEY_CHECKSUM => o.checksum = Some(v.parse().map_err(|e| ParamError::new(k, e))?),
                _ => {}
            }
        }
        Ok(o)
    }

    /// The options as volume-context entries (only those that are set).
    pub fn to_context(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                m.insert(k.to_string(), v);
            }
        };
        put(KEY_UID, self.uid.map(|v| v.to_string()));
        put(KEY_GID, self.gid.map(|v| v.to_string()));
        put(KEY_FILE_MODE, self.file_mode.map(|v| format!("{v:04o}")));
        put(KEY_DIR_MODE, self.dir_mode.map(|v| format!("{v:04o}")));
        put(
            KEY_METADATA_TTL,
            self.metadata_ttl_secs.map(|v| v.to_string()),
        );
        put(KEY_PART_SIZE, self.part_size_mib.map(|v| v.to_string()));
        put(KEY_MAX_MEMORY, self.max_memory_mib.map(|v| v.to_string()));
        put(
            KEY_CHECKSUM,
            self.checksum.map(|c| match c {
                ChecksumPolicy::WhenRequired => "when-required".to_string(),
                ChecksumPolicy::Always => "always".to_string(),
            }),
        );
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_round_trip_through_the_context() {
        let m: HashMap<String, String> = [
            ("uid", "1000"),
            ("fileMode", "640"),
            ("partSizeMiB", "16"),
            ("checksum", "always"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let o = FsOptions::parse(&m).unwrap();
        assert_eq!(o.file_mode, Some(0o640));
        let ctx: HashMap<String, String> = o.to_context().into_iter().collect();
        assert_eq!(FsOptions::parse(&ctx).unwrap(), o);
    }

    #[test]
    fn bad_values_name_the_key() {
        for (k, v) in [
            ("fileMode", "999"),
            ("partSizeMiB", "4"),
            ("checksum", "md5"),
        ] {
            let m = HashMap::from([(k.to_string(), v.to_string())]);
            assert_eq!(FsOptions::parse(&m).unwrap_err().key, k);
        }
    }
}
