//! The CSI Controller service: CreateVolume / DeleteVolume (a bucket or a
//! prefix per volume), ValidateVolumeCapabilities, ControllerGetCapabilities.
//! Everything else answers `UNIMPLEMENTED`. Each handler validates its request
//! first, parses it into types, takes the per-volume lock, then calls the
//! volume layer.

use std::sync::Arc;

use dcs_csi_proto::v1;
use dcs_csi_proto::v1::controller_server::Controller;
use dcs_csi_proto::v1::controller_service_capability::rpc::Type as RpcType;
use tonic::{Request, Response, Status};
use tracing::{debug, info, instrument};

use super::locks::VolumeLocks;
use super::redact::Redact;
use super::stores::StoreProvider;
use super::{capability, status};
use crate::config::fsopts::FsOptions;
use crate::config::params::VolumeParams;
use crate::config::secrets::StoreSecrets;
use crate::config::volume_id::VolumeId;
use crate::volume::{self, Capacity, Deleted};

/// Controller service state.
pub struct ControllerService {
    stores: Arc<dyn StoreProvider>,
    locks: VolumeLocks,
}

impl ControllerService {
    /// A controller that reaches stores through `stores`.
    pub fn new(stores: Arc<dyn StoreProvider>) -> Self {
        ControllerService {
            stores,
            locks: VolumeLocks::default(),
        }
    }
}

macro_rules! unimplemented_rpcs {
    ($($name:ident($req:ident) -> $resp:ident;)*) => {$(
        // Written in the shape `async_trait` expands to, since the attribute does
        // not see into macro output.
        fn $name<'life0, 'async_trait>(
            &'life0 self,
            _: Request<v1::$req>,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<v1::$resp>, Status>> + Send + 'async_trait>>
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            Box::pin(async {
                Err(Status::unimplemented(concat!(stringify!($name), " is not supported by dcs-csi")))
            })
        }
    )*};
}

fn secrets(req: &std::collections::HashMap<String, String>) -> Result<StoreSecrets, Status> {
    StoreSecrets::from_map(req).map_err(|e| status::from_secrets(&e))
}

#[tonic::async_trait]
impl Controller for ControllerService {
    #[instrument(skip_all, fields(name = %request.get_ref().name))]
    async fn create_volume(
        &self,
        request: Request<v1::CreateVolumeRequest>,
    ) -> Result<Response<v1::CreateVolumeResponse>, Status> {
        let req = request.into_inner();
        debug!(request = ?req.redacted(), "CreateVolume");
        if req.name.is_empty() {
            return Err(status::missing("name"));
        }
        capability::check_all(&req.volume_capabilities).map_err(|(f, r)| status::invalid(&f, r))?;
        if req.volume_content_source.is_some() {
            return Err(status::invalid(
                "volume_content_source",
                "snapshots and cloning are not supported",
            ));
        }
        let params = VolumeParams::parse(&req.parameters).map_err(|e| status::from_param(&e))?;
        if let Some(m) = &params.ignored_mounter {
            info!(mounter = %m, "parameter mounter is accepted for csi-s3 compatibility and ignored: dcs-csi always uses its own FUSE filesystem");
        }
        let capacity = req
            .capacity_range
            .map(|c| Capacity {
                required: c.required_bytes,
                limit: c.limit_bytes,
            })
            .unwrap_or_default();
        let creds = secrets(&req.secrets)?;
        let _guard = self.locks.try_lock(&req.name)?;
        let store = self
            .stores
            .store(&creds, params.fs.checksum.unwrap_or_default());
        let v = volume::create(store.as_ref(), &req.name, &params, capacity)
            .await
            .map_err(|e| status::from_volume(&e))?;
        Ok(Response::new(v1::CreateVolumeResponse {
            volume: Some(v1::Volume {
                capacity_bytes: v.capacity_bytes,
                volume_id: v.id.to_string(),
                volume_context: v.context.into_iter().collect(),
                content_source: None,
                accessible_topology: vec![],
            }),
        }))
    }

