//! The Garage tier: a real 3-node Garage cluster (replication factor 3, three
//! zones) and the real CSI server (`--mode all`) played as kubelet would:
//! CreateVolume → NodeStage/NodePublish → pgbench database → `pg_dump -Fc`
//! and `pg_dump -Fd -j 2` into the mount while node 2 is SIGKILLed, then
//! restarted → unpublish/unstage → stage/publish again (fresh mount) → restore
//! both dumps into fresh databases → same row counts and checksums of every
//! table → DeleteVolume → bucket gone.
//!
//! Skips with a message when the Garage binary is absent (`GARAGE_BIN`, else
//! `~/.cache/dcs-csi-tools/bin/garage`; `scripts/garage.sh install` builds
//! it, and `scripts/test.sh` does so in CI), or PostgreSQL / FUSE is missing.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::garage::{Garage, garage_bin};
use common::postgres::{Postgres, bin_dir as pg_bin, must as run};
use common::{CsiServer, S3Target, mount_cap};
use dcs_csi::store::ObjectStore;
use dcs_csi_proto::v1;
use dcs_csi_proto::v1::controller_client::ControllerClient;
use dcs_csi_proto::v1::node_client::NodeClient;
use dcs_csi_proto::v1::volume_capability::access_mode::Mode;
use tonic::transport::Channel;

struct Kubelet {
    target: S3Target,
    node: NodeClient<Channel>,
    volume: v1::Volume,
    root: PathBuf,
}

impl Kubelet {
    fn staging(&self) -> PathBuf {
        self.root
            .join("plugins/kubernetes.io/csi/dcs.csi.dev/h1/globalmount")
    }

    fn target_path(&self) -> PathBuf {
        self.root
            .join("pods/pod-pg/volumes/kubernetes.io~csi/pv/mount")
    }

