//! The cluster the end-to-end test plays: the manifests it reads, the driver
//! (one `--mode all` server standing for the controller and node plugins), and
//! what csi-provisioner, kubelet and the container runtime do with them.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::postgres::{self, Postgres};
use crate::common::{CsiServer, Moto};
use crate::kube;
use dcs_csi::config::secrets as secret_keys;
use dcs_csi_proto::v1;
use dcs_csi_proto::v1::controller_client::ControllerClient;
use dcs_csi_proto::v1::identity_client::IdentityClient;
use dcs_csi_proto::v1::node_client::NodeClient;
use dcs_csi_proto::v1::node_service_capability::rpc::Type as NodeRpc;
use dcs_csi_proto::v1::volume_capability::{AccessMode, AccessType, MountVolume};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, Container, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeSpec, PodSpec, Secret, SecretReference, Service,
};
use k8s_openapi::api::storage::v1::{CSIDriver, StorageClass};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_yaml::Value;
use sha2::Digest;
use tonic::transport::Channel;

pub type Docs = Vec<(String, Value)>;

pub const K8S: &str = "csi.storage.k8s.io/";
/// Backup runs, as the schedule would start them.
pub const RUNS: usize = 3;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// helm v4 as scripts/check-manifests.sh installs it (or `$HELM`).
pub fn helm() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("HELM") {
        return Some(h.into());
    }
    let tools = std::env::var_os("DCS_TOOLS_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/dcs-csi-tools")))?;
    Some(tools.join("bin/helm")).filter(|p| p.exists())
}

/// Whether everything the test needs is here; skips locally, fails under CI.
pub fn prerequisites() -> bool {
    let mut missing = Vec::new();
    if !(Path::new("/dev/fuse").exists() && nix::unistd::geteuid().is_root()) {
        missing.push("root and /dev/fuse");
    }
    if postgres::bin_dir().is_none() {
        missing.push("PostgreSQL (apt-get install postgresql)");
    }
    if helm().is_none() {
        missing.push("helm (run scripts/check-manifests.sh once)");
    }
    if missing.is_empty() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "missing: {missing:?}");
    eprintln!("skipped: missing {missing:?} (a failure under CI=true)");
    false
}

/// The documents the test reads, typed.
pub struct Manifests {
    /// Every Secret of examples/ (store credentials, postgres credentials).
    pub secrets: Vec<Secret>,
    pub pvc: PersistentVolumeClaim,
    pub cronjob: CronJob,
    pub restore: Job,
    pub postgres: Deployment,
    pub postgres_svc: Service,
    /// The chart rendered with default values + its StorageClass.
    pub chart: Docs,
}

impl Manifests {
    pub fn load() -> Manifests {
        let root = repo_root();
        let ex = |f: &str| kube::file_documents(&root, f);
        let pg = ex("examples/postgres.yaml");
        let mut secrets: Vec<Secret> = kube::of_kind(&ex("examples/secret.yaml"), "Secret");
        secrets.extend(kube::of_kind::<Secret>(&pg, "Secret"));
        Manifests {
            secrets,
            pvc: kube::one_of_kind(&ex("examples/pvc.yaml"), "PersistentVolumeClaim"),
            cronjob: kube::one_of_kind(&ex("examples/backup-cronjob.yaml"), "CronJob"),
            restore: kube::one_of_kind(&ex("examples/restore-job.yaml"), "Job"),
            postgres: kube::one_of_kind(&pg, "Deployment"),
            postgres_svc: kube::one_of_kind(&pg, "Service"),
            chart: render_chart(),
        }
    }

    pub fn example_storage_class(file: &str) -> StorageClass {
        kube::one_of_kind(&kube::file_documents(&repo_root(), file), "StorageClass")
    }
}

/// `helm template` with default values, the StorageClass switched on and the
/// example Secret as its credentials (what examples/README.md's reader does).
pub fn render_chart() -> Docs {
    let out = Command::new(helm().expect("helm"))
        .args(["template", "dcs-csi"])
        .arg(repo_root().join("charts/dcs-csi"))
        .args(["--namespace", "dcs-csi"])
        .args(["--set", "storageClass.create=true"])
        .args(["--set", "store.existingSecret=dcs-csi-store"])
        .output()
        .expect("run helm");
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    kube::documents(&String::from_utf8(out.stdout).unwrap(), "rendered chart")
        .into_iter()
        .map(|d| ("rendered chart".to_string(), d))
        .collect()
}

