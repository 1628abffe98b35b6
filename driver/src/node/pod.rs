//! The `pod` mounter: each staged volume is served by `dcs-csi mount` in a
//! mount Pod of its own, created by the node plugin through the Kubernetes API
//! on this node (the approach of the AWS and JuiceFS drivers). A container
//! restart of the node plugin kills only the plugin's own processes; the mount
//! Pods, and so the mounts, keep running through plugin restarts and DaemonSet
//! upgrades. The FUSE mount is made inside the Pod at the staging path, on the
//! host's kubelet directory shared with `Bidirectional` propagation.
//!
//! Credentials go to a Secret per mount, mounted into the Pod as a file; the
//! Secret is owned by the Pod, so Kubernetes removes it with the Pod.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Container, HostPathVolumeSource, Pod, PodSpec, Secret, SecretVolumeSource, SecurityContext,
    Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::NodeError;
use super::mounter::{MountSpec, MountState, Mounter};
use super::process::mount_args;
use super::system;

/// Label on every mount Pod and Secret.
pub const LABEL_APP: &str = "app.kubernetes.io/name";
/// Value of [`LABEL_APP`].
pub const APP: &str = "dcs-csi-mount";
/// Label: the node the mount Pod serves.
pub const LABEL_NODE: &str = "dcs.csi.dev/node";
/// Annotation: the volume id served.
pub const ANN_VOLUME: &str = "dcs.csi.dev/volume-id";
/// Annotation: the staging path served.
pub const ANN_STAGING: &str = "dcs.csi.dev/staging-path";
/// Where the credentials Secret is mounted in the Pod.
const CREDS_DIR: &str = "/run/dcs-csi/credentials";
/// Key of the credentials file in the Secret.
const CREDS_KEY: &str = "credentials.json";
/// How long a mount Pod may take to mount (image pull included).
const MOUNT_TIMEOUT: Duration = Duration::from_secs(120);

/// Settings of the pod mounter.
#[derive(Debug, Clone)]
pub struct PodMounterConfig {
    /// Namespace of the mount Pods (the driver's).
    pub namespace: String,
    /// Image of the mount Pods (the driver's own image).
    pub image: String,
    /// This node's name.
    pub node_name: String,
    /// Host directory holding kubelet's staging paths.
    pub kubelet_dir: String,
    /// Log format passed to the mount process.
    pub log_format: String,
}

/// The pod mounter.
#[derive(Clone)]
pub struct PodMounter {
    cfg: PodMounterConfig,
    client: kube::Client,
}

/// Name of the mount Pod (and Secret) of a staging path on a node.
pub fn object_name(node: &str, staging: &Path) -> String {
    let mut h = Sha256::new();
    h.update(node.as_bytes());
    h.update([0]);
    h.update(staging.as_os_str().as_encoded_bytes());
    let d = h.finalize();
    let hex: String = d.iter().take(10).map(|b| format!("{b:02x}")).collect();
    format!("dcs-mount-{hex}")
}

fn labels(node: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_APP.to_string(), APP.to_string()),
        (LABEL_NODE.to_string(), node.to_string()),
    ])
}

fn kube_err(what: &str, e: kube::Error) -> NodeError {
    NodeError::Kube(format!("{what}: {e}"))
}

