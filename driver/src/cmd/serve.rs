//! The CSI server command (the default when no subcommand is given): parses the
//! flags, builds the services for the chosen mode and serves them until
//! SIGTERM or SIGINT.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use tracing::info;

use super::CmdError;
use crate::csi::controller::ControllerService;
use crate::csi::endpoint::Endpoint;
use crate::csi::identity::IdentityService;
use crate::csi::node::NodeService;
use crate::csi::server::{routes, serve};
use crate::csi::stores::S3Provider;
use crate::csi::validate_driver_name;
use crate::node::pod::{PodMounter, PodMounterConfig};
use crate::node::process::ProcessMounter;
use crate::node::system::SystemMounts;
use crate::node::{Mounter, NodeOps};

/// Which CSI services this process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Identity + Controller (the Deployment with csi-provisioner).
    Controller,
    /// Identity + Node (the DaemonSet on every node).
    Node,
    /// Everything (tests, single-node setups).
    All,
}

/// Flags of the CSI server.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Where to listen: unix:///csi/csi.sock or tcp://127.0.0.1:PORT.
    #[arg(long, env = "CSI_ENDPOINT", default_value = "unix:///csi/csi.sock")]
    pub endpoint: Endpoint,
    /// This node's id (the Kubernetes node name), required in node and all modes.
    #[arg(long, env = "NODE_ID")]
    pub node_id: Option<String>,
    /// The CSI driver name; StorageClasses use it as `provisioner:`.
    #[arg(long, env = "DRIVER_NAME", default_value = "dcs.csi.dev")]
    pub driver_name: String,
    /// Which services to serve.
    #[arg(long, value_enum, default_value = "all")]
    pub mode: Mode,
    /// How the node serves a staged volume's FUSE filesystem.
    #[arg(long, value_enum, default_value = "process")]
    pub mounter: MounterKind,
    /// Where the node keeps what it needs across restarts (must survive them: a hostPath).
    #[arg(
        long,
        env = "DCS_STATE_DIR",
        default_value = "/var/lib/kubelet/plugins/dcs.csi.dev/state"
    )]
    pub state_dir: PathBuf,
    /// Namespace of the mount Pods (pod mounter).
    #[arg(long, env = "POD_NAMESPACE", default_value = "dcs-csi")]
    pub mount_namespace: String,
    /// Image of the mount Pods (pod mounter): the driver's own image.
    #[arg(long, env = "DCS_IMAGE", default_value = "dcs-csi:latest")]
    pub mount_image: String,
    /// The kubelet directory on the host (pod mounter).
    #[arg(long, default_value = "/var/lib/kubelet")]
    pub kubelet_dir: String,
}

/// Which mounter the node uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MounterKind {
    /// A detached `dcs-csi mount` process per staged volume.
    Process,
    /// A mount Pod per staged volume, created through the Kubernetes API.
    Pod,
}

/// Serves until SIGTERM/SIGINT.
pub fn run(args: ServeArgs, log_format: &str) -> Result<(), CmdError> {
    validate_driver_name(&args.driver_name)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let controller = matches!(args.mode, Mode::Controller | Mode::All)
            .then(|| ControllerService::new(Arc::new(S3Provider::default())));
        let node = if matches!(args.mode, Mode::Node | Mode::All) {
            let node_id = args
                .node_id
                .clone()
                .filter(|n| !n.is_empty())
                .ok_or("--node-id (or NODE_ID) is required in node and all modes")?;
            let mounter: Arc<dyn Mounter> = match args.mounter {
                MounterKind::Process => Arc::new(ProcessMounter::new(
                    args.state_dir.clone(),
                    std::env::current_exe()?,
                    log_format,
                )?),
                MounterKind::Pod => {
                    let client = kube::Client::try_default()
                        .await
                        .map_err(|e| format!("cannot reach the Kubernetes API for the pod mounter: {e}"))?;
                    let m = PodMounter::new(
                        PodMounterConfig {
                            namespace: args.mount_namespace.clone(),
                            image: args.mount_image.clone(),
                            node_name: node_id.clone(),
                            kubelet_dir: args.kubelet_dir.clone(),
                            log_format: log_format.to_string(),
                        },
                        client,
                    );
                    m.adopt().await?;
                    Arc::new(m)
                }
            };
            Some(NodeService::new(
                node_id,
                NodeOps::new(mounter, Arc::new(SystemMounts)),
            ))
        } else {
            None
        };
        let identity = IdentityService {
            driver_name: args.driver_name.clone(),
            controller: controller.is_some(),
        };
        let routes = routes(identity, controller, node);
        info!(driver = %args.driver_name, mode = ?args.mode, version = env!("CARGO_PKG_VERSION"), "starting");
        serve(&args.endpoint, routes, shutdown_signal()).await
    })
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received, shutting down"),
        _ = int.recv() => info!("SIGINT received, shutting down"),
    }
}
