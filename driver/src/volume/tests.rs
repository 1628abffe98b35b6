//! Unit tests of provisioning on the in-memory store.

use std::collections::HashMap;

use bytes::Bytes;

use super::*;
use crate::store::UserMetadata;
use crate::store::memory::MemoryStore;

fn params(kv: &[(&str, &str)]) -> VolumeParams {
    let m: HashMap<String, String> = kv
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    VolumeParams::parse(&m).unwrap()
}

const NAME: &str = "pvc-0b1e3c8e-6f5a-4c39-9a51-2f8d9a1c7e42";
const GIB: i64 = 1 << 30;

fn cap(required: i64) -> Capacity {
    Capacity { required, limit: 0 }
}

#[tokio::test]
async fn bucket_mode_creates_a_bucket_with_a_marker_and_is_idempotent() {
    let s = MemoryStore::new();
    let p = params(&[("uid", "1000")]);
    let v = create(&s, NAME, &p, cap(GIB)).await.unwrap();
    assert_eq!(v.id.to_string(), NAME);
    assert_eq!(v.capacity_bytes, GIB);
    assert_eq!(v.context.get("uid").map(String::as_str), Some("1000"));
    assert_eq!(s.keys(NAME).unwrap(), [naming::VOLUME_MARKER]);
    let again = create(&s, NAME, &p, cap(GIB)).await.unwrap();
    assert_eq!(again, v);
}

#[tokio::test]
async fn incompatible_second_create_is_already_exists() {
    let s = MemoryStore::new();
    create(&s, NAME, &params(&[]), cap(GIB)).await.unwrap();
    let e = create(&s, NAME, &params(&[]), cap(2 * GIB))
        .await
        .unwrap_err();
    assert!(matches!(e, VolumeError::AlreadyExists(_)), "{e}");
    let e = create(&s, NAME, &params(&[("uid", "5")]), cap(GIB))
        .await
        .unwrap_err();
    assert!(matches!(e, VolumeError::AlreadyExists(_)), "{e}");
}

#[tokio::test]
async fn a_bucket_holding_foreign_data_is_not_taken_over() {
    let s = MemoryStore::new();
    s.create_bucket(NAME).await.unwrap();
    s.put_object(
        NAME,
        "theirs",
        Bytes::from_static(b"x"),
        &UserMetadata::new(),
    )
    .await
    .unwrap();
    let e = create(&s, NAME, &params(&[]), cap(0)).await.unwrap_err();
    assert!(matches!(e, VolumeError::AlreadyExists(_)), "{e}");
    // And deleting it as a volume leaves the data alone.
    let id = VolumeId::parse(NAME).unwrap();
    assert_eq!(delete(&s, &id).await.unwrap(), Deleted::KeptForeignData);
    assert_eq!(s.keys(NAME).unwrap(), ["theirs"]);
}

#[tokio::test]
async fn shared_mode_uses_a_prefix_and_needs_the_bucket() {
    let s = MemoryStore::new();
    let p = params(&[("bucket", "shared"), ("prefix", "k8s")]);
    let e = create(&s, NAME, &p, cap(0)).await.unwrap_err();
    assert!(matches!(e, VolumeError::FailedPrecondition(_)), "{e}");
    s.create_bucket("shared").await.unwrap();
    let v = create(&s, NAME, &p, cap(0)).await.unwrap();
    assert_eq!(v.id.to_string(), format!("shared/k8s/{NAME}"));
    assert_eq!(s.bucket_names(), ["shared"]);
}

#[tokio::test]
async fn delete_removes_everything_in_bucket_mode_and_is_idempotent() {
    let s = MemoryStore::new().with_page_size(7);
    let v = create(&s, NAME, &params(&[]), cap(0)).await.unwrap();
    for i in 0..50 {
        s.put_object(NAME, &format!("d/{i}"), Bytes::new(), &UserMetadata::new())
            .await
            .unwrap();
    }
    s.create_multipart(NAME, "d/partial", &UserMetadata::new())
        .await
        .unwrap();
    assert_eq!(delete(&s, &v.id).await.unwrap(), Deleted::Removed(50));
    assert!(s.bucket_names().is_empty());
    assert_eq!(delete(&s, &v.id).await.unwrap(), Deleted::NotFound);
}

#[tokio::test]
async fn delete_in_shared_mode_keeps_the_bucket_and_neighbours() {
    let s = MemoryStore::new();
    s.create_bucket("shared").await.unwrap();
    let p = params(&[("bucket", "shared")]);
    let a = create(&s, "pvc-1", &p, cap(0)).await.unwrap();
    let b = create(&s, "pvc-10", &p, cap(0)).await.unwrap();
    for v in [&a, &b] {
        s.put_object(
            "shared",
            &format!("{}data", v.id.key_prefix()),
            Bytes::new(),
            &UserMetadata::new(),
        )
        .await
        .unwrap();
    }
    assert_eq!(delete(&s, &a.id).await.unwrap(), Deleted::Removed(1));
    let keys = s.keys("shared").unwrap();
    assert!(keys.iter().all(|k| k.starts_with("pvc-10/")), "{keys:?}");
    assert_eq!(keys.len(), 2);
}

#[tokio::test]
async fn bucket_limit_is_resource_exhausted() {
    let s = MemoryStore::new().with_max_buckets(0);
    let e = create(&s, NAME, &params(&[]), cap(0)).await.unwrap_err();
    assert!(matches!(e, VolumeError::ResourceExhausted(_)), "{e}");
}

#[test]
fn capacity_ranges() {
    assert!(
        Capacity {
            required: 2,
            limit: 1
        }
        .grant()
        .is_err()
    );
    assert!(
        Capacity {
            required: -1,
            limit: 0
        }
        .grant()
        .is_err()
    );
    assert_eq!(
        Capacity {
            required: 0,
            limit: 5
        }
        .grant()
        .unwrap(),
        5
    );
    assert!(
        Capacity {
            required: 1,
            limit: 3
        }
        .satisfied_by(2)
    );
    assert!(
        !Capacity {
            required: 3,
            limit: 0
        }
        .satisfied_by(2)
    );
}

#[tokio::test]
async fn bucket_limit_falls_back_to_a_prefix_of_the_fallback_bucket_and_stays_there() {
    let s = MemoryStore::new().with_max_buckets(2);
    s.create_bucket("fallback").await.unwrap();
    s.create_bucket("filler").await.unwrap();
    let p = params(&[("fallbackBucket", "fallback")]);
    let v = create(&s, NAME, &p, cap(0)).await.unwrap();
    assert_eq!(v.id.to_string(), format!("fallback/{NAME}"));
    // Once a bucket could be created again, the same volume is still found where it is.
    s.delete_bucket("filler").await.unwrap();
    let again = create(&s, NAME, &p, cap(0)).await.unwrap();
    assert_eq!(again.id, v.id);
    assert_eq!(delete(&s, &v.id).await.unwrap(), Deleted::Removed(0));
    assert!(s.bucket_names().contains(&"fallback".to_string()));
}
