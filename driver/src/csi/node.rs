//! The CSI Node service: validates kubelet's requests, parses them into types,
//! takes the per-volume lock and calls the node logic (`crate::node`).

use std::collections::HashMap;
use std::path::PathBuf;

use dcs_csi_proto::v1;
use dcs_csi_proto::v1::node_server::Node;
use dcs_csi_proto::v1::node_service_capability::rpc::Type as RpcType;
use tonic::{Request, Response, Status};
use tracing::{debug, instrument};

use super::locks::VolumeLocks;
use super::redact::Redact;
use super::{capability, status};
use crate::config::fsopts::FsOptions;
use crate::config::secrets::StoreSecrets;
use crate::config::volume_id::VolumeId;
use crate::node::{MountSpec, NodeOps};

/// Node service state.
pub struct NodeService {
    node_id: String,
    ops: NodeOps,
    locks: VolumeLocks,
}

impl NodeService {
    /// A node service for node `node_id` over `ops`.
    pub fn new(node_id: String, ops: NodeOps) -> Self {
        NodeService {
            node_id,
            ops,
            locks: VolumeLocks::default(),
        }
    }
}

fn required<'a>(field: &str, v: &'a str) -> Result<&'a str, Status> {
    if v.is_empty() {
        Err(status::missing(field))
    } else {
        Ok(v)
    }
}

fn volume_id(v: &str) -> Result<VolumeId, Status> {
    VolumeId::parse(required("volume_id", v)?).map_err(|r| status::invalid("volume_id", r))
}

fn path(field: &str, v: &str) -> Result<PathBuf, Status> {
    let p = PathBuf::from(required(field, v)?);
    if !p.is_absolute() {
        return Err(status::invalid(field, "must be an absolute path"));
    }
    Ok(p)
}

fn capability_of(c: &Option<v1::VolumeCapability>) -> Result<&v1::VolumeCapability, Status> {
    let c = c
        .as_ref()
        .ok_or_else(|| status::missing("volume_capability"))?;
    capability::check(c).map_err(|r| status::invalid("volume_capability", r))?;
    Ok(c)
}

/// Mount flags we understand; anything else is refused rather than ignored.
fn read_only_flag(c: &v1::VolumeCapability) -> Result<bool, Status> {
    let mut ro = false;
    if let Some(v1::volume_capability::AccessType::Mount(m)) = &c.access_type {
        for f in &m.mount_flags {
            match f.as_str() {
                "ro" => ro = true,
                "rw" | "allow_other" | "noatime" | "nodev" | "nosuid" => {}
                other => {
                    return Err(status::invalid(
                        "volume_capability.mount.mount_flags",
                        format!(
                            "unsupported mount flag {other:?} (supported: ro, rw, allow_other, noatime, nodev, nosuid)"
                        ),
                    ));
                }
            }
        }
    }
    Ok(ro)
}

/// The filesystem options of a stage request: the volume context, then the
/// pod's fsGroup (`volume_mount_group`) as the group, with group write access.
fn fs_options(ctx: &HashMap<String, String>, mount_group: &str) -> Result<FsOptions, Status> {
    let mut fs = FsOptions::parse(ctx)
        .map_err(|e| status::invalid(&format!("volume_context.{}", e.key), &e.reason))?;
    if !mount_group.is_empty() {
        let gid: u32 = mount_group.parse().map_err(|_| {
            status::invalid(
                "volume_capability.mount.volume_mount_group",
                "must be a numeric group id",
            )
        })?;
        fs.gid = Some(gid);
        fs.file_mode = Some(fs.file_mode.unwrap_or(0o644) | 0o060);
        // Group-writable and set-group-ID, as kubelet makes fsGroup volumes:
        // new files take the group, so every pod of the group can use them.
        fs.dir_mode = Some(fs.dir_mode.unwrap_or(0o755) | 0o2070);
    }
    Ok(fs)
}

#[tonic::async_trait]
impl Node for NodeService {
    #[instrument(skip_all, fields(volume_id = %request.get_ref().volume_id))]
    async fn node_stage_volume(
        &self,
        request: Request<v1::NodeStageVolumeRequest>,
    ) -> Result<Response<v1::NodeStageVolumeResponse>, Status> {
        let req = request.into_inner();
        debug!(request = ?req.redacted(), "NodeStageVolume");
        let id = volume_id(&req.volume_id)?;
        let staging = path("staging_target_path", &req.staging_target_path)?;
        let cap = capability_of(&req.volume_capability)?;
        let ro = read_only_flag(cap)? || capability::is_read_only_mode(cap);
        let group = match &cap.access_type {
            Some(v1::volume_capability::AccessType::Mount(m)) => m.volume_mount_group.clone(),
            _ => String::new(),
        };
        let fs = fs_options(&req.volume_context, &group)?;
        let secrets = StoreSecrets::from_map(&req.secrets).map_err(|e| status::from_secrets(&e))?;
        let _g = self.locks.try_lock(&req.volume_id)?;
        let spec = MountSpec {
            volume_id: id,
            staging_path: staging,
            secrets,
            fs,
            read_only: ro,
        };
        self.ops
            .stage(&spec)
            .await
            .map_err(|e| status::from_node(&e))?;
        Ok(Response::new(v1::NodeStageVolumeResponse {}))
    }

