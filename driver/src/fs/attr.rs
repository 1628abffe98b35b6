//! File attributes as the core reports them ([`Attr`]), and how they are kept in
//! object user metadata (`dcs-mode`, `dcs-uid`, `dcs-gid`, `dcs-mtime`,
//! `dcs-symlink-target`), so they survive remounts and stay readable by any S3 client.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::store::{ObjectInfo, UserMetadata};

use super::options::MountOptions;

/// Metadata key: permission bits in octal.
pub const META_MODE: &str = "dcs-mode";
/// Metadata key: owner uid.
pub const META_UID: &str = "dcs-uid";
/// Metadata key: group gid.
pub const META_GID: &str = "dcs-gid";
/// Metadata key: modification time, `SECONDS.NANOS` since the epoch.
pub const META_MTIME: &str = "dcs-mtime";
/// Metadata key: marks a symlink; the value is its target.
pub const META_SYMLINK: &str = "dcs-symlink-target";

/// Kind of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file (one object).
    File,
    /// A directory (a common prefix and/or a `dir/` marker).
    Dir,
    /// A symbolic link (an object with [`META_SYMLINK`]).
    Symlink,
}

/// Attributes of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Inode number.
    pub ino: u64,
    /// Kind.
    pub kind: Kind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Modification time.
    pub mtime: SystemTime,
    /// Permission bits (no file-type bits).
    pub perm: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

impl Attr {
    /// Attributes of a directory with the mount's defaults.
    pub fn dir(ino: u64, opts: &MountOptions, mtime: SystemTime) -> Self {
        Attr {
            ino,
            kind: Kind::Dir,
            size: 0,
            mtime,
            perm: opts.dir_mode & 0o7777,
            uid: opts.uid,
            gid: opts.gid,
        }
    }

    /// Attributes of an object, from its HEAD (metadata) and the mount's defaults.
    pub fn from_object(ino: u64, info: &ObjectInfo, opts: &MountOptions) -> Self {
        let m = &info.metadata;
        let kind = if m.contains_key(META_SYMLINK) {
            Kind::Symlink
        } else {
            Kind::File
        };
        let default_perm = if kind == Kind::Symlink {
            0o777
        } else {
            opts.file_mode & 0o7777
        };
        Attr {
            ino,
            kind,
            size: info.size,
            mtime: m
                .get(META_MTIME)
                .and_then(|v| parse_time(v))
                .unwrap_or(info.last_modified),
            perm: m
                .get(META_MODE)
                .and_then(|v| u32::from_str_radix(v, 8).ok())
                .map_or(default_perm, |p| p & 0o7777),
            uid: m
                .get(META_UID)
                .and_then(|v| v.parse().ok())
                .unwrap_or(opts.uid),
            gid: m
                .get(META_GID)
                .and_then(|v| v.parse().ok())
                .unwrap_or(opts.gid),
        }
    }

    /// Writes mode/uid/gid/mtime of `self` into `meta` (kept on the object).
    pub fn store_in(&self, meta: &mut UserMetadata) {
        meta.insert(META_MODE.into(), format!("{:o}", self.perm));
        meta.insert(META_UID.into(), self.uid.to_string());
        meta.insert(META_GID.into(), self.gid.to_string());
        meta.insert(META_MTIME.into(), format_time(self.mtime));
    }
}

/// `SECONDS.NANOS` since the epoch.
pub fn format_time(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// Parses [`format_time`]'s output.
pub fn parse_time(s: &str) -> Option<SystemTime> {
    let (secs, nanos) = s.split_once('.').unwrap_or((s, "0"));
    let d = Duration::new(secs.parse().ok()?, nanos.parse().ok()?);
    Some(UNIX_EPOCH + d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_round_trips() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        assert_eq!(parse_time(&format_time(t)), Some(t));
        assert_eq!(parse_time("x"), None);
    }
}
