//! An S3 endpoint with its credentials: moto directly, a fault proxy in front
//! of it, or a Garage node.

use std::collections::HashMap;

use dcs_csi::store::s3::{ChecksumPolicy, S3Config, S3Store};

/// Where to send S3 requests, and as whom.
#[derive(Clone, Debug)]
pub struct S3Target {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Region to sign for (Garage checks it: `garage`).
    pub region: String,
}

impl S3Target {
    /// The same credentials at another endpoint (e.g. a proxy in front of it).
    pub fn via(&self, endpoint: String) -> S3Target {
        S3Target {
            endpoint,
            ..self.clone()
        }
    }

    /// Secrets as a StorageClass Secret carries them (csi-s3 keys).
    pub fn secrets(&self) -> HashMap<String, String> {
        [
            ("accessKeyID", self.access_key_id.as_str()),
            ("secretAccessKey", self.secret_access_key.as_str()),
            ("endpoint", self.endpoint.as_str()),
            ("region", self.region.as_str()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// A store client with the driver's default retry settings.
    pub fn store(&self) -> S3Store {
        S3Store::new(&S3Config {
            endpoint: Some(self.endpoint.clone()),
            region: self.region.clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            path_style: true,
            checksum: ChecksumPolicy::WhenRequired,
            max_attempts: S3Config::DEFAULT_MAX_ATTEMPTS,
        })
    }

    /// A raw SDK client (for calls the store trait does not have, e.g. ListBuckets).
    pub fn sdk(&self) -> aws_sdk_s3::Client {
        let creds = aws_credential_types::Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            None,
            None,
            "tests",
        );
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(self.region.clone()))
            .credentials_provider(creds)
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// `host:port` of the endpoint.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("endpoint is http://IP:PORT")
    }
}
