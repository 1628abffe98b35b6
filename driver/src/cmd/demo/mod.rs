//! `dcs-csi demo`: the whole driver on one machine, no cluster and no account
//! needed. It starts an embedded S3 store on 127.0.0.1, the CSI controller and
//! node services on a unix socket, then plays Kubernetes: CreateVolume as
//! csi-provisioner would, NodeStage and NodePublish as kubelet would, onto a
//! directory you can `ls` and `cp` into. Ctrl-C unpublishes, unstages, deletes
//! the volume and stops everything.

mod s3_server;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use dcs_csi_proto::v1;
use dcs_csi_proto::v1::controller_client::ControllerClient;
use dcs_csi_proto::v1::node_client::NodeClient;
use dcs_csi_proto::v1::volume_capability::access_mode::Mode;
use dcs_csi_proto::v1::volume_capability::{AccessMode, AccessType, MountVolume};
use tonic::transport::{Channel, Endpoint as TonicEndpoint, Uri};

use super::CmdError;
use super::serve::shutdown_signal;
use crate::csi::controller::ControllerService;
use crate::csi::endpoint::Endpoint;
use crate::csi::identity::IdentityService;
use crate::csi::node::NodeService;
use crate::csi::server::{routes, serve};
use crate::csi::stores::S3Provider;
use crate::node::NodeOps;
use crate::node::process::ProcessMounter;
use crate::node::system::SystemMounts;
use s3_server::EmbeddedS3;

/// Flags of the demo.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to mount the demo volume.
    #[arg(long, default_value = "./dcs-demo")]
    pub mountpoint: PathBuf,
    /// Keep the objects (the embedded store's directory) after Ctrl-C.
    #[arg(long)]
    pub keep: bool,
}

fn random_key(len: usize) -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

async fn channel(socket: PathBuf) -> Result<Channel, CmdError> {
    Ok(TonicEndpoint::try_from("http://[::]:50051")?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                let s = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
            }
        }))
        .await?)
}

fn mount_capability() -> v1::VolumeCapability {
    v1::VolumeCapability {
        access_mode: Some(AccessMode {
            mode: Mode::MultiNodeMultiWriter as i32,
        }),
        access_type: Some(AccessType::Mount(MountVolume::default())),
    }
}

/// Runs the demo until Ctrl-C.
pub fn run(args: DemoArgs) -> Result<(), CmdError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(
            "the demo mounts a FUSE filesystem and bind-mounts it: run it as root (sudo)".into(),
        );
    }
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(demo(args))
}

async fn demo(args: DemoArgs) -> Result<(), CmdError> {
    let work = tempfile::Builder::new().prefix("dcs-demo.").tempdir()?;
    let data = work.path().join("store");
    std::fs::create_dir_all(&data)?;
    let (ak, sk) = (random_key(20), random_key(40));
    let s3 = EmbeddedS3::start(&data, &ak, &sk).await?;

    let socket = work.path().join("csi.sock");
    let mounter = ProcessMounter::new(work.path().join("state"), std::env::current_exe()?, "text")?;
    let svc = routes(
        IdentityService {
            driver_name: "dcs.csi.dev".into(),
            controller: true,
        },
        Some(ControllerService::new(Arc::new(S3Provider::default()))),
        Some(NodeService::new(
            "demo-node".into(),
            NodeOps::new(Arc::new(mounter), Arc::new(SystemMounts)),
        )),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let endpoint = Endpoint::Unix(socket.clone());
    let server = tokio::spawn(async move {
        serve(&endpoint, svc, async {
            let _ = stop_rx.await;
        })
        .await
        .map_err(|e| e.to_string())
    });
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let ch = channel(socket.clone()).await?;
    let mut ctl = ControllerClient::new(ch.clone());
    let mut node = NodeClient::new(ch);

    // What csi-provisioner sends for a PVC of the StorageClass, with its Secret.
    let secrets: HashMap<String, String> = [
        ("accessKeyID", ak.as_str()),
        ("secretAccessKey", sk.as_str()),
        ("endpoint", &s3.endpoint()),
        ("region", "us-east-1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let name = format!("pvc-demo-{}", random_key(8).to_lowercase());
    let vol = ctl
        .create_volume(v1::CreateVolumeRequest {
            name: name.clone(),
            capacity_range: Some(v1::CapacityRange {
                required_bytes: 1 << 30,
                limit_bytes: 0,
            }),
            volume_capabilities: vec![mount_capability()],
            secrets: secrets.clone(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .volume
        .ok_or("CreateVolume returned no volume")?;
    let staging = work.path().join("staging");
    let target = std::fs::canonicalize(".")?.join(&args.mountpoint);
    node.node_stage_volume(v1::NodeStageVolumeRequest {
        volume_id: vol.volume_id.clone(),
        staging_target_path: staging.display().to_string(),
        volume_capability: Some(mount_capability()),
        secrets: secrets.clone(),
        volume_context: vol.volume_context.clone(),
        ..Default::default()
    })
    .await?;
    node.node_publish_volume(v1::NodePublishVolumeRequest {
        volume_id: vol.volume_id.clone(),
        staging_target_path: staging.display().to_string(),
        target_path: target.display().to_string(),
        volume_capability: Some(mount_capability()),
        volume_context: vol.volume_context.clone(),
        ..Default::default()
    })
    .await?;

    println!("dcs-csi demo is running.");
    println!(
        "  embedded S3 store : {} (objects kept as files under {})",
        s3.endpoint(),
        data.display()
    );
    println!("  volume            : {} (bucket {})", name, vol.volume_id);
    println!("  mounted at        : {}", target.display());
    println!();
    println!(
        "Try:  cp /etc/hosts {0}/ && ls -l {0} && ls -l {1}/{2}",
        target.display(),
        data.display(),
        vol.volume_id
    );
    println!("Press Ctrl-C to unmount, delete the volume and stop.");
    shutdown_signal().await;

    println!("cleaning up...");
    node.node_unpublish_volume(v1::NodeUnpublishVolumeRequest {
        volume_id: vol.volume_id.clone(),
        target_path: target.display().to_string(),
    })
    .await?;
    node.node_unstage_volume(v1::NodeUnstageVolumeRequest {
        volume_id: vol.volume_id.clone(),
        staging_target_path: staging.display().to_string(),
    })
    .await?;
    if !args.keep {
        ctl.delete_volume(v1::DeleteVolumeRequest {
            volume_id: vol.volume_id.clone(),
            secrets,
        })
        .await?;
    }
    let _ = stop_tx.send(());
    server.await.map_err(|e| e.to_string())??;
    drop(s3);
    if args.keep {
        let kept = work.keep();
        println!("objects kept under {}", kept.join("store").display());
    }
    println!("done.");
    Ok(())
}