/// The dcs-csi container's `--flag=value` of a rendered workload.
pub fn flag(c: &Container, name: &str) -> Option<String> {
    let prefix = format!("--{name}=");
    c.args
        .iter()
        .flatten()
        .find_map(|a| a.strip_prefix(&prefix).map(str::to_string))
}

pub fn containers_of(spec: &Option<PodSpec>) -> Vec<Container> {
    spec.as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default()
}

/// A pod on our node, and where kubelet publishes the PVC for it.
pub struct Pod {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub spec: PodSpec,
    /// The pod's volume name that uses the PVC, and its readOnly flag.
    pub volume: String,
    pub claim_read_only: bool,
    pub target: PathBuf,
}

/// The state a cluster would hold: the clients of the driver's sockets, the
/// stores, the objects.
pub struct Cluster {
    /// Lazily unmounts whatever is left under `root` (a failed assertion must
    /// not leave FUSE mounts behind on a shared machine). Dropped first.
    _sweeper: Sweeper,
    pub m: Manifests,
    pub sc: StorageClass,
    pub pvc: PersistentVolumeClaim,
    pub csidriver: CSIDriver,
    pub driver: String,
    pub moto: Moto,
    pub server: CsiServer,
    pub pg: Postgres,
    pub ctl: ControllerClient<Channel>,
    pub node: NodeClient<Channel>,
    /// The kubelet root directory (`/var/lib/kubelet`).
    pub kubelet: PathBuf,
    pub root: tempfile::TempDir,
    pub pv: Option<PersistentVolume>,
    /// The provisioner Secret (namespace, name), for DeleteVolume.
    pub prov_secret: Option<(String, String)>,
}

pub struct Sweeper(PathBuf);

impl Drop for Sweeper {
    fn drop(&mut self) {
        let root = self.0.display().to_string();
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|p| p.starts_with(&root))
            .collect();
        mounts.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for m in mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

pub fn random_uid() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// Secrets as the sidecar or kubelet reads them from the API server, with the
/// one substitution of this test: the store endpoint is moto.
pub fn store_secrets(
    m: &Manifests,
    moto: &Moto,
    ns: &str,
    name: &str,
    who: &str,
) -> HashMap<String, String> {
    let s = kube::find_secret(&m.secrets, ns, name, who);
    let mut data: HashMap<String, String> = kube::secret_data(s).into_iter().collect();
    let accepted = [
        secret_keys::KEY_ACCESS_KEY_ID,
        secret_keys::KEY_SECRET_ACCESS_KEY,
        secret_keys::KEY_ENDPOINT,
        secret_keys::KEY_REGION,
        secret_keys::KEY_AWS_ACCESS_KEY_ID,
        secret_keys::KEY_AWS_SECRET_ACCESS_KEY,
    ];
    for k in data.keys() {
        assert!(
            accepted.contains(&k.as_str()),
            "Secret {ns}/{name} has key {k:?}, which the driver does not read (accepted: {accepted:?})"
        );
    }
    data.insert(secret_keys::KEY_ENDPOINT.into(), moto.endpoint.clone());
    data
}

pub fn sc_param<'a>(sc: &'a StorageClass, key: &str) -> Option<&'a String> {
    sc.parameters.as_ref().and_then(|p| p.get(key))
}

