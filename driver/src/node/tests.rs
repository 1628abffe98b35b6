//! Node logic on the fake mounter: no root needed.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use super::fake::{FakeMount, FakeMounter};
use super::*;
use crate::config::fsopts::FsOptions;
use crate::config::secrets::StoreSecrets;
use crate::config::volume_id::VolumeId;

fn setup() -> (tempfile::TempDir, Arc<FakeMounter>, NodeOps, MountSpec) {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeMounter::default());
    let ops = NodeOps::new(fake.clone(), fake.clone());
    let spec = MountSpec {
        volume_id: VolumeId::parse("pvc-1").unwrap(),
        staging_path: dir.path().join("staging"),
        secrets: StoreSecrets {
            access_key_id: "a".into(),
            secret_access_key: "s".into(),
            endpoint: None,
            region: "us-east-1".into(),
        },
        fs: FsOptions::default(),
        read_only: false,
    };
    (dir, fake, ops, spec)
}

#[tokio::test]
async fn stage_publish_unpublish_unstage_are_idempotent() {
    let (dir, fake, ops, spec) = setup();
    let target: PathBuf = dir.path().join("pods/a/mount");
    ops.stage(&spec).await.unwrap();
    ops.stage(&spec).await.unwrap();
    assert_eq!(
        fake.starts.load(Ordering::Relaxed),
        1,
        "second stage must not remount"
    );
    ops.publish(&spec.staging_path, &target, true)
        .await
        .unwrap();
    ops.publish(&spec.staging_path, &target, true)
        .await
        .unwrap();
    assert_eq!(
        fake.get(&target),
        Some((
            FakeMount::Bind {
                source: spec.staging_path.clone(),
                read_only: true
            },
            true
        ))
    );
    assert!(target.is_dir());
    ops.unpublish(&target).await.unwrap();
    ops.unpublish(&target).await.unwrap();
    assert!(!target.exists());
    ops.unstage(&spec.staging_path).await.unwrap();
    ops.unstage(&spec.staging_path).await.unwrap();
    assert_eq!(fake.count(), 0);
    assert!(!spec.staging_path.exists());
}

#[tokio::test]
async fn publish_never_exposes_an_unstaged_or_dead_mount() {
    let (dir, fake, ops, spec) = setup();
    let target = dir.path().join("t");
    let e = ops
        .publish(&spec.staging_path, &target, false)
        .await
        .unwrap_err();
    assert!(matches!(e, NodeError::FailedPrecondition(_)), "{e}");
    ops.stage(&spec).await.unwrap();
    fake.kill(&spec.staging_path);
    let e = ops
        .publish(&spec.staging_path, &target, false)
        .await
        .unwrap_err();
    assert!(matches!(e, NodeError::FailedPrecondition(_)), "{e}");
    assert!(fake.get(&target).is_none());
}

#[tokio::test]
async fn a_dead_mount_is_reported_then_restaged() {
    let (dir, fake, ops, spec) = setup();
    let target = dir.path().join("t");
    ops.stage(&spec).await.unwrap();
    ops.publish(&spec.staging_path, &target, false)
        .await
        .unwrap();
    let h = ops.health(&target).unwrap();
    assert!(h.abnormal.is_none() && h.usage.is_some(), "{h:?}");
    fake.kill(&spec.staging_path);
    let h = ops.health(&target).unwrap();
    assert!(h.abnormal.unwrap().contains("not connected"));
    ops.stage(&spec).await.unwrap();
    assert_eq!(fake.starts.load(Ordering::Relaxed), 2);
    assert_eq!(ops.health(&spec.staging_path).unwrap().abnormal, None);
    // Unpublish and unstage of dead mounts succeed and leave nothing.
    fake.kill(&spec.staging_path);
    ops.unpublish(&target).await.unwrap();
    ops.unstage(&spec.staging_path).await.unwrap();
    assert_eq!(fake.count(), 0);
}

#[tokio::test]
async fn stats_of_a_missing_path_is_not_found() {
    let (dir, _fake, ops, _spec) = setup();
    assert!(matches!(
        ops.health(&dir.path().join("nope")),
        Err(NodeError::NotFound(_))
    ));
    let h = ops.health(dir.path()).unwrap();
    assert!(h.abnormal.unwrap().contains("not mounted"));
}
