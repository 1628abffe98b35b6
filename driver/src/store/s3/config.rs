//! Settings of the S3 client: endpoint, region, credentials, addressing and
//! the checksum policy. `Debug` never prints the secret key.

use std::fmt;

/// Which integrity checksums the client sends and verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChecksumPolicy {
    /// Only where the S3 API requires one (DeleteObjects). Works on moto, Garage,
    /// MinIO, Storj and on stores that reject the SDK's newer default headers.
    #[default]
    WhenRequired,
    /// The SDK default: CRC32 on every upload, verified on download.
    Always,
}

impl std::str::FromStr for ChecksumPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "when-required" | "" => Ok(Self::WhenRequired),
            "always" => Ok(Self::Always),
            other => Err(format!(
                "unknown checksum policy {other:?} (expected when-required or always)"
            )),
        }
    }
}

/// How to reach one S3 endpoint. `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct S3Config {
    /// Endpoint URL, e.g. `https://gateway.storjshare.io` or `http://127.0.0.1:9000`.
    /// `None` means AWS itself.
    pub endpoint: Option<String>,
    /// Region string; stores that ignore regions still need one to sign requests.
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Path-style (`endpoint/bucket/key`) rather than virtual-hosted addressing.
    pub path_style: bool,
    /// Checksum behaviour.
    pub checksum: ChecksumPolicy,
    /// Attempts per call, including the first (retries use jittered exponential backoff).
    pub max_attempts: u32,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("path_style", &self.path_style)
            .field("checksum", &self.checksum)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

impl S3Config {
    /// Default region when none is given.
    pub const DEFAULT_REGION: &'static str = "us-east-1";
    /// Default attempts per call.
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 6;
}