impl Cluster {
    pub async fn start(sc: StorageClass, m: Manifests) -> Cluster {
        let csidriver: CSIDriver = kube::one_of_kind(&m.chart, "CSIDriver");
        // The driver name the chart runs the node and controller plugins with.
        let ds: DaemonSet = kube::one_of_kind(&m.chart, "DaemonSet");
        let node_c = containers_of(&ds.spec.unwrap().template.spec)
            .into_iter()
            .find(|c| flag(c, "mode").as_deref() == Some("node"))
            .expect("a --mode=node container in the DaemonSet");
        let driver = flag(&node_c, "driver-name").expect("--driver-name on the node plugin");
        let mounter = flag(&node_c, "mounter").unwrap_or_else(|| "process".into());
        assert_eq!(csidriver.metadata.name.as_deref(), Some(driver.as_str()));

        let root = tempfile::Builder::new()
            .prefix("dcs-e2e-")
            .tempdir()
            .unwrap();
        // Traversable by the pods' non-root users, like / on a node.
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let sweeper = Sweeper(root.path().to_path_buf());
        let kubelet = root.path().join("kubelet");
        let state = root.path().join("state");
        let moto = Moto::start();
        let server = CsiServer::start(
            "all",
            &[
                "--driver-name",
                &driver,
                "--mounter",
                &mounter,
                "--state-dir",
                state.to_str().unwrap(),
            ],
        );
        let info = IdentityClient::new(server.channel().await)
            .get_plugin_info(v1::GetPluginInfoRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            sc.provisioner, info.name,
            "StorageClass {:?} names provisioner {:?} but the driver registers as {:?}: no PVC of it would ever be provisioned",
            sc.metadata.name, sc.provisioner, info.name
        );

        // The local PostgreSQL is the example Deployment's: its superuser and
        // password from the postgres image's env (resolved from the Secret).
        let pg_c = &m
            .postgres
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        let pg_env: HashMap<String, String> = kube::container_env(pg_c, "default", &m.secrets)
            .into_iter()
            .collect();
        let pg = Postgres::start(&pg_env["POSTGRES_USER"], &pg_env["POSTGRES_PASSWORD"]);
        pg.psql(
            "postgres",
            &format!("CREATE DATABASE \"{}\"", pg_env["POSTGRES_DB"]),
        );

        let pvc = m.pvc.clone();
        Cluster {
            _sweeper: sweeper,
            ctl: ControllerClient::new(server.channel().await),
            node: NodeClient::new(server.channel().await),
            m,
            sc,
            pvc,
            csidriver,
            driver,
            moto,
            server,
            pg,
            kubelet,
            root,
            pv: None,
            prov_secret: None,
        }
    }

    pub fn pvc_name(&self) -> (String, String) {
        (
            self.pvc.metadata.name.clone().unwrap(),
            self.pvc
                .metadata
                .namespace
                .clone()
                .unwrap_or("default".into()),
        )
    }

