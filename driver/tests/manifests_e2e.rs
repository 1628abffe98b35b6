//! Manifest-driven end-to-end test: reads the real `examples/` files and the
//! chart rendered by `helm template`, and plays Kubernetes with them against
//! the real `dcs-csi` binary (`--mode all`), a real S3 server (moto) and a real
//! PostgreSQL, all on 127.0.0.1:
//!
//! - csi-provisioner: CreateVolume from the StorageClass parameters (minus the
//!   `csi.storage.k8s.io/` keys, plus what `--extra-create-metadata` adds), the
//!   Secret it names, the PVC's size and access modes; name `pvc-<uid>`; then
//!   the PV it would create.
//! - kubelet: for each pod of the backup CronJob (three scheduled runs) and of
//!   the restore Job: NodeStage (node-stage Secret, fsGroup as
//!   volume_mount_group), NodePublish onto `pods/<uid>/volumes/...`, then the
//!   container runtime: a bind mount at the volumeMount path (read-only when the
//!   volumeMount says so), the container's own command and env, as its user.
//! - the PVC deletion with the StorageClass's reclaimPolicy.
//!
//! What is substituted, and only that: the store endpoint (moto instead of the
//! example's), PG_HOST (127.0.0.1 instead of the Service's DNS name) and PGPORT
//! (the local server's port instead of the Service's 5432), and the container's
//! view of the volume (the volumeMount path, e.g. /backups, becomes the host
//! directory where the test bind-mounts the published volume).
//!
//! Needs root, /dev/fuse, PostgreSQL, moto_server and helm (installed by
//! scripts/check-manifests.sh): skipped with a message when one is missing,
//! except under CI=true, where that fails.

#[path = "manifests_e2e/cluster.rs"]
mod cluster;
mod common;
#[path = "manifests_e2e/db.rs"]
mod db;
#[path = "manifests_e2e/kube.rs"]
mod kube;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use cluster::{Cluster, Manifests, RUNS};
use dcs_csi::config::volume_id::VolumeId;
use dcs_csi::store::{ObjectStore, list_all};
use dcs_csi_proto::v1;
use k8s_openapi::api::storage::v1::StorageClass;

#[tokio::test]
async fn example_storageclass_bucket_per_volume_backups_restore_and_delete() {
    if !cluster::prerequisites() {
        return;
    }
    let sc = Manifests::example_storage_class("examples/storageclass.yaml");
    play(sc, Manifests::load()).await;
}

#[tokio::test]
async fn example_shared_bucket_storageclass_keeps_the_dumps_on_retain() {
    if !cluster::prerequisites() {
        return;
    }
    let sc = Manifests::example_storage_class("examples/storageclass-shared-bucket.yaml");
    let mut m = Manifests::load();
    // examples/README.md: with this class, the reader's PVC names it instead of dcs-s3.
    m.pvc.spec.as_mut().unwrap().storage_class_name = sc.metadata.name.clone();
    play(sc, m).await;
}

#[tokio::test]
async fn chart_storageclass_backups_restore_and_delete() {
    if !cluster::prerequisites() {
        return;
    }
    let m = Manifests::load();
    let sc: StorageClass = kube::one_of_kind(&m.chart, "StorageClass");
    play(sc, m).await;
}

