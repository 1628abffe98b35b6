//! Rust bindings for the Container Storage Interface (CSI) v1.12.0.
//!
//! The messages, enums, tonic clients and tonic servers are generated at
//! build time from `csi.proto` (package `csi.v1`) by `protox` and
//! `tonic-prost-build`; see `build.rs`. Everything lives in [`csi::v1`],
//! re-exported as [`v1`]:
//!
//! * servers: [`v1::identity_server::IdentityServer`],
//!   [`v1::controller_server::ControllerServer`],
//!   [`v1::node_server::NodeServer`],
//!   [`v1::group_controller_server::GroupControllerServer`],
//!   [`v1::snapshot_metadata_server::SnapshotMetadataServer`];
//! * clients: [`v1::identity_client::IdentityClient`] and friends.
//!
//! Fields annotated `(csi_secret)` in the proto (every `secrets` map) hold
//! credentials: never log them. Note that the derived `Debug` impls print
//! them, so do not `{:?}`-format whole requests that carry secrets.

/// The `csi` protobuf package.
pub mod csi {
    /// Generated code for protobuf package `csi.v1`.
    #[allow(missing_docs)]
    pub mod v1 {
        tonic::include_proto!("csi.v1");
    }
}

pub use csi::v1;

#[cfg(test)]
mod tests {
    use super::v1;
    use prost::Message;

    #[test]
    fn controller_capability_enum_has_create_delete_volume() {
        use v1::controller_service_capability::rpc::Type;
        assert_eq!(Type::CreateDeleteVolume as i32, 1);
        assert_eq!(Type::ModifyVolume as i32, 14);
        assert_eq!(Type::GetSnapshot as i32, 15);
        assert_eq!(
            Type::from_str_name("CREATE_DELETE_VOLUME"),
            Some(Type::CreateDeleteVolume)
        );
        assert_eq!(
            Type::CreateDeleteVolume.as_str_name(),
            "CREATE_DELETE_VOLUME"
        );
    }

    #[test]
    fn plugin_and_node_capability_enums() {
        use v1::node_service_capability::rpc::Type as NodeType;
        use v1::plugin_capability::service::Type as ServiceType;
        assert_eq!(ServiceType::ControllerService as i32, 1);
        assert_eq!(ServiceType::SnapshotMetadataService as i32, 4);
        assert_eq!(NodeType::StageUnstageVolume as i32, 1);
        assert_eq!(NodeType::VolumeMountGroup as i32, 6);
        assert_eq!(
            v1::volume_capability::access_mode::Mode::SingleNodeMultiWriter as i32,
            7
        );
    }

    #[test]
    fn create_volume_request_round_trips_with_secrets() {
        let req = v1::CreateVolumeRequest {
            name: "pvc-1234".into(),
            capacity_range: Some(v1::CapacityRange {
                required_bytes: 1 << 30,
                limit_bytes: 0,
            }),
            volume_capabilities: vec![v1::VolumeCapability {
                access_mode: Some(v1::volume_capability::AccessMode {
                    mode: v1::volume_capability::access_mode::Mode::MultiNodeMultiWriter as i32,
                }),
                access_type: Some(v1::volume_capability::AccessType::Mount(
                    v1::volume_capability::MountVolume {
                        fs_type: "fuse".into(),
                        mount_flags: vec!["ro".into()],
                        volume_mount_group: String::new(),
                    },
                )),
            }],
            parameters: [("bucket".to_string(), "b1".to_string())].into(),
            secrets: [
                ("accessKeyID".to_string(), "AKIA".to_string()),
                ("secretAccessKey".to_string(), "s3cr3t".to_string()),
            ]
            .into(),
            volume_content_source: None,
            accessibility_requirements: None,
            mutable_parameters: Default::default(),
        };

        let bytes = req.encode_to_vec();
        let decoded = v1::CreateVolumeRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded, req);
        assert_eq!(decoded.secrets["secretAccessKey"], "s3cr3t");
    }

    #[test]
    fn field_numbers_match_the_spec_on_the_wire() {
        // CreateVolumeRequest.secrets is field 5 (length-delimited map entry):
        // tag = (5 << 3) | 2 = 0x2a.
        let req = v1::CreateVolumeRequest {
            secrets: [("k".to_string(), "v".to_string())].into(),
            ..Default::default()
        };
        assert_eq!(req.encode_to_vec()[0], 0x2a);

        // NodePublishVolumeRequest.target_path is field 4: tag 0x22.
        let req = v1::NodePublishVolumeRequest {
            target_path: "/t".into(),
            ..Default::default()
        };
        assert_eq!(req.encode_to_vec(), vec![0x22, 2, b'/', b't']);
    }

    #[test]
    fn service_servers_and_clients_exist() {
        fn is_service<T>() {}
        is_service::<v1::identity_server::IdentityServer<()>>();
        is_service::<v1::controller_server::ControllerServer<()>>();
        is_service::<v1::node_server::NodeServer<()>>();
        is_service::<v1::group_controller_server::GroupControllerServer<()>>();
        is_service::<v1::snapshot_metadata_server::SnapshotMetadataServer<()>>();
        is_service::<v1::identity_client::IdentityClient<tonic::transport::Channel>>();
        is_service::<v1::node_client::NodeClient<tonic::transport::Channel>>();
        assert_eq!(
            <v1::identity_server::IdentityServer<()> as tonic::server::NamedService>::NAME,
            "csi.v1.Identity"
        );
    }
}