    /// csi-provisioner: CreateVolume for the PVC, then the PV it creates.
    pub async fn provision(&mut self) -> v1::Volume {
        let (pvc_name, pvc_ns) = self.pvc_name();
        let pvc_spec = self.pvc.spec.clone().unwrap();
        assert_eq!(
            pvc_spec.storage_class_name, self.sc.metadata.name,
            "the PVC's storageClassName does not name the StorageClass"
        );
        // csi-provisioner's flags in the chart: --extra-create-metadata is what
        // adds the csi.storage.k8s.io/pvc|pv parameters below.
        let dep: Deployment = kube::one_of_kind(&self.m.chart, "Deployment");
        let prov = containers_of(&dep.spec.unwrap().template.spec)
            .into_iter()
            .find(|c| c.name == "csi-provisioner")
            .expect("a csi-provisioner sidecar");
        let prov_args = prov.args.unwrap_or_default();
        assert!(
            prov_args.iter().any(|a| a == "--extra-create-metadata"),
            "{prov_args:?}"
        );
        let default_fstype = flag_in(&prov_args, "default-fstype").unwrap_or_default();

        let pv_name = format!("pvc-{}", random_uid());
        let params = self.sc.parameters.clone().unwrap_or_default();
        let secret_ref = |what: &str| {
            let name = params.get(&format!("{K8S}{what}-secret-name"));
            let ns = params.get(&format!("{K8S}{what}-secret-namespace"));
            match (name, ns) {
                (Some(n), Some(ns)) => (
                    kube::resolve_secret_template(ns, &pv_name, &pvc_name, &pvc_ns),
                    kube::resolve_secret_template(n, &pv_name, &pvc_name, &pvc_ns),
                ),
                _ => panic!(
                    "StorageClass {:?}: {K8S}{what}-secret-name and -namespace are both required (the driver needs store credentials)",
                    self.sc.metadata.name
                ),
            }
        };
        let (prov_ns, prov_secret) = secret_ref("provisioner");
        let (stage_ns, stage_secret) = secret_ref("node-stage");
        let secrets = store_secrets(
            &self.m,
            &self.moto,
            &prov_ns,
            &prov_secret,
            "provisioner-secret-name",
        );
        self.prov_secret = Some((prov_ns.clone(), prov_secret.clone()));

        let mut parameters: HashMap<String, String> = params
            .iter()
            .filter(|(k, _)| !k.starts_with(K8S))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        parameters.insert(format!("{K8S}pvc/name"), pvc_name.clone());
        parameters.insert(format!("{K8S}pvc/namespace"), pvc_ns.clone());
        parameters.insert(format!("{K8S}pv/name"), pv_name.clone());
        let fs_type = params
            .get(&format!("{K8S}fstype"))
            .cloned()
            .unwrap_or(default_fstype);
        let access_modes = pvc_spec.access_modes.clone().unwrap_or_default();
        assert!(!access_modes.is_empty());
        let request = pvc_spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .expect("the PVC requests storage");
        let required = kube::quantity_bytes(&request.0);
        let caps = access_modes
            .iter()
            .map(|m| v1::VolumeCapability {
                access_mode: Some(AccessMode {
                    mode: kube::csi_access_mode(m) as i32,
                }),
                access_type: Some(AccessType::Mount(MountVolume {
                    fs_type: fs_type.clone(),
                    mount_flags: self.sc.mount_options.clone().unwrap_or_default(),
                    volume_mount_group: String::new(),
                })),
            })
            .collect();
        let vol = self
            .ctl
            .create_volume(v1::CreateVolumeRequest {
                name: pv_name.clone(),
                capacity_range: Some(v1::CapacityRange {
                    required_bytes: required,
                    limit_bytes: 0,
                }),
                volume_capabilities: caps,
                parameters,
                secrets,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "CreateVolume for StorageClass {:?}: {e:?}",
                    self.sc.metadata.name
                )
            })
            .into_inner()
            .volume
            .unwrap();
        assert!(!vol.volume_id.is_empty());
        assert!(
            vol.capacity_bytes == 0 || vol.capacity_bytes >= required,
            "capacity {} < requested {required}",
            vol.capacity_bytes
        );
        let capacity = if vol.capacity_bytes > 0 {
            vol.capacity_bytes
        } else {
            required
        };

