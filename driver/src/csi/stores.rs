//! Turning the credentials of a request into a store client. Each request
//! carries its own secrets (per-StorageClass Secrets), so clients are built on
//! demand and reused while the same credentials come back (connection pools
//! stay warm; rotated credentials simply get a new client).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::config::secrets::StoreSecrets;
use crate::store::ObjectStore;
use crate::store::s3::{ChecksumPolicy, S3Config, S3Store};

/// Gives a store client for a set of credentials.
pub trait StoreProvider: Send + Sync + 'static {
    /// The store reached with `secrets`.
    fn store(&self, secrets: &StoreSecrets, checksum: ChecksumPolicy) -> Arc<dyn ObjectStore>;
}

/// Most clients kept at once; beyond that the cache starts over.
const MAX_CACHED: usize = 64;

/// [`StoreProvider`] for real S3 endpoints, caching one client per configuration.
#[derive(Default)]
pub struct S3Provider {
    cache: Mutex<HashMap<S3Config, Arc<S3Store>>>,
}

impl StoreProvider for S3Provider {
    fn store(&self, secrets: &StoreSecrets, checksum: ChecksumPolicy) -> Arc<dyn ObjectStore> {
        let cfg = secrets.s3_config(checksum);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = cache.get(&cfg) {
            return s.clone();
        }
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        let s = Arc::new(S3Store::new(&cfg));
        cache.insert(cfg, s.clone());
        s
    }
}

/// [`StoreProvider`] that always returns the same store (tests, the demo).
pub struct FixedProvider(pub Arc<dyn ObjectStore>);

impl StoreProvider for FixedProvider {
    fn store(&self, _: &StoreSecrets, _: ChecksumPolicy) -> Arc<dyn ObjectStore> {
        self.0.clone()
    }
}
