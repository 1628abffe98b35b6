//! gRPC tests of the Node service, playing kubelet over the real socket: real
//! FUSE mounts (the process mounter starts `dcs-csi mount`), real bind mounts,
//! a real S3 server (moto) on 127.0.0.1. Needs root and /dev/fuse.

mod common;

use std::io::Write;

use dcs_csi::store::ObjectStore;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{CsiServer, Moto, SECRET, mount_cap, mount_processes};
use dcs_csi_proto::v1;
use dcs_csi_proto::v1::controller_client::ControllerClient;
use dcs_csi_proto::v1::node_client::NodeClient;
use dcs_csi_proto::v1::volume_capability::access_mode::Mode;
use tonic::Code;
use tonic::transport::Channel;

struct Kubelet {
    moto: Moto,
    ctl: ControllerClient<Channel>,
    node: NodeClient<Channel>,
    volume: v1::Volume,
    staging: PathBuf,
    root: tempfile::TempDir,
}

fn have_fuse() -> bool {
    Path::new("/dev/fuse").exists() && nix::unistd::geteuid().is_root()
}

fn state_dir(root: &Path) -> String {
    root.join("state").display().to_string()
}

async fn start_server(root: &Path) -> CsiServer {
    CsiServer::start("all", &["--state-dir", &state_dir(root)])
}

