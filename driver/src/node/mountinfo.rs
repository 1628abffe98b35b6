//! Reading the kernel's mount table (`/proc/self/mountinfo`) and telling a live
//! mount from a dead FUSE mount ("Transport endpoint is not connected").

use std::path::{Path, PathBuf};

/// One line of mountinfo, the fields we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Filesystem type (`fuse.dcs-csi`, `ext4`...).
    pub fs_type: String,
    /// Mount source (`dcs-csi:bucket/prefix` for ours).
    pub source: String,
    /// Per-mount options (`rw`, `ro`, ...).
    pub options: String,
}

/// Undoes mountinfo's octal escapes (`\040` for a space...).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses the text of a mountinfo file.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            Some(MountEntry {
                mount_point: PathBuf::from(unescape(l.get(4)?)),
                options: l.get(5)?.to_string(),
                fs_type: r.first()?.to_string(),
                source: unescape(r.get(1)?),
            })
        })
        .collect()
}

/// The mount table of this process's mount namespace.
pub fn read() -> Vec<MountEntry> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| parse(&t))
        .unwrap_or_default()
}

/// The topmost mount at exactly `path`, if any.
pub fn find(path: &Path) -> Option<MountEntry> {
    let want = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    read()
        .into_iter()
        .rev()
        .find(|m| m.mount_point == want || m.mount_point == path)
}

/// Whether `path` is a FUSE mount whose server died (ENOTCONN). `statfs` is
/// asked as well as `stat`: the kernel may answer `stat` of the root from its
/// attribute cache, but always sends `statfs` to the server.
pub fn is_disconnected(path: &Path) -> bool {
    matches!(std::fs::metadata(path), Err(e) if e.raw_os_error() == Some(libc::ENOTCONN))
        || matches!(
            nix::sys::statvfs::statvfs(path),
            Err(nix::errno::Errno::ENOTCONN)
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fuse_and_escaped_lines() {
        let t = "36 35 98:0 / /mnt/a\\040b rw,noatime master:1 - fuse.dcs-csi dcs-csi:bkt/p rw,user_id=0\n\
                 37 35 0:5 / /proc rw - proc proc rw\n";
        let m = parse(t);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].mount_point, PathBuf::from("/mnt/a b"));
        assert_eq!(m[0].fs_type, "fuse.dcs-csi");
        assert_eq!(m[0].source, "dcs-csi:bkt/p");
        assert_eq!(m[0].options, "rw,noatime");
    }

    #[test]
    fn root_is_mounted() {
        assert!(find(Path::new("/")).is_some());
    }
}
