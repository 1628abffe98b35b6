//! The CSI Identity service: who we are, what we offer, whether we are ready.

use dcs_csi_proto::v1;
use dcs_csi_proto::v1::identity_server::Identity;
use dcs_csi_proto::v1::plugin_capability::service::Type as ServiceType;
use tonic::{Request, Response, Status};

/// Identity service state.
#[derive(Debug, Clone)]
pub struct IdentityService {
    /// Driver name (`dcs.csi.dev` by default).
    pub driver_name: String,
    /// Whether this process serves the Controller service.
    pub controller: bool,
}

#[tonic::async_trait]
impl Identity for IdentityService {
    async fn get_plugin_info(
        &self,
        _: Request<v1::GetPluginInfoRequest>,
    ) -> Result<Response<v1::GetPluginInfoResponse>, Status> {
        Ok(Response::new(v1::GetPluginInfoResponse {
            name: self.driver_name.clone(),
            vendor_version: env!("CARGO_PKG_VERSION").to_string(),
            manifest: Default::default(),
        }))
    }

    async fn get_plugin_capabilities(
        &self,
        _: Request<v1::GetPluginCapabilitiesRequest>,
    ) -> Result<Response<v1::GetPluginCapabilitiesResponse>, Status> {
        let mut capabilities = Vec::new();
        if self.controller {
            capabilities.push(v1::PluginCapability {
                r#type: Some(v1::plugin_capability::Type::Service(
                    v1::plugin_capability::Service {
                        r#type: ServiceType::ControllerService as i32,
                    },
                )),
            });
        }
        Ok(Response::new(v1::GetPluginCapabilitiesResponse {
            capabilities,
        }))
    }

    async fn probe(
        &self,
        _: Request<v1::ProbeRequest>,
    ) -> Result<Response<v1::ProbeResponse>, Status> {
        Ok(Response::new(v1::ProbeResponse { ready: Some(true) }))
    }
}
