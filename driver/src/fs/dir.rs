//! Directory listings: one delimiter listing (`ListObjectsV2`, every page,
//! order never assumed) turned into entries, and a small TTL cache of them that
//! our own changes invalidate.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::store::{ObjectStore, StoreResult};

use super::attr::Kind;

/// One child in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Kind as the listing shows it (symlinks show as files until looked up).
    pub kind: Kind,
    /// Size of the object (0 for directories).
    pub size: u64,
    /// Last-modified of the object (`UNIX_EPOCH` for directories).
    pub mtime: SystemTime,
}

/// The children of one directory, by name.
pub type Listing = BTreeMap<String, Entry>;

/// Lists the directory whose keys start with `dir_prefix` (`""` or ending in `/`).
/// `hidden` names are left out (the volume marker at the root). A name that is
/// both an object and a prefix is shown as a directory.
pub async fn list_dir(
    store: &dyn ObjectStore,
    bucket: &str,
    dir_prefix: &str,
    hidden: &[&str],
) -> StoreResult<Listing> {
    let mut out = Listing::new();
    let mut token = None;
    loop {
        let page = store
            .list_page(bucket, dir_prefix, Some("/"), token.take())
            .await?;
        for p in page.common_prefixes {
            let name = p[dir_prefix.len()..].trim_end_matches('/');
            if valid_name(name) && !hidden.contains(&name) {
                out.insert(
                    name.to_string(),
                    Entry {
                        kind: Kind::Dir,
                        size: 0,
                        mtime: SystemTime::UNIX_EPOCH,
                    },
                );
            }
        }
        for o in page.objects {
            let name = &o.key[dir_prefix.len()..];
            if !valid_name(name) || hidden.contains(&name) {
                continue;
            }
            if out.get(name).is_some_and(|e| e.kind == Kind::Dir) {
                tracing::debug!(key = %o.key, "object shadowed by a directory of the same name");
                continue;
            }
            out.insert(
                name.to_string(),
                Entry {
                    kind: Kind::File,
                    size: o.size,
                    mtime: o.last_modified,
                },
            );
        }
        match page.next_token {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/')
}

/// Whether anything exists under `dir_prefix` (ending in `/`), marker included.
pub async fn prefix_exists(
    store: &dyn ObjectStore,
    bucket: &str,
    dir_prefix: &str,
) -> StoreResult<bool> {
    let mut token = None;
    loop {
        let page = store
            .list_page(bucket, dir_prefix, Some("/"), token.take())
            .await?;
        if !page.objects.is_empty() || !page.common_prefixes.is_empty() {
            return Ok(true);
        }
        match page.next_token {
            Some(t) => token = Some(t),
            None => return Ok(false),
        }
    }
}

/// Listings by directory path, each valid for the TTL.
#[derive(Debug)]
pub struct DirCache {
    ttl: Duration,
    map: Mutex<HashMap<String, (Instant, Arc<Listing>)>>,
}

impl DirCache {
    /// A cache whose entries live `ttl` (zero disables it).
    pub fn new(ttl: Duration) -> Self {
        DirCache {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Arc<Listing>)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached listing of `dir`, if fresh.
    pub fn get(&self, dir: &str) -> Option<Arc<Listing>> {
        let m = self.lock();
        m.get(dir)
            .filter(|(t, _)| t.elapsed() < self.ttl)
            .map(|(_, l)| l.clone())
    }

    /// Caches `listing` for `dir`.
    pub fn put(&self, dir: &str, listing: Arc<Listing>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut m = self.lock();
        m.retain(|_, (t, _)| t.elapsed() < self.ttl);
        m.insert(dir.to_string(), (Instant::now(), listing));
    }

    /// Removes `name` from `dir`'s cached listing (after we deleted it), keeping
    /// the rest of the listing and its age.
    pub fn remove_entry(&self, dir: &str, name: &str) {
        let mut m = self.lock();
        if let Some((_, l)) = m.get_mut(dir)
            && l.contains_key(name)
        {
            Arc::make_mut(l).remove(name);
        }
    }

    /// Forgets `dir`'s listing.
    pub fn invalidate(&self, dir: &str) {
        self.lock().remove(dir);
    }

    /// Forgets every listing (after a directory rename).
    pub fn clear(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn lists_all_pages_and_prefers_directories() {
        let s = MemoryStore::new().with_page_size(2);
        s.create_bucket("b").await.unwrap();
        let m = Default::default();
        for k in ["p/a", "p/b/", "p/b", "p/c/x", "p/d", "p/e", "p/.hide", "q"] {
            s.put_object("b", k, bytes::Bytes::from_static(b"1"), &m)
                .await
                .unwrap();
        }
        let l = list_dir(&s, "b", "p/", &[".hide"]).await.unwrap();
        let names: Vec<_> = l.keys().cloned().collect();
        assert_eq!(names, ["a", "b", "c", "d", "e"]);
        assert_eq!(l["b"].kind, Kind::Dir);
        assert_eq!(l["c"].kind, Kind::Dir);
        assert_eq!(l["a"].kind, Kind::File);
        assert!(prefix_exists(&s, "b", "p/c/").await.unwrap());
        assert!(!prefix_exists(&s, "b", "p/z/").await.unwrap());
    }
}