    #[instrument(skip_all, fields(volume_id = %request.get_ref().volume_id))]
    async fn node_unstage_volume(
        &self,
        request: Request<v1::NodeUnstageVolumeRequest>,
    ) -> Result<Response<v1::NodeUnstageVolumeResponse>, Status> {
        let req = request.into_inner();
        debug!(request = ?req, "NodeUnstageVolume");
        required("volume_id", &req.volume_id)?;
        let staging = path("staging_target_path", &req.staging_target_path)?;
        let _g = self.locks.try_lock(&req.volume_id)?;
        self.ops
            .unstage(&staging)
            .await
            .map_err(|e| status::from_node(&e))?;
        Ok(Response::new(v1::NodeUnstageVolumeResponse {}))
    }

    #[instrument(skip_all, fields(volume_id = %request.get_ref().volume_id))]
    async fn node_publish_volume(
        &self,
        request: Request<v1::NodePublishVolumeRequest>,
    ) -> Result<Response<v1::NodePublishVolumeResponse>, Status> {
        let req = request.into_inner();
        debug!(request = ?req.redacted(), "NodePublishVolume");
        volume_id(&req.volume_id)?;
        let staging = path("staging_target_path", &req.staging_target_path)?;
        let target = path("target_path", &req.target_path)?;
        let cap = capability_of(&req.volume_capability)?;
        let ro = req.readonly || read_only_flag(cap)? || capability::is_read_only_mode(cap);
        let _g = self.locks.try_lock(&req.volume_id)?;
        self.ops
            .publish(&staging, &target, ro)
            .await
            .map_err(|e| status::from_node(&e))?;
        Ok(Response::new(v1::NodePublishVolumeResponse {}))
    }

    #[instrument(skip_all, fields(volume_id = %request.get_ref().volume_id))]
    async fn node_unpublish_volume(
        &self,
        request: Request<v1::NodeUnpublishVolumeRequest>,
    ) -> Result<Response<v1::NodeUnpublishVolumeResponse>, Status> {
        let req = request.into_inner();
        debug!(request = ?req, "NodeUnpublishVolume");
        required("volume_id", &req.volume_id)?;
        let target = path("target_path", &req.target_path)?;
        let _g = self.locks.try_lock(&req.volume_id)?;
        self.ops
            .unpublish(&target)
            .await
            .map_err(|e| status::from_node(&e))?;
        Ok(Response::new(v1::NodeUnpublishVolumeResponse {}))
    }

    #[instrument(skip_all, fields(volume_id = %request.get_ref().volume_id))]
    async fn node_get_volume_stats(
        &self,
        request: Request<v1::NodeGetVolumeStatsRequest>,
    ) -> Result<Response<v1::NodeGetVolumeStatsResponse>, Status> {
        let req = request.into_inner();
        required("volume_id", &req.volume_id)?;
        let p = path("volume_path", &req.volume_path)?;
        let h = self.ops.health(&p).map_err(|e| status::from_node(&e))?;
        let usage = h
            .usage
            .map(|u| {
                vec![
                    v1::VolumeUsage {
                        available: u.available_bytes,
                        total: u.total_bytes,
                        used: u.used_bytes,
                        unit: v1::volume_usage::Unit::Bytes as i32,
                    },
                    v1::VolumeUsage {
                        available: u.free_inodes,
                        total: u.total_inodes,
                        used: u.used_inodes,
                        unit: v1::volume_usage::Unit::Inodes as i32,
                    },
                ]
            })
            .unwrap_or_default();
        Ok(Response::new(v1::NodeGetVolumeStatsResponse {
            usage,
            volume_condition: Some(v1::VolumeCondition {
                abnormal: h.abnormal.is_some(),
                message: h.abnormal.unwrap_or_else(|| "mounted and answering".into()),
            }),
        }))
    }

    async fn node_expand_volume(
        &self,
        _: Request<v1::NodeExpandVolumeRequest>,
    ) -> Result<Response<v1::NodeExpandVolumeResponse>, Status> {
        Err(Status::unimplemented(
            "NodeExpandVolume is not supported: buckets have no size to grow",
        ))
    }

    async fn node_get_capabilities(
        &self,
        _: Request<v1::NodeGetCapabilitiesRequest>,
    ) -> Result<Response<v1::NodeGetCapabilitiesResponse>, Status> {
        let capabilities = [
            RpcType::StageUnstageVolume,
            RpcType::GetVolumeStats,
            RpcType::VolumeCondition,
            RpcType::VolumeMountGroup,
        ]
        .into_iter()
        .map(|t| v1::NodeServiceCapability {
            r#type: Some(v1::node_service_capability::Type::Rpc(
                v1::node_service_capability::Rpc { r#type: t as i32 },
            )),
        })
        .collect();
        Ok(Response::new(v1::NodeGetCapabilitiesResponse {
            capabilities,
        }))
    }

    async fn node_get_info(
        &self,
        _: Request<v1::NodeGetInfoRequest>,
    ) -> Result<Response<v1::NodeGetInfoResponse>, Status> {
        Ok(Response::new(v1::NodeGetInfoResponse {
            node_id: self.node_id.clone(),
            max_volumes_per_node: 0,
            accessible_topology: None,
        }))
    }
}