    async fn stage_publish(&mut self) {
        self.node
            .node_stage_volume(v1::NodeStageVolumeRequest {
                volume_id: self.volume.volume_id.clone(),
                staging_target_path: self.staging().display().to_string(),
                volume_capability: Some(mount_cap(Mode::SingleNodeWriter)),
                secrets: self.target.secrets(),
                volume_context: self.volume.volume_context.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        self.node
            .node_publish_volume(v1::NodePublishVolumeRequest {
                volume_id: self.volume.volume_id.clone(),
                staging_target_path: self.staging().display().to_string(),
                target_path: self.target_path().display().to_string(),
                volume_capability: Some(mount_cap(Mode::SingleNodeWriter)),
                volume_context: self.volume.volume_context.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    async fn unpublish_unstage(&mut self) {
        self.node
            .node_unpublish_volume(v1::NodeUnpublishVolumeRequest {
                volume_id: self.volume.volume_id.clone(),
                target_path: self.target_path().display().to_string(),
            })
            .await
            .unwrap();
        self.node
            .node_unstage_volume(v1::NodeUnstageVolumeRequest {
                volume_id: self.volume.volume_id.clone(),
                staging_target_path: self.staging().display().to_string(),
            })
            .await
            .unwrap();
        assert!(!common::is_mounted(&self.staging()), "still staged");
    }

    fn p(&self, f: &str) -> String {
        self.target_path().join(f).display().to_string()
    }
}

fn skip_reason() -> Option<&'static str> {
    if garage_bin().is_none() {
        return Some(
            "Garage binary not found (set GARAGE_BIN or run scripts/garage.sh install; CI installs it)",
        );
    }
    if !Path::new("/dev/fuse").exists() || !nix::unistd::geteuid().is_root() {
        return Some("needs root and /dev/fuse");
    }
    if pg_bin().is_none() {
        return Some("PostgreSQL server binaries not found (apt-get install postgresql)");
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_survives_a_garage_node_kill_and_restores_from_a_fresh_mount() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIP: Garage tier: {why}");
        return;
    }
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let garage = Garage::start(&garage_bin().unwrap(), &tmp.path().join("garage"));
    let t_cluster = t0.elapsed();
    // S3 requests go to one endpoint: node 1, which stays up.
    let target = garage.target(1);
    let store = target.store();

    let pg = Postgres::start("postgres", "postgres");
    run(pg.client("createdb").arg("bench"));
    run(pg.client("pgbench").args(["-i", "-s", "5", "-q", "bench"]));
    run(pg.client("pgbench").args(["-t", "50", "-c", "2", "bench"]));
    let want = pg.fingerprint("bench");
    assert!(want[0].contains("|500000|"), "pgbench -s 5: {want:?}");

    let root = tmp.path().join("kubelet");
    let server = CsiServer::start(
        "all",
        &["--state-dir", &root.join("state").display().to_string()],
    );
    let mut ctl = ControllerClient::new(server.channel().await);
    let volume = ctl
        .create_volume(v1::CreateVolumeRequest {
            name: "pvc-garage-pg".into(),
            volume_capabilities: vec![mount_cap(Mode::SingleNodeWriter)],
            parameters: [("uid".to_string(), "0".to_string())].into(),
            secrets: target.secrets(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("CreateVolume on Garage: {e:?}\n{}", server.logs()))
        .into_inner()
        .volume
        .unwrap();
    let bucket = volume.volume_id.clone();
    assert!(store.bucket_exists(&bucket).await.unwrap());
    let mut k = Kubelet {
        target: target.clone(),
        node: NodeClient::new(server.channel().await),
        volume,
        root,
    };
    k.stage_publish().await;

    // Kill node 2 about a second into the dumps; bring it back later.
    let t_dump = Instant::now();
    let killer = {
        let dir = garage.dir.clone();
        let env = tmp.path().join("garage/env");
        std::thread::spawn(move || {
            let g = Garage::attach(&dir, &env);
            std::thread::sleep(Duration::from_secs(1));
            g.stop_node(2, true);
            let killed = Instant::now();
            std::thread::sleep(Duration::from_secs(10));
            g.start_node(2);
            eprintln!("garage node 2 was down for {:.1?}", killed.elapsed());
        })
    };
    let (fc, dir) = (k.p("dump.fc"), k.p("dump.d"));
    let pg_dumps = tokio::task::spawn_blocking({
        let pg_cmd_fc = {
            let mut c = pg.client("pg_dump");
            c.args(["-Fc", "-Z", "0", "-f", &fc, "bench"]);
            c
        };
        let pg_cmd_d = {
            let mut c = pg.client("pg_dump");
            c.args(["-Fd", "-j", "2", "-f", &dir, "bench"]);
            c
        };
        move || {
            let (mut a, mut b) = (pg_cmd_fc, pg_cmd_d);
            run(&mut a);
            run(&mut b);
        }
    });
    pg_dumps.await.unwrap();
    let dump_time = t_dump.elapsed();
    killer.join().expect("node kill/restart thread");
    k.unpublish_unstage().await;

    // A fresh mount; restore both dumps into fresh databases.
    k.stage_publish().await;
    for db in ["r_fc", "r_d"] {
        run(pg.client("createdb").arg(db));
    }
    run(pg
        .client("pg_restore")
        .args(["-d", "r_fc", &k.p("dump.fc")]));
    run(pg
        .client("pg_restore")
        .args(["-j", "2", "-d", "r_d", &k.p("dump.d")]));
    for db in ["r_fc", "r_d"] {
        assert_eq!(pg.fingerprint(db), want, "database restored from {db}");
    }
    k.unpublish_unstage().await;

    ctl.delete_volume(v1::DeleteVolumeRequest {
        volume_id: bucket.clone(),
        secrets: target.secrets(),
    })
    .await
    .unwrap_or_else(|e| panic!("DeleteVolume on Garage: {e:?}\n{}", server.logs()));
    assert!(
        !store.bucket_exists(&bucket).await.unwrap(),
        "bucket {bucket} still exists after DeleteVolume"
    );
    eprintln!(
        "Garage tier: cluster up in {t_cluster:.1?}, both dumps (with node 2 killed) in {dump_time:.1?}, \
         whole test {:.1?}; tables: {want:?}",
        t0.elapsed()
    );
}

/// Both checksum policies against Garage through the store: a PUT, a
/// two-part multipart upload, a copy, and ranged reads come back identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_checksum_policies_work_on_garage() {
    use bytes::Bytes;
    use dcs_csi::store::s3::{ChecksumPolicy, S3Config, S3Store};
    use dcs_csi::store::{CompletedPart, UserMetadata};
    let Some(bin) = garage_bin() else {
        eprintln!(
            "SKIP: Garage tier: Garage binary not found (set GARAGE_BIN or run scripts/garage.sh install)"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let garage = Garage::start(&bin, &tmp.path().join("garage"));
    let t = garage.target(1);
    let mut failures = Vec::new();
    for policy in [ChecksumPolicy::WhenRequired, ChecksumPolicy::Always] {
        let store = S3Store::new(&S3Config {
            endpoint: Some(t.endpoint.clone()),
            region: t.region.clone(),
            access_key_id: t.access_key_id.clone(),
            secret_access_key: t.secret_access_key.clone(),
            path_style: true,
            checksum: policy,
            max_attempts: 3,
        });
        let bucket = format!("ck-{policy:?}").to_lowercase();
        store.create_bucket(&bucket).await.unwrap();
        let meta = UserMetadata::new();
        let small = Bytes::from(vec![3u8; 1000]);
        store
            .put_object(&bucket, "small", small.clone(), &meta)
            .await
            .unwrap();
        let part1 = Bytes::from(vec![1u8; 5 << 20]);
        let part2 = Bytes::from(vec![2u8; 12345]);
        let r: Result<(), String> = async {
            let id = store
                .create_multipart(&bucket, "big", &meta)
                .await
                .map_err(|e| e.to_string())?;
            let mut parts = Vec::new();
            for (n, body) in [(1, part1.clone()), (2, part2.clone())] {
                let etag = store
                    .upload_part(&bucket, "big", &id, n, body)
                    .await
                    .map_err(|e| e.to_string())?;
                parts.push(CompletedPart { number: n, etag });
            }
            store
                .complete_multipart(&bucket, "big", &id, &parts)
                .await
                .map_err(|e| format!("CompleteMultipartUpload: {e}"))?;
            Ok(())
        }
        .await;
        if let Err(e) = r {
            failures.push(format!("{policy:?}: {e}"));
            continue;
        }
        let got = store
            .get_range(&bucket, "big", 0..(5 << 20) + 12345)
            .await
            .unwrap();
        assert_eq!(&got[..5 << 20], &part1[..], "{policy:?}");
        assert_eq!(&got[5 << 20..], &part2[..], "{policy:?}");
        store
            .copy_object(&bucket, "big", "big-copy", &meta)
            .await
            .unwrap();
        let info = store
            .head_object(&bucket, "big-copy")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(info.size, (5 << 20) + 12345, "{policy:?}");
        assert_eq!(
            store.get_range(&bucket, "small", 0..1000).await.unwrap(),
            small
        );
    }
    assert!(failures.is_empty(), "on Garage: {failures:?}");
}