    #[instrument(skip_all, fields(volume_id = %request.get_ref().volume_id))]
    async fn delete_volume(
        &self,
        request: Request<v1::DeleteVolumeRequest>,
    ) -> Result<Response<v1::DeleteVolumeResponse>, Status> {
        let req = request.into_inner();
        debug!(request = ?req.redacted(), "DeleteVolume");
        if req.volume_id.is_empty() {
            return Err(status::missing("volume_id"));
        }
        let id = match VolumeId::parse(&req.volume_id) {
            Ok(id) => id,
            Err(reason) => {
                // Not an id we could have issued, so no such volume exists: OK (CSI spec).
                info!(%reason, "DeleteVolume of an id dcs-csi never issued: nothing to delete");
                return Ok(Response::new(v1::DeleteVolumeResponse {}));
            }
        };
        let creds = secrets(&req.secrets)?;
        let _guard = self.locks.try_lock(&req.volume_id)?;
        let store = self.stores.store(&creds, Default::default());
        match volume::delete(store.as_ref(), &id)
            .await
            .map_err(|e| status::from_volume(&e))?
        {
            Deleted::Removed(n) => debug!(objects = n, "deleted"),
            Deleted::NotFound => info!("volume did not exist"),
            Deleted::KeptForeignData => {}
        }
        Ok(Response::new(v1::DeleteVolumeResponse {}))
    }

    #[instrument(skip_all, fields(volume_id = %request.get_ref().volume_id))]
    async fn validate_volume_capabilities(
        &self,
        request: Request<v1::ValidateVolumeCapabilitiesRequest>,
    ) -> Result<Response<v1::ValidateVolumeCapabilitiesResponse>, Status> {
        let req = request.into_inner();
        debug!(request = ?req.redacted(), "ValidateVolumeCapabilities");
        if req.volume_id.is_empty() {
            return Err(status::missing("volume_id"));
        }
        if req.volume_capabilities.is_empty() {
            return Err(status::missing("volume_capabilities"));
        }
        let id = VolumeId::parse(&req.volume_id)
            .map_err(|r| Status::not_found(format!("volume {:?}: {r}", req.volume_id)))?;
        if !req.secrets.is_empty() {
            let creds = secrets(&req.secrets)?;
            let store = self.stores.store(&creds, Default::default());
            let exists = volume::marker::read(store.as_ref(), &id)
                .await
                .map_err(|e| status::from_store(&e))?
                .is_some()
                || store
                    .bucket_exists(&id.bucket)
                    .await
                    .map_err(|e| status::from_store(&e))?;
            if !exists {
                return Err(Status::not_found(format!("volume {id} does not exist")));
            }
        }
        FsOptions::parse(&req.volume_context)
            .map_err(|e| status::invalid(&format!("volume_context.{}", e.key), &e.reason))?;
        let unsupported = req
            .volume_capabilities
            .iter()
            .find_map(|c| capability::check(c).err());
        let resp = match unsupported {
            Some(message) => v1::ValidateVolumeCapabilitiesResponse {
                confirmed: None,
                message,
            },
            None => v1::ValidateVolumeCapabilitiesResponse {
                confirmed: Some(v1::validate_volume_capabilities_response::Confirmed {
                    volume_context: req.volume_context,
                    volume_capabilities: req.volume_capabilities,
                    parameters: req.parameters,
                    mutable_parameters: Default::default(),
                }),
                message: String::new(),
            },
        };
        Ok(Response::new(resp))
    }

    async fn controller_get_capabilities(
        &self,
        _: Request<v1::ControllerGetCapabilitiesRequest>,
    ) -> Result<Response<v1::ControllerGetCapabilitiesResponse>, Status> {
        let capabilities = [RpcType::CreateDeleteVolume]
            .into_iter()
            .map(|t| v1::ControllerServiceCapability {
                r#type: Some(v1::controller_service_capability::Type::Rpc(
                    v1::controller_service_capability::Rpc { r#type: t as i32 },
                )),
            })
            .collect();
        Ok(Response::new(v1::ControllerGetCapabilitiesResponse {
            capabilities,
        }))
    }

    unimplemented_rpcs! {
        controller_publish_volume(ControllerPublishVolumeRequest) -> ControllerPublishVolumeResponse;
        controller_unpublish_volume(ControllerUnpublishVolumeRequest) -> ControllerUnpublishVolumeResponse;
        list_volumes(ListVolumesRequest) -> ListVolumesResponse;
        get_capacity(GetCapacityRequest) -> GetCapacityResponse;
        create_snapshot(CreateSnapshotRequest) -> CreateSnapshotResponse;
        delete_snapshot(DeleteSnapshotRequest) -> DeleteSnapshotResponse;
        list_snapshots(ListSnapshotsRequest) -> ListSnapshotsResponse;
        get_snapshot(GetSnapshotRequest) -> GetSnapshotResponse;
        controller_expand_volume(ControllerExpandVolumeRequest) -> ControllerExpandVolumeResponse;
        controller_get_volume(ControllerGetVolumeRequest) -> ControllerGetVolumeResponse;
        controller_modify_volume(ControllerModifyVolumeRequest) -> ControllerModifyVolumeResponse;
    }
}
