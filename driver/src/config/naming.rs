//! Names on the store: bucket names valid under S3/DNS rules, derived
//! deterministically from the CO's volume name, and safe key prefixes.

use sha2::{Digest, Sha256};

/// Name of the marker object at the root of every volume dcs-csi creates
/// (see `volume::marker`); the filesystem hides it.
pub const VOLUME_MARKER: &str = ".dcs-csi-volume.json";

/// Shortest and longest bucket names S3 allows.
const BUCKET_LEN: std::ops::RangeInclusive<usize> = 3..=63;

/// Checks a bucket name against the S3 rules for new buckets.
pub fn validate_bucket(b: &str) -> Result<(), String> {
    if !BUCKET_LEN.contains(&b.len()) {
        return Err(format!(
            "bucket names have 3 to 63 characters, got {}",
            b.len()
        ));
    }
    if !b
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
    {
        return Err("bucket names use only lowercase letters, digits, '-' and '.'".into());
    }
    let first = b.as_bytes()[0];
    let last = b.as_bytes()[b.len() - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return Err("bucket names start and end with a letter or digit".into());
    }
    if b.contains("..") || b.contains(".-") || b.contains("-.") {
        return Err("bucket names have no adjacent dots or dot-dash pairs".into());
    }
    if b.split('.').count() == 4 && b.split('.').all(|p| p.parse::<u8>().is_ok()) {
        return Err("bucket names must not look like an IP address".into());
    }
    if b.starts_with("xn--") || b.ends_with("-s3alias") {
        return Err("bucket names must not start with xn-- or end with -s3alias".into());
    }
    Ok(())
}

/// Checks a `bucketPrefix` parameter: lowercase letters, digits and '-', at most 40 chars.
pub fn validate_bucket_prefix(p: &str) -> Result<(), String> {
    if p.len() > 40 {
        return Err("at most 40 characters".into());
    }
    if !p
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        return Err("only lowercase letters, digits and '-'".into());
    }
    if p.starts_with('-') {
        return Err("must start with a letter or digit".into());
    }
    Ok(())
}

/// Normalises a key prefix given by a user: trims `/` at both ends, refuses
/// empty, `.` and `..` segments. Returns the prefix without a trailing slash.
pub fn clean_prefix(p: &str) -> Result<String, String> {
    let t = p.trim().trim_matches('/');
    if t.is_empty() {
        return Ok(String::new());
    }
    if t.len() > 512 {
        return Err("at most 512 characters".into());
    }
    for seg in t.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return Err("must not contain empty, '.' or '..' path segments".into());
        }
    }
    Ok(t.to_string())
}

fn short_hash(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    d.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// The bucket of a volume in bucket-per-volume mode: `bucket_prefix` + the
/// volume name lowercased with invalid characters replaced. When that changes
/// the name or makes it too long, a hash of the original name keeps it unique.
pub fn bucket_for_volume(bucket_prefix: &str, name: &str) -> String {
    let mut s: String = format!("{bucket_prefix}{}", name.to_ascii_lowercase())
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    let s = s.trim_matches('-').to_string();
    let exact = s == format!("{bucket_prefix}{name}");
    if exact && BUCKET_LEN.contains(&s.len()) && validate_bucket(&s).is_ok() {
        return s;
    }
    let hash = short_hash(name);
    let keep = 63 - hash.len() - 1;
    let mut head: String = s.chars().take(keep).collect();
    head = head.trim_end_matches('-').to_string();
    if head.is_empty() {
        format!("v-{hash}")
    } else {
        format!("{head}-{hash}")
    }
}

/// The key segment of a volume in shared-bucket mode: the volume name with
/// characters outside `[A-Za-z0-9._-]` replaced (plus a hash when anything changed).
pub fn segment_for_volume(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s == name && s != "." && s != ".." && s.len() <= 64 {
        s
    } else {
        let head: String = s.chars().take(50).collect();
        format!("{}-{}", head.trim_matches('.'), short_hash(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provisioner_names_map_to_themselves() {
        let n = "pvc-0b1e3c8e-6f5a-4c39-9a51-2f8d9a1c7e42";
        assert_eq!(bucket_for_volume("", n), n);
        assert_eq!(bucket_for_volume("k8s-", n), format!("k8s-{n}"));
        assert_eq!(segment_for_volume(n), n);
    }

    #[test]
    fn odd_names_become_valid_unique_buckets() {
        for n in [
            "My_Volume",
            "a",
            "-x-",
            "192.168.0.1",
            &"long".repeat(30),
            "é",
            "UPPER",
        ] {
            let b = bucket_for_volume("", n);
            assert!(validate_bucket(&b).is_ok(), "{n} -> {b}");
            assert_eq!(b, bucket_for_volume("", n), "deterministic");
        }
        assert_ne!(
            bucket_for_volume("", "My_Vol"),
            bucket_for_volume("", "my-vol")
        );
        assert_ne!(
            bucket_for_volume("", "UPPER"),
            bucket_for_volume("", "upper")
        );
    }

    #[test]
    fn bucket_rules() {
        assert!(validate_bucket("ok-bucket.1").is_ok());
        for bad in [
            "ab", "Ab-c", "a_b", "-ab", "ab-", "a..b", "1.2.3.4", "xn--ab",
        ] {
            assert!(validate_bucket(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefixes_are_cleaned() {
        assert_eq!(clean_prefix("/a/b/").unwrap(), "a/b");
        assert_eq!(clean_prefix("").unwrap(), "");
        assert!(clean_prefix("a//b").is_err());
        assert!(clean_prefix("a/../b").is_err());
    }
}
