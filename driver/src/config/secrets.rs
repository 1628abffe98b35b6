//! Store credentials and endpoint, parsed once from a CSI secrets map (the
//! Kubernetes Secret named by the StorageClass) or from a credentials file of
//! the same keys. The keys are those of ctrox/csi-s3, so its Secrets work as-is.
//!
//! `Debug` never prints the secret key; error messages name keys, never values.

use std::collections::HashMap;
use std::fmt;

use crate::store::s3::{ChecksumPolicy, S3Config};

/// Secret key: access key id (csi-s3 spelling first, then the AWS one).
pub const KEY_ACCESS_KEY_ID: &str = "accessKeyID";
/// Secret key: secret access key.
pub const KEY_SECRET_ACCESS_KEY: &str = "secretAccessKey";
/// Secret key: endpoint URL (`https://gateway.storjshare.io`); absent means AWS.
pub const KEY_ENDPOINT: &str = "endpoint";
/// Secret key: region string.
pub const KEY_REGION: &str = "region";
/// Alternative spelling accepted for the access key id.
pub const KEY_AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
/// Alternative spelling accepted for the secret access key.
pub const KEY_AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";

/// What is wrong with a secrets map. Names the key, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    /// A required key is absent or empty.
    #[error("secret key {0:?} is missing or empty")]
    Missing(&'static str),
    /// A key has a value we cannot use.
    #[error("secret key {key:?} is invalid: {reason}")]
    Invalid {
        /// The offending key.
        key: &'static str,
        /// Why (never contains the value of a secret).
        reason: String,
    },
}

/// Credentials and endpoint of one store.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreSecrets {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Endpoint URL; `None` means AWS.
    pub endpoint: Option<String>,
    /// Region string (defaults to `us-east-1`).
    pub region: String,
}

impl fmt::Debug for StoreSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreSecrets")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish()
    }
}

fn get<'a>(m: &'a HashMap<String, String>, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .filter_map(|k| m.get(*k))
        .map(|v| v.trim())
        .find(|v| !v.is_empty())
}

impl StoreSecrets {
    /// Parses a CSI secrets map.
    pub fn from_map(m: &HashMap<String, String>) -> Result<Self, SecretsError> {
        let access_key_id = get(m, &[KEY_ACCESS_KEY_ID, KEY_AWS_ACCESS_KEY_ID])
            .ok_or(SecretsError::Missing(KEY_ACCESS_KEY_ID))?
            .to_string();
        let secret_access_key = get(m, &[KEY_SECRET_ACCESS_KEY, KEY_AWS_SECRET_ACCESS_KEY])
            .ok_or(SecretsError::Missing(KEY_SECRET_ACCESS_KEY))?
            .to_string();
        let endpoint = match get(m, &[KEY_ENDPOINT]) {
            None => None,
            Some(e) if e.starts_with("http://") || e.starts_with("https://") => {
                Some(e.trim_end_matches('/').to_string())
            }
            Some(_) => {
                return Err(SecretsError::Invalid {
                    key: KEY_ENDPOINT,
                    reason: "must start with http:// or https://".into(),
                });
            }
        };
        let region = get(m, &[KEY_REGION])
            .unwrap_or(S3Config::DEFAULT_REGION)
            .to_string();
        Ok(StoreSecrets {
            access_key_id,
            secret_access_key,
            endpoint,
            region,
        })
    }

    /// Parses a credentials file: a JSON object with the same keys as the Secret.
    pub fn from_json(text: &str) -> Result<Self, SecretsError> {
        let m: HashMap<String, String> =
            serde_json::from_str(text).map_err(|e| SecretsError::Invalid {
                key: "credentials file",
                reason: format!("not a JSON object of strings (line {})", e.line()),
            })?;
        Self::from_map(&m)
    }

    /// The secrets as a map with the canonical keys (for a credentials file).
    pub fn to_map(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        m.insert(KEY_ACCESS_KEY_ID.into(), self.access_key_id.clone());
        m.insert(KEY_SECRET_ACCESS_KEY.into(), self.secret_access_key.clone());
        m.insert(KEY_REGION.into(), self.region.clone());
        if let Some(e) = &self.endpoint {
            m.insert(KEY_ENDPOINT.into(), e.clone());
        }
        m
    }

    /// The S3 client settings for these secrets.
    pub fn s3_config(&self, checksum: ChecksumPolicy) -> S3Config {
        S3Config {
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            path_style: true,
            checksum,
            max_attempts: S3Config::DEFAULT_MAX_ATTEMPTS,
        }
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
    fn csi_s3_keys_parse() {
        let s = StoreSecrets::from_map(&map(&[
            ("accessKeyID", "AK"),
            ("secretAccessKey", "SK"),
            ("endpoint", "https://gateway.storjshare.io/"),
        ]))
        .unwrap();
        assert_eq!(s.endpoint.as_deref(), Some("https://gateway.storjshare.io"));
        assert_eq!(s.region, "us-east-1");
        assert!(!format!("{s:?}").contains("SK\""));
    }

    #[test]
    fn missing_and_bad_keys_are_named() {
        let e = StoreSecrets::from_map(&map(&[("accessKeyID", "AK")])).unwrap_err();
        assert_eq!(e, SecretsError::Missing(KEY_SECRET_ACCESS_KEY));
        let e = StoreSecrets::from_map(&map(&[
            ("accessKeyID", "AK"),
            ("secretAccessKey", "SK"),
            ("endpoint", "ftp://x"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("endpoint"));
        assert!(!e.to_string().contains("SK"));
    }

    #[test]
    fn json_round_trips() {
        let s = StoreSecrets::from_map(&map(&[
            ("AWS_ACCESS_KEY_ID", "AK"),
            ("AWS_SECRET_ACCESS_KEY", "SK"),
        ]))
        .unwrap();
        let text = serde_json::to_string(&s.to_map()).unwrap();
        assert_eq!(StoreSecrets::from_json(&text).unwrap(), s);
    }
}