async fn play(sc: StorageClass, m: Manifests) {
    let t0 = Instant::now();
    let sc_name = sc.metadata.name.clone().unwrap();
    let mut k = Cluster::start(sc, m).await;
    let store = k.moto.store();
    // Shared-bucket mode: the bucket exists beforehand (the example says to create it).
    if let Some(b) = cluster::sc_param(&k.sc, "bucket") {
        store.create_bucket(b).await.unwrap();
    }
    let vol = k.provision().await;
    let id = VolumeId::parse(&vol.volume_id).unwrap();
    assert!(
        store.bucket_exists(&id.bucket).await.unwrap(),
        "no bucket {}",
        id.bucket
    );
    let pv_name = k.pv.as_ref().unwrap().metadata.name.clone().unwrap();
    if let Some(b) = cluster::sc_param(&k.sc, "bucket") {
        assert_eq!(&id.bucket, b);
        assert!(id.prefix.ends_with(&pv_name), "{vol:?}");
    } else {
        let prefix = cluster::sc_param(&k.sc, "bucketPrefix")
            .cloned()
            .unwrap_or_default();
        assert_eq!(id.bucket, format!("{prefix}{pv_name}"));
        assert!(id.prefix.is_empty());
    }

    // The database of the example Deployment, as the CronJob names it, with data.
    let cj = k.m.cronjob.clone();
    let cj_name = cj.metadata.name.clone().unwrap();
    let ns = cj.metadata.namespace.clone().unwrap_or("default".into());
    let pod_spec = cj
        .spec
        .unwrap()
        .job_template
        .spec
        .unwrap()
        .template
        .spec
        .unwrap();
    let env: BTreeMap<String, String> =
        kube::container_env(&pod_spec.containers[0], &ns, &k.m.secrets)
            .into_iter()
            .collect();
    let database = env["PGDATABASE"].clone();
    db::load(&k.pg, &database);
    let fs_group = pod_spec.security_context.as_ref().and_then(|s| s.fs_group);

    // The schedule fires RUNS times: a Job, a pod, a mount each time.
    for run in 1..=RUNS {
        k.pg.psql(
            &database,
            &format!("INSERT INTO backup_runs VALUES ({run}, now())"),
        );
        let pod = k
            .start_pod(
                &format!("{cj_name}-{run}-{}", &cluster::random_uid()[..5]),
                &ns,
                &pod_spec,
            )
            .await;
        let out = k.run_container(&pod).await;
        assert!(out.contains("wrote "), "{out}");
        // fsGroup (volume_mount_group): the volume root is group fsGroup and
        // group-writable. Checked on the attributes because the script's success
        // as a non-root user proves nothing here: the FUSE mount has no
        // default_permissions and the filesystem checks no mode bits, so any
        // uid may write anywhere (without volume_mount_group too).
        if let Some(g) = fs_group {
            let md = std::fs::metadata(&pod.target).unwrap();
            assert_eq!(md.gid(), g as u32, "gid of the volume root");
            assert_eq!(
                md.mode() & 0o070,
                0o070,
                "mode {:o} of the volume root",
                md.mode()
            );
        }
        let dumps = db::dump_files(&pod.target);
        assert_eq!(dumps.len(), run, "{dumps:?}");
        k.stop_pod(pod).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let want = db::digests(&k.pg, &database);
    assert_eq!(want["backup_runs"].0, RUNS as i64);
    assert!(want["pgbench_accounts"].0 >= 100_000, "{want:?}");

    // The restore Job's pod: first look at the dumps, through the mount and in the bucket.
    let job = k.m.restore.clone();
    let job_name = job.metadata.name.clone().unwrap();
    let rspec = job.spec.unwrap().template.spec.unwrap();
    let renv: BTreeMap<String, String> =
        kube::container_env(&rspec.containers[0], &ns, &k.m.secrets)
            .into_iter()
            .collect();
    let restore_db = renv["RESTORE_DB"].clone();
    assert_ne!(restore_db, database);
    let exists = format!("SELECT count(*) FROM pg_database WHERE datname = '{restore_db}'");
    assert_eq!(k.pg.psql("postgres", &exists).trim(), "0");
    let pod = k
        .start_pod(
            &format!("{job_name}-{}", &cluster::random_uid()[..5]),
            &ns,
            &rspec,
        )
        .await;
    let files = db::dump_files(&pod.target);
    assert_eq!(files.len(), RUNS, "{files:?}");
    let objects: BTreeMap<String, u64> = list_all(&store, &id.bucket, &id.key_prefix())
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.key[id.key_prefix().len()..].to_string(), o.size))
        .collect();
    assert!(
        !objects.keys().any(|k| k.contains(".partial")),
        "{objects:?}"
    );
    let dump_objects: BTreeMap<String, u64> = objects
        .iter()
        .filter(|(k, _)| k.ends_with(".dump"))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(
        dump_objects, files,
        "dumps in the bucket vs. files in the mount"
    );
    for (name, size) in &files {
        assert!(*size > 0);
        let key = format!("{}{name}", id.key_prefix());
        let body = store.get_range(&id.bucket, &key, 0..*size).await.unwrap();
        assert_eq!(
            &body[..5],
            b"PGDMP",
            "{name} is not a pg_dump custom-format file"
        );
        assert_eq!(
            body.as_ref(),
            std::fs::read(pod.target.join(name)).unwrap(),
            "{name}"
        );
    }
    let newest = files.keys().next_back().unwrap().clone();
    let out = k.run_container(&pod).await;
    assert!(out.contains(&format!("restored {newest}")), "{out}");
    k.stop_pod(pod).await;
    assert_eq!(k.pg.psql("postgres", &exists).trim(), "1");
    let got = db::digests(&k.pg, &restore_db);
    assert_eq!(got, want, "restored database differs from the original");

    // The PVC is deleted: csi-provisioner acts on the PV's reclaim policy.
    let policy =
        k.pv.as_ref()
            .unwrap()
            .spec
            .as_ref()
            .unwrap()
            .persistent_volume_reclaim_policy
            .clone()
            .unwrap();
    match policy.as_str() {
        "Delete" => {
            let (sns, sname) = k.prov_secret.clone().unwrap();
            let secrets =
                cluster::store_secrets(&k.m, &k.moto, &sns, &sname, "provisioner-secret-name");
            k.ctl
                .delete_volume(v1::DeleteVolumeRequest {
                    volume_id: vol.volume_id.clone(),
                    secrets,
                })
                .await
                .unwrap_or_else(|e| panic!("DeleteVolume: {e:?}"));
            if id.prefix.is_empty() {
                assert!(
                    !store.bucket_exists(&id.bucket).await.unwrap(),
                    "bucket {} is left",
                    id.bucket
                );
            } else {
                let left = list_all(&store, &id.bucket, &id.key_prefix())
                    .await
                    .unwrap();
                assert!(left.is_empty(), "{left:?}");
            }
        }
        "Retain" => {
            let left: BTreeSet<String> = list_all(&store, &id.bucket, &id.key_prefix())
                .await
                .unwrap()
                .into_iter()
                .map(|o| o.key[id.key_prefix().len()..].to_string())
                .filter(|k| k.ends_with(".dump"))
                .collect();
            assert_eq!(
                left,
                files.keys().cloned().collect(),
                "Retain must keep the dumps"
            );
        }
        other => panic!("reclaimPolicy {other:?}"),
    }

    let secret = kube::secret_data(kube::find_secret(
        &k.m.secrets,
        "dcs-csi",
        "dcs-csi-store",
        "test",
    ))["secretAccessKey"]
        .clone();
    assert!(
        !k.server.logs().contains(&secret),
        "the secret key is in the driver's log"
    );
    // Every pod is gone: no `dcs-csi mount` process may serve this node's paths.
    let t = Instant::now();
    while !common::mount_processes(k.root.path()).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "mount processes left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("{sc_name}: done in {:.1} s", t0.elapsed().as_secs_f64());
}