impl Drop for Kubelet {
    /// A failed test must not leave mounts or mount processes behind.
    fn drop(&mut self) {
        let mut mounts = self.our_mounts();
        mounts.sort_by_key(|l| std::cmp::Reverse(l.len()));
        for line in mounts {
            if let Some(point) = line.split(' ').nth(4) {
                let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
            }
        }
        for pid in mount_processes(self.root.path()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// CreateVolume as csi-provisioner would, against a fresh moto.
async fn provision(server: &CsiServer, root: tempfile::TempDir, name: &str) -> Kubelet {
    let moto = Moto::start();
    let mut ctl = ControllerClient::new(server.channel().await);
    let node = NodeClient::new(server.channel().await);
    let volume = ctl
        .create_volume(v1::CreateVolumeRequest {
            name: name.into(),
            volume_capabilities: vec![mount_cap(Mode::MultiNodeMultiWriter)],
            parameters: [("uid".to_string(), "0".to_string())].into(),
            secrets: moto.secrets(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let staging = root
        .path()
        .join("plugins/kubernetes.io/csi/dcs.csi.dev/h1/globalmount");
    Kubelet {
        moto,
        ctl,
        node,
        volume,
        staging,
        root,
    }
}

impl Kubelet {
    fn stage_req(&self) -> v1::NodeStageVolumeRequest {
        v1::NodeStageVolumeRequest {
            volume_id: self.volume.volume_id.clone(),
            staging_target_path: self.staging.display().to_string(),
            volume_capability: Some(mount_cap(Mode::MultiNodeMultiWriter)),
            secrets: self.moto.secrets(),
            volume_context: self.volume.volume_context.clone(),
            ..Default::default()
        }
    }

    fn target(&self, pod: &str) -> PathBuf {
        self.root
            .path()
            .join(format!("pods/{pod}/volumes/kubernetes.io~csi/pv/mount"))
    }

    fn publish_req(&self, pod: &str, readonly: bool) -> v1::NodePublishVolumeRequest {
        v1::NodePublishVolumeRequest {
            volume_id: self.volume.volume_id.clone(),
            staging_target_path: self.staging.display().to_string(),
            target_path: self.target(pod).display().to_string(),
            volume_capability: Some(mount_cap(Mode::MultiNodeMultiWriter)),
            readonly,
            volume_context: self.volume.volume_context.clone(),
            ..Default::default()
        }
    }

    async fn unpublish(&mut self, pod: &str) {
        self.node
            .node_unpublish_volume(v1::NodeUnpublishVolumeRequest {
                volume_id: self.volume.volume_id.clone(),
                target_path: self.target(pod).display().to_string(),
            })
            .await
            .unwrap();
    }

    async fn unstage(&mut self) {
        self.node
            .node_unstage_volume(v1::NodeUnstageVolumeRequest {
                volume_id: self.volume.volume_id.clone(),
                staging_target_path: self.staging.display().to_string(),
            })
            .await
            .unwrap();
    }

    async fn stats(&mut self, path: &Path) -> v1::NodeGetVolumeStatsResponse {
        self.node
            .node_get_volume_stats(v1::NodeGetVolumeStatsRequest {
                volume_id: self.volume.volume_id.clone(),
                volume_path: path.display().to_string(),
                staging_target_path: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// Mounts of ours under the test root still in the mount table.
    fn our_mounts(&self) -> Vec<String> {
        let root = self.root.path().display().to_string();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&root))
            .map(str::to_string)
            .collect()
    }

    async fn object(&self, key: &str) -> Option<Vec<u8>> {
        let store = self.moto.store();
        let info = store
            .head_object(&self.volume.volume_id, key)
            .await
            .unwrap()?;
        Some(
            store
                .get_range(&self.volume.volume_id, key, 0..info.size)
                .await
                .unwrap()
                .to_vec(),
        )
    }
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn two_pods_share_a_staged_volume_and_everything_is_cleaned_up() {
    if !have_fuse() {
        eprintln!("skipped: needs root and /dev/fuse");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let server = start_server(root.path()).await;
    let mut k = provision(&server, root, "pvc-node-share").await;

    // Each RPC twice: same result.
    for _ in 0..2 {
        k.node.node_stage_volume(k.stage_req()).await.unwrap();
    }
    for pod in ["pod-a", "pod-b"] {
        for _ in 0..2 {
            k.node
                .node_publish_volume(k.publish_req(pod, false))
                .await
                .unwrap();
        }
    }
    // Write through one pod, read through the other, and in the bucket.
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::create_dir_all(k.target("pod-a").join("dumps")).unwrap();
    std::fs::write(k.target("pod-a").join("dumps/db.dump"), &data).unwrap();
    assert_eq!(
        std::fs::read(k.target("pod-b").join("dumps/db.dump")).unwrap(),
        data
    );
    assert_eq!(k.object("dumps/db.dump").await.unwrap(), data);
    // The volume marker is not visible in the mount.
    let names: Vec<String> = std::fs::read_dir(k.target("pod-b"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["dumps"]);

    let st = k.stats(&k.target("pod-a")).await;
    assert!(!st.volume_condition.as_ref().unwrap().abnormal, "{st:?}");
    assert_eq!(st.usage.len(), 2);

    for pod in ["pod-a", "pod-b"] {
        k.unpublish(pod).await;
        k.unpublish(pod).await;
        assert!(!k.target(pod).exists());
    }
    k.unstage().await;
    k.unstage().await;
    assert!(k.our_mounts().is_empty(), "{:?}", k.our_mounts());
    let root = k.root.path().to_path_buf();
    wait_for("the mount process to exit", 15, || {
        mount_processes(&root).is_empty()
    });
    assert!(!server.logs().contains(SECRET), "secret in the node log");

    // Stats of what is gone: NOT_FOUND.
    let e = k
        .node
        .node_get_volume_stats(v1::NodeGetVolumeStatsRequest {
            volume_id: k.volume.volume_id.clone(),
            volume_path: k.target("pod-a").display().to_string(),
            staging_target_path: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    // The controller still deletes the volume afterwards.
    k.ctl
        .delete_volume(v1::DeleteVolumeRequest {
            volume_id: k.volume.volume_id.clone(),
            secrets: k.moto.secrets(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn read_only_publish_refuses_writes_and_bad_requests_are_refused() {
    if !have_fuse() {
        eprintln!("skipped: needs root and /dev/fuse");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let server = start_server(root.path()).await;
    let mut k = provision(&server, root, "pvc-node-ro").await;

    // Publish before stage: refused, and the target is not a plain directory mount.
    let e = k
        .node
        .node_publish_volume(k.publish_req("pod-ro", true))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");

    k.node.node_stage_volume(k.stage_req()).await.unwrap();
    k.node
        .node_publish_volume(k.publish_req("pod-ro", true))
        .await
        .unwrap();
    let err = std::fs::write(k.target("pod-ro").join("x"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");

    let mut bad = k.stage_req();
    bad.staging_target_path = String::new();
    let e = k.node.node_stage_volume(bad).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().starts_with("staging_target_path"),
        "{}",
        e.message()
    );
    let mut bad = k.stage_req();
    bad.secrets.clear();
    assert_eq!(
        k.node.node_stage_volume(bad).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let mut bad = k.publish_req("pod-x", false);
    bad.volume_capability = None;
    let e = k.node.node_publish_volume(bad).await.unwrap_err();
    assert!(
        e.message().starts_with("volume_capability"),
        "{}",
        e.message()
    );

    k.unpublish("pod-ro").await;
    k.unstage().await;
    assert!(k.our_mounts().is_empty(), "{:?}", k.our_mounts());
}

#[tokio::test]
async fn a_killed_node_server_does_not_interrupt_a_writer_and_is_adopted() {
    if !have_fuse() {
        eprintln!("skipped: needs root and /dev/fuse");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let server = start_server(root.path()).await;
    let mut k = provision(&server, root, "pvc-node-kill").await;
    k.node.node_stage_volume(k.stage_req()).await.unwrap();
    k.node
        .node_publish_volume(k.publish_req("pod-w", false))
        .await
        .unwrap();

    // A writer streams 24 MiB in small chunks while the node server is killed.
    let path = k.target("pod-w").join("stream.bin");
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::File::create(&path).unwrap();
        for i in 0..96u32 {
            f.write_all(&vec![(i % 256) as u8; 256 * 1024]).unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
        f.sync_all().unwrap();
    });
    std::thread::sleep(Duration::from_millis(200));
    let mut server = server;
    server.kill9();
    writer
        .join()
        .expect("the writer must finish although the node server died");
    let want: Vec<u8> = (0..96u32)
        .flat_map(|i| vec![(i % 256) as u8; 256 * 1024])
        .collect();
    assert_eq!(k.object("stream.bin").await.unwrap(), want);

    // A new node server on the same state dir adopts the mount.
    let root_path = k.root.path().to_path_buf();
    let server2 = start_server(&root_path).await;
    k.node = NodeClient::new(server2.channel().await);
    let st = k.stats(&k.target("pod-w")).await;
    assert!(!st.volume_condition.as_ref().unwrap().abnormal, "{st:?}");
    assert!(
        server2.logs().contains("adopted live mount"),
        "{}",
        server2.logs()
    );
    k.unpublish("pod-w").await;
    k.unstage().await;
    assert!(k.our_mounts().is_empty(), "{:?}", k.our_mounts());
    wait_for("the mount process to exit", 15, || {
        mount_processes(&root_path).is_empty()
    });
}

#[tokio::test]
async fn a_killed_mount_process_is_reported_abnormal_and_cleaned_up() {
    if !have_fuse() {
        eprintln!("skipped: needs root and /dev/fuse");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let server = start_server(root.path()).await;
    let mut k = provision(&server, root, "pvc-node-dead").await;
    k.node.node_stage_volume(k.stage_req()).await.unwrap();
    k.node
        .node_publish_volume(k.publish_req("pod-d", false))
        .await
        .unwrap();
    let root_path = k.root.path().to_path_buf();
    let pids = mount_processes(&root_path);
    assert_eq!(pids.len(), 1, "{pids:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pids[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("the mount process to die", 10, || {
        mount_processes(&root_path).is_empty()
    });

    let st = k.stats(&k.target("pod-d")).await;
    let cond = st.volume_condition.unwrap();
    assert!(cond.abnormal, "{cond:?}");
    assert!(cond.message.contains("not connected"), "{}", cond.message);
    // Publishing elsewhere is refused: a pod never gets a dead or plain directory.
    let e = k
        .node
        .node_publish_volume(k.publish_req("pod-e", false))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);

    k.unpublish("pod-d").await;
    k.unstage().await;
    assert!(k.our_mounts().is_empty(), "{:?}", k.our_mounts());
    drop(server);
}

/// Runs `sh -c script` as uid/gid 1234 with the given supplementary groups.
fn as_user(groups: &str, script: &str) -> std::process::Output {
    std::process::Command::new("setpriv")
        .args([
            "--reuid", "1234", "--regid", "1234", "--groups", groups, "sh", "-c", script,
        ])
        .output()
        .unwrap()
}

#[tokio::test]
async fn fs_group_makes_the_volume_writable_for_the_group_only() {
    if !have_fuse() {
        eprintln!("skipped: needs root and /dev/fuse");
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let root = tempfile::tempdir().unwrap();
    // Pods' paths must be reachable by the non-root user.
    std::fs::set_permissions(
        root.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let server = start_server(root.path()).await;
    let mut k = provision(&server, root, "pvc-node-fsgroup").await;
    let mut stage = k.stage_req();
    if let Some(v1::volume_capability::AccessType::Mount(m)) = stage
        .volume_capability
        .as_mut()
        .unwrap()
        .access_type
        .as_mut()
    {
        m.volume_mount_group = "999".into();
    }
    k.node.node_stage_volume(stage).await.unwrap();
    k.node
        .node_publish_volume(k.publish_req("pod-g", false))
        .await
        .unwrap();
    let t = k.target("pod-g");
    for d in [t.parent().unwrap(), t.parent().unwrap().parent().unwrap()] {
        let _ = std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755));
    }
    let m = std::fs::metadata(&t).unwrap();
    assert_eq!(m.gid(), 999);
    assert_eq!(m.mode() & 0o2070, 0o2070, "mode {:o}", m.mode());

    // Outside the group: the kernel refuses (permissions are enforced).
    let out = as_user("1234", &format!("echo no > {}/outsider", t.display()));
    assert!(
        !out.status.success(),
        "a user outside the fsGroup could write"
    );
    // In the group (as kubelet adds fsGroup to the pod's groups): allowed, and
    // the new file takes the volume's group, so the whole group can use it.
    let out = as_user("999", &format!("echo yes > {}/member", t.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f = std::fs::metadata(t.join("member")).unwrap();
    assert_eq!((f.uid(), f.gid()), (1234, 999));

    k.unpublish("pod-g").await;
    k.unstage().await;
    assert!(k.our_mounts().is_empty(), "{:?}", k.our_mounts());
}