        let mut attrs: BTreeMap<String, String> = vol.volume_context.clone().into_iter().collect();
        attrs.insert(
            "storage.kubernetes.io/csiProvisionerIdentity".into(),
            format!("1700000000000-{}-{}", rand::random::<u16>(), self.driver),
        );
        self.pv = Some(PersistentVolume {
            metadata: ObjectMeta {
                name: Some(pv_name.clone()),
                annotations: Some(
                    [(
                        "pv.kubernetes.io/provisioned-by".to_string(),
                        self.driver.clone(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                access_modes: Some(access_modes),
                capacity: Some([("storage".to_string(), Quantity(capacity.to_string()))].into()),
                claim_ref: Some(ObjectReference {
                    kind: Some("PersistentVolumeClaim".into()),
                    name: Some(pvc_name),
                    namespace: Some(pvc_ns),
                    ..Default::default()
                }),
                persistent_volume_reclaim_policy: Some(
                    self.sc.reclaim_policy.clone().unwrap_or("Delete".into()),
                ),
                mount_options: self.sc.mount_options.clone(),
                storage_class_name: self.sc.metadata.name.clone(),
                volume_mode: Some("Filesystem".into()),
                csi: Some(CSIPersistentVolumeSource {
                    driver: self.driver.clone(),
                    volume_handle: vol.volume_id.clone(),
                    fs_type: Some(fs_type).filter(|f| !f.is_empty()),
                    volume_attributes: Some(attrs),
                    node_stage_secret_ref: Some(SecretReference {
                        name: Some(stage_secret),
                        namespace: Some(stage_ns),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: None,
        });
        vol
    }

    pub fn pv_csi(&self) -> CSIPersistentVolumeSource {
        self.pv
            .as_ref()
            .unwrap()
            .spec
            .as_ref()
            .unwrap()
            .csi
            .clone()
            .unwrap()
    }

    pub fn staging(&self) -> PathBuf {
        let handle = self.pv_csi().volume_handle;
        let hash: String = sha2::Sha256::digest(handle.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.kubelet.join(format!(
            "plugins/kubernetes.io/csi/{}/{hash}/globalmount",
            self.driver
        ))
    }

    /// kubelet's volume capability for a pod of the PV (first access mode,
    /// fsGroup delegated when the node advertises VOLUME_MOUNT_GROUP).
    pub async fn capability(&mut self, pod: &PodSpec) -> v1::VolumeCapability {
        let caps = self
            .node
            .node_get_capabilities(v1::NodeGetCapabilitiesRequest {})
            .await
            .unwrap()
            .into_inner();
        let mount_group = caps.capabilities.iter().any(|c| {
            matches!(&c.r#type, Some(v1::node_service_capability::Type::Rpc(r))
                if r.r#type == NodeRpc::VolumeMountGroup as i32)
        });
        let fs_group = pod.security_context.as_ref().and_then(|s| s.fs_group);
        if fs_group.is_some() {
            // Without delegation kubelet would chown every file of the bucket.
            assert!(
                mount_group,
                "the pod has an fsGroup but the node does not advertise VOLUME_MOUNT_GROUP"
            );
            assert_eq!(
                self.csidriver.spec.fs_group_policy.as_deref(),
                Some("File"),
                "CSIDriver fsGroupPolicy"
            );
        }
        let pv = self.pv.as_ref().unwrap().spec.clone().unwrap();
        v1::VolumeCapability {
            access_mode: Some(AccessMode {
                mode: kube::csi_access_mode(&pv.access_modes.unwrap()[0]) as i32,
            }),
            access_type: Some(AccessType::Mount(MountVolume {
                fs_type: pv.csi.unwrap().fs_type.unwrap_or_default(),
                mount_flags: pv.mount_options.unwrap_or_default(),
                volume_mount_group: fs_group
                    .filter(|_| mount_group)
                    .map(|g| g.to_string())
                    .unwrap_or_default(),
            })),
        }
    }

    /// kubelet: a pod of `spec` scheduled on our node: NodeStage + NodePublish.
    pub async fn start_pod(&mut self, name: &str, namespace: &str, spec: &PodSpec) -> Pod {
        let (claim, _) = self.pvc_name();
        let vol = spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.persistent_volume_claim.as_ref().map(|c| &c.claim_name) == Some(&claim))
            .unwrap_or_else(|| panic!("pod {name} does not use the PVC {claim}"));
        assert_eq!(
            namespace,
            self.pvc_name().1,
            "pod {name} is not in the PVC's namespace"
        );
        let cap = self.capability(spec).await;
        let csi = self.pv_csi();
        let stage_ref = csi.node_stage_secret_ref.clone().unwrap();
        let secrets = store_secrets(
            &self.m,
            &self.moto,
            stage_ref.namespace.as_deref().unwrap(),
            stage_ref.name.as_deref().unwrap(),
            "node-stage-secret-name",
        );
        let staging = self.staging();
        std::fs::create_dir_all(staging.parent().unwrap()).unwrap();
        self.node
            .node_stage_volume(v1::NodeStageVolumeRequest {
                volume_id: csi.volume_handle.clone(),
                staging_target_path: staging.display().to_string(),
                volume_capability: Some(cap.clone()),
                secrets,
                volume_context: csi
                    .volume_attributes
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("NodeStageVolume for pod {name}: {e:?}"));

        let uid = random_uid();
        let pv_name = self.pv.as_ref().unwrap().metadata.name.clone().unwrap();
        let target = self.kubelet.join(format!(
            "pods/{uid}/volumes/kubernetes.io~csi/{pv_name}/mount"
        ));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        let mut ctx: HashMap<String, String> = csi
            .volume_attributes
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        if self.csidriver.spec.pod_info_on_mount == Some(true) {
            ctx.insert(format!("{K8S}pod.name"), name.into());
            ctx.insert(format!("{K8S}pod.namespace"), namespace.into());
            ctx.insert(format!("{K8S}pod.uid"), uid.clone());
            ctx.insert(
                format!("{K8S}serviceAccount.name"),
                spec.service_account_name
                    .clone()
                    .unwrap_or("default".into()),
            );
            ctx.insert(format!("{K8S}ephemeral"), "false".into());
        }
        let claim_read_only = vol.persistent_volume_claim.as_ref().unwrap().read_only == Some(true);
        self.node
            .node_publish_volume(v1::NodePublishVolumeRequest {
                volume_id: csi.volume_handle.clone(),
                staging_target_path: staging.display().to_string(),
                target_path: target.display().to_string(),
                volume_capability: Some(cap),
                readonly: claim_read_only || csi.read_only == Some(true),
                volume_context: ctx,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("NodePublishVolume for pod {name}: {e:?}"));
        Pod {
            name: name.into(),
            namespace: namespace.into(),
            uid,
            spec: spec.clone(),
            volume: vol.name.clone(),
            claim_read_only,
            target,
        }
    }

    /// kubelet after the pod ended: NodeUnpublish, then NodeUnstage (the last
    /// pod of the volume on this node).
    pub async fn stop_pod(&mut self, pod: Pod) {
        let id = self.pv_csi().volume_handle;
        self.node
            .node_unpublish_volume(v1::NodeUnpublishVolumeRequest {
                volume_id: id.clone(),
                target_path: pod.target.display().to_string(),
            })
            .await
            .unwrap_or_else(|e| panic!("NodeUnpublishVolume for pod {}: {e:?}", pod.name));
        assert!(
            !pod.target.exists(),
            "the target path is left after NodeUnpublish"
        );
        self.node
            .node_unstage_volume(v1::NodeUnstageVolumeRequest {
                volume_id: id,
                staging_target_path: self.staging().display().to_string(),
            })
            .await
            .unwrap_or_else(|e| panic!("NodeUnstageVolume after pod {}: {e:?}", pod.name));
        let root = self.root.path().display().to_string();
        let left: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&root))
            .map(str::to_string)
            .collect();
        assert!(
            left.is_empty(),
            "mounts left after the pod {}: {left:?}",
            pod.name
        );
    }

    /// Where the container runtime mounts the volume of `pod` for its first
    /// container: the volumeMount path (e.g. /backups) as a host directory.
    pub fn container_dir(&self, pod: &Pod, mount_path: &str) -> PathBuf {
        self.root
            .path()
            .join("containers")
            .join(&pod.uid)
            .join(mount_path.trim_start_matches('/'))
    }

    /// The container runtime: bind-mounts the published volume at each of the
    /// container's volumeMounts (read-only when it says so), runs the
    /// container's command with its env and user, unmounts. Returns stdout.
    pub async fn run_container(&self, pod: &Pod) -> String {
        let c = pod.spec.containers[0].clone();
        let mounts: Vec<_> = c
            .volume_mounts
            .iter()
            .flatten()
            .filter(|m| m.name == pod.volume)
            .cloned()
            .collect();
        assert!(
            !mounts.is_empty(),
            "container {} does not mount the volume",
            c.name
        );
        let mut env = kube::container_env(&c, &pod.namespace, &self.m.secrets);
        let mut argv = kube::container_argv(&c, &env);
        let mut bound = Vec::new();
        for m in &mounts {
            assert!(
                m.sub_path.is_none() && m.sub_path_expr.is_none(),
                "subPath is not played"
            );
            let dir = self.container_dir(pod, &m.mount_path);
            std::fs::create_dir_all(&dir).unwrap();
            for d in dir
                .ancestors()
                .take_while(|d| d.starts_with(self.root.path()))
            {
                std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            use nix::mount::{MsFlags, mount};
            mount(
                Some(&pod.target),
                &dir,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .unwrap();
            bound.push(dir.clone());
            if m.read_only == Some(true) || pod.claim_read_only {
                mount(
                    None::<&str>,
                    &dir,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                    None::<&str>,
                )
                .unwrap();
            }
            // Substitution: the container's view of the volume. Env vars that
            // point into the mount path get the host directory.
            let host = dir.display().to_string();
            let mut mapped = false;
            for (_, v) in env.iter_mut() {
                if *v == m.mount_path || v.starts_with(&format!("{}/", m.mount_path)) {
                    *v = format!("{host}{}", &v[m.mount_path.len()..]);
                    mapped = true;
                }
            }
            // A script that hard-codes the mount path instead of reading it from
            // its env gets the path rewritten in its text (said loudly).
            for a in argv.iter_mut().skip(1) {
                if a.contains(&m.mount_path) {
                    eprintln!(
                        "note: rewriting {} to {host} in the command of {}",
                        m.mount_path, c.name
                    );
                    *a = a.replace(&m.mount_path, &host);
                    mapped = true;
                }
            }
            assert!(
                mapped,
                "nothing in {}'s env or command refers to its mount {}",
                c.name, m.mount_path
            );
        }

        // Substitution: PG_HOST names the example Service; here it is the local
        // server on 127.0.0.1, whose port replaces the Service's.
        let svc = &self.m.postgres_svc;
        let svc_dns = format!(
            "{}.{}.svc.cluster.local",
            svc.metadata.name.as_deref().unwrap(),
            svc.metadata.namespace.as_deref().unwrap_or("default")
        );
        let svc_port = svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port;
        let mut saw_host = false;
        for (k, v) in env.iter_mut() {
            match k.as_str() {
                "PG_HOST" | "PGHOST" => {
                    assert_eq!(*v, svc_dns, "{k} does not name the postgres Service");
                    *v = "127.0.0.1".into();
                    saw_host = true;
                }
                "PGPORT" => {
                    assert_eq!(*v, svc_port.to_string());
                    *v = self.pg.port.to_string();
                }
                _ => {}
            }
        }
        assert!(saw_host, "{}: no PG_HOST in the env", c.name);
        if !env.iter().any(|(k, _)| k == "PGPORT") {
            assert_eq!(svc_port, 5432, "the script relies on libpq's default port");
            env.push(("PGPORT".into(), self.pg.port.to_string()));
        }

        let (uid, gid, groups) = kube::identity(&pod.spec, &c);
        let mut cmd = if let Some(uid) = uid {
            let mut cmd = tokio::process::Command::new("setpriv");
            cmd.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={}", gid.unwrap_or(0)));
            if groups.is_empty() {
                cmd.arg("--clear-groups");
            } else {
                let g: Vec<String> = groups.iter().map(u32::to_string).collect();
                cmd.arg(format!("--groups={}", g.join(",")));
            }
            cmd.arg("--").args(&argv);
            cmd
        } else {
            let mut cmd = tokio::process::Command::new(&argv[0]);
            cmd.args(&argv[1..]);
            cmd
        };
        cmd.env_clear()
            .envs(env.iter().cloned())
            // The image's PATH, with this machine's PostgreSQL client programs.
            .env(
                "PATH",
                format!("{}:/usr/local/bin:/usr/bin:/bin", self.pg.bin().display()),
            )
            .env("HOME", "/")
            .current_dir(c.working_dir.as_deref().unwrap_or("/"))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("container {} of pod {} timed out", c.name, pod.name))
            .unwrap();
        for dir in bound {
            nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH).unwrap();
        }
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        eprintln!("--- {} ({}):\n{stdout}{stderr}", pod.name, out.status);
        assert!(
            out.status.success(),
            "container {} of pod {} failed ({}):\n{stdout}\n{stderr}",
            c.name,
            pod.name,
            out.status
        );
        stdout
    }
}

pub fn flag_in(args: &[String], name: &str) -> Option<String> {
    let prefix = format!("--{name}=");
    args.iter()
        .find_map(|a| a.strip_prefix(&prefix).map(str::to_string))
}