impl PodMounter {
    /// A pod mounter using `client`.
    pub fn new(cfg: PodMounterConfig, client: kube::Client) -> Self {
        PodMounter { cfg, client }
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.cfg.namespace)
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.cfg.namespace)
    }

    /// The mount Pod for `spec` (credentials only as a mounted Secret file).
    pub fn pod_for(&self, spec: &MountSpec) -> Pod {
        let name = object_name(&self.cfg.node_name, &spec.staging_path);
        let creds = Path::new(CREDS_DIR).join(CREDS_KEY);
        let cache = Path::new("/tmp/dcs-cache");
        let args = mount_args(spec, &creds, cache, &self.cfg.log_format);
        let kubelet = self.cfg.kubelet_dir.clone();
        Pod {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(self.cfg.namespace.clone()),
                labels: Some(labels(&self.cfg.node_name)),
                annotations: Some(BTreeMap::from([
                    (ANN_VOLUME.to_string(), spec.volume_id.to_string()),
                    (
                        ANN_STAGING.to_string(),
                        spec.staging_path.display().to_string(),
                    ),
                ])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some(self.cfg.node_name.clone()),
                restart_policy: Some("Never".into()),
                priority_class_name: Some("system-node-critical".into()),
                termination_grace_period_seconds: Some(30),
                tolerations: Some(vec![Toleration {
                    operator: Some("Exists".into()),
                    ..Default::default()
                }]),
                containers: vec![Container {
                    name: "mount".into(),
                    image: Some(self.cfg.image.clone()),
                    command: Some(vec!["/usr/local/bin/dcs-csi".into()]),
                    args: Some(args),
                    security_context: Some(SecurityContext {
                        privileged: Some(true),
                        run_as_user: Some(0),
                        ..Default::default()
                    }),
                    volume_mounts: Some(vec![
                        VolumeMount {
                            name: "kubelet".into(),
                            mount_path: kubelet.clone(),
                            mount_propagation: Some("Bidirectional".into()),
                            ..Default::default()
                        },
                        VolumeMount {
                            name: "fuse".into(),
                            mount_path: "/dev/fuse".into(),
                            ..Default::default()
                        },
                        VolumeMount {
                            name: "credentials".into(),
                            mount_path: CREDS_DIR.into(),
                            read_only: Some(true),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                }],
                volumes: Some(vec![
                    Volume {
                        name: "kubelet".into(),
                        host_path: Some(HostPathVolumeSource {
                            path: kubelet,
                            type_: Some("Directory".into()),
                        }),
                        ..Default::default()
                    },
                    Volume {
                        name: "fuse".into(),
                        host_path: Some(HostPathVolumeSource {
                            path: "/dev/fuse".into(),
                            type_: Some("CharDevice".into()),
                        }),
                        ..Default::default()
                    },
                    Volume {
                        name: "credentials".into(),
                        secret: Some(SecretVolumeSource {
                            secret_name: Some(name),
                            default_mode: Some(0o400),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }),
            status: None,
        }
    }

    /// The credentials Secret of a mount Pod, owned by it.
    pub fn secret_for(&self, spec: &MountSpec, pod: &Pod) -> Secret {
        let body = serde_json::to_vec(&spec.secrets.to_map()).expect("map serialises");
        Secret {
            metadata: ObjectMeta {
                name: pod.metadata.name.clone(),
                namespace: Some(self.cfg.namespace.clone()),
                labels: Some(labels(&self.cfg.node_name)),
                owner_references: pod.metadata.uid.clone().map(|uid| {
                    vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Pod".into(),
                        name: pod.metadata.name.clone().unwrap_or_default(),
                        uid,
                        controller: Some(false),
                        block_owner_deletion: Some(false),
                    }]
                }),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(CREDS_KEY.to_string(), ByteString(body))])),
            type_: Some("Opaque".into()),
            ..Default::default()
        }
    }

    /// Creates the mount Pod and its Secret (both idempotently: existing ones
    /// are kept, so a restarted plugin adopts what it created before).
    pub async fn create_objects(&self, spec: &MountSpec) -> Result<Pod, NodeError> {
        let want = self.pod_for(spec);
        let name = want.metadata.name.clone().unwrap_or_default();
        let pod = match self.pods().create(&PostParams::default(), &want).await {
            Ok(p) => p,
            Err(kube::Error::Api(s)) if s.is_already_exists() => self
                .pods()
                .get(&name)
                .await
                .map_err(|e| kube_err("reading the mount pod", e))?,
            Err(e) => return Err(kube_err("creating the mount pod", e)),
        };
        match self
            .secrets()
            .create(&PostParams::default(), &self.secret_for(spec, &pod))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_already_exists() => {}
            Err(e) => return Err(kube_err("creating the credentials secret", e)),
        }
        info!(pod = %name, volume = %spec.volume_id, "mount pod created");
        Ok(pod)
    }

    /// Deletes the mount Pod of `staging` and its Secret; missing ones are fine.
    pub async fn delete_objects(&self, staging: &Path) -> Result<(), NodeError> {
        let name = object_name(&self.cfg.node_name, staging);
        for r in [
            self.pods()
                .delete(&name, &DeleteParams::default())
                .await
                .map(|_| ()),
            self.secrets()
                .delete(&name, &DeleteParams::default())
                .await
                .map(|_| ()),
        ] {
            match r {
                Ok(()) => {}
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(e) => return Err(kube_err("deleting the mount pod", e)),
            }
        }
        Ok(())
    }

    /// The mount Pods of this node (what a restarted plugin adopts).
    pub async fn list_mount_pods(&self) -> Result<Vec<Pod>, NodeError> {
        let sel = format!("{LABEL_APP}={APP},{LABEL_NODE}={}", self.cfg.node_name);
        let list = self
            .pods()
            .list(&ListParams::default().labels(&sel))
            .await
            .map_err(|e| kube_err("listing mount pods", e))?;
        Ok(list.items)
    }

    /// Logs the mount Pods found at start-up and whether their mounts are live.
    pub async fn adopt(&self) -> Result<usize, NodeError> {
        let pods = self.list_mount_pods().await?;
        for p in &pods {
            let staging = p
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANN_STAGING))
                .cloned()
                .unwrap_or_default();
            match system::state(Path::new(&staging)) {
                MountState::Live => {
                    info!(pod = ?p.metadata.name, %staging, "adopted live mount pod")
                }
                other => {
                    warn!(pod = ?p.metadata.name, %staging, state = ?other, "mount pod without a live mount; cleaned up on unstage")
                }
            }
        }
        Ok(pods.len())
    }

    async fn pod_failed(&self, name: &str) -> Option<String> {
        let p = self.pods().get_opt(name).await.ok()??;
        let phase = p.status.as_ref()?.phase.clone()?;
        (phase == "Failed" || phase == "Succeeded").then(|| format!("mount pod {name} is {phase}"))
    }
}

#[async_trait]
impl Mounter for PodMounter {
    async fn start(&self, spec: &MountSpec) -> Result<(), NodeError> {
        let pod = self.create_objects(spec).await?;
        let name = pod.metadata.name.unwrap_or_default();
        let t0 = Instant::now();
        loop {
            if system::state(&spec.staging_path) == MountState::Live {
                return Ok(());
            }
            if let Some(why) = self.pod_failed(&name).await {
                let _ = self.delete_objects(&spec.staging_path).await;
                return Err(NodeError::Mount(format!(
                    "{why}; see `kubectl logs -n {} {name}`",
                    self.cfg.namespace
                )));
            }
            if t0.elapsed() > MOUNT_TIMEOUT {
                return Err(NodeError::Mount(format!(
                    "mount pod {name} did not mount within {MOUNT_TIMEOUT:?}; see `kubectl describe pod -n {} {name}`",
                    self.cfg.namespace
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn stop(&self, staging: &Path) -> Result<(), NodeError> {
        if system::state(staging) != MountState::NotMounted {
            system::unmount(staging)?;
        }
        self.delete_objects(staging).await
    }
}

#[cfg(test)]
mod tests;
