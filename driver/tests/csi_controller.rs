//! gRPC tests of the Identity and Controller services: the real binary on a
//! unix socket, called with the generated tonic client as external-provisioner
//! would, against a real S3 server (moto) on 127.0.0.1. Assertions look at the
//! bucket's real state through the S3 API.

mod common;

use std::collections::HashMap;

use bytes::Bytes;
use common::{CsiServer, Moto, SECRET, mount_cap};
use dcs_csi::store::{ObjectStore, UserMetadata, list_all};
use dcs_csi_proto::v1;
use dcs_csi_proto::v1::controller_client::ControllerClient;
use dcs_csi_proto::v1::identity_client::IdentityClient;
use dcs_csi_proto::v1::volume_capability::access_mode::Mode;
use tonic::Code;

const PVC: &str = "pvc-6d1f0c1e-2b7a-4f0e-8d7c-1a2b3c4d5e6f";
const GIB: i64 = 1 << 30;

/// A CreateVolumeRequest as csi-provisioner sends it with --extra-create-metadata.
fn create_req(moto: &Moto, name: &str, params: &[(&str, &str)]) -> v1::CreateVolumeRequest {
    let mut parameters: HashMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    parameters.insert("csi.storage.k8s.io/pvc/name".into(), "backups".into());
    parameters.insert("csi.storage.k8s.io/pvc/namespace".into(), "default".into());
    parameters.insert("csi.storage.k8s.io/pv/name".into(), name.into());
    v1::CreateVolumeRequest {
        name: name.into(),
        capacity_range: Some(v1::CapacityRange {
            required_bytes: GIB,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![mount_cap(Mode::MultiNodeMultiWriter)],
        parameters,
        secrets: moto.secrets(),
        ..Default::default()
    }
}

async fn setup() -> (Moto, CsiServer, ControllerClient<tonic::transport::Channel>) {
    let moto = Moto::start();
    let server = CsiServer::start("controller", &[]);
    let client = ControllerClient::new(server.channel().await);
    (moto, server, client)
}

#[tokio::test]
async fn identity_reports_name_version_capabilities_and_readiness() {
    let server = CsiServer::start("controller", &["--driver-name", "s3.example.org"]);
    let mut id = IdentityClient::new(server.channel().await);
    let info = id
        .get_plugin_info(v1::GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, "s3.example.org");
    assert_eq!(info.vendor_version, env!("CARGO_PKG_VERSION"));
    let caps = id
        .get_plugin_capabilities(v1::GetPluginCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    let has_controller = caps.capabilities.iter().any(|c| {
        matches!(&c.r#type, Some(v1::plugin_capability::Type::Service(s))
            if s.r#type == v1::plugin_capability::service::Type::ControllerService as i32)
    });
    assert!(has_controller, "{caps:?}");
    let probe = id.probe(v1::ProbeRequest {}).await.unwrap().into_inner();
    assert_eq!(probe.ready, Some(true));
    let mut ctl = ControllerClient::new(server.channel().await);
    let caps = ctl
        .controller_get_capabilities(v1::ControllerGetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(caps.capabilities.len(), 1);
}

#[tokio::test]
async fn create_volume_makes_a_bucket_and_is_idempotent() {
    let (moto, server, mut ctl) = setup().await;
    let store = moto.store();
    let v1r = ctl
        .create_volume(create_req(&moto, PVC, &[("uid", "999")]))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(v1r.volume_id, PVC);
    assert_eq!(v1r.capacity_bytes, GIB);
    assert_eq!(
        v1r.volume_context.get("uid").map(String::as_str),
        Some("999")
    );
    assert!(
        store.bucket_exists(PVC).await.unwrap(),
        "bucket was not created"
    );

    // Same request again: same volume.
    let again = ctl
        .create_volume(create_req(&moto, PVC, &[("uid", "999")]))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(again, v1r);

    // Same name, incompatible capacity or parameters: ALREADY_EXISTS.
    let mut bigger = create_req(&moto, PVC, &[("uid", "999")]);
    bigger.capacity_range = Some(v1::CapacityRange {
        required_bytes: 2 * GIB,
        limit_bytes: 0,
    });
    assert_eq!(
        ctl.create_volume(bigger).await.unwrap_err().code(),
        Code::AlreadyExists
    );
    let other = create_req(&moto, PVC, &[("uid", "1000")]);
    assert_eq!(
        ctl.create_volume(other).await.unwrap_err().code(),
        Code::AlreadyExists
    );

    assert!(
        !server.logs().contains(SECRET),
        "the secret reached the log"
    );
    assert!(
        server.logs().contains("CreateVolume"),
        "requests are logged"
    );
}

#[tokio::test]
async fn delete_volume_removes_objects_uploads_and_bucket_and_is_idempotent() {
    let (moto, _server, mut ctl) = setup().await;
    let store = moto.store();
    let vol = ctl
        .create_volume(create_req(&moto, PVC, &[]))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    for i in 0..40 {
        store
            .put_object(
                PVC,
                &format!("dumps/{i:03}.dump"),
                Bytes::from(vec![7u8; 100]),
                &UserMetadata::new(),
            )
            .await
            .unwrap();
    }
    store
        .create_multipart(PVC, "dumps/incomplete", &UserMetadata::new())
        .await
        .unwrap();
    let del = v1::DeleteVolumeRequest {
        volume_id: vol.volume_id.clone(),
        secrets: moto.secrets(),
    };
    ctl.delete_volume(del.clone()).await.unwrap();
    assert!(
        !store.bucket_exists(PVC).await.unwrap(),
        "bucket still exists"
    );
    // Idempotent: deleting again, and deleting an id we never issued, succeed.
    ctl.delete_volume(del.clone()).await.unwrap();
    ctl.delete_volume(v1::DeleteVolumeRequest {
        volume_id: "no such volume!".into(),
        secrets: moto.secrets(),
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn shared_bucket_mode_creates_and_deletes_only_the_prefix() {
    let (moto, _server, mut ctl) = setup().await;
    let store = moto.store();
    let params = [
        ("bucket", "shared-vols"),
        ("usePrefix", "true"),
        ("prefix", "k8s"),
        ("mounter", "rclone"),
    ];
    // The shared bucket must exist first.
    let e = ctl
        .create_volume(create_req(&moto, PVC, &params))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    store.create_bucket("shared-vols").await.unwrap();
    store
        .put_object(
            "shared-vols",
            "unrelated.txt",
            Bytes::from_static(b"keep"),
            &UserMetadata::new(),
        )
        .await
        .unwrap();

    let a = ctl
        .create_volume(create_req(&moto, PVC, &params))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let b = ctl
        .create_volume(create_req(&moto, "pvc-other", &params))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(a.volume_id, format!("shared-vols/k8s/{PVC}"));
    for v in [&a, &b] {
        let key = format!("{}/data.bin", v.volume_id.split_once('/').unwrap().1);
        store
            .put_object(
                "shared-vols",
                &key,
                Bytes::from_static(b"x"),
                &UserMetadata::new(),
            )
            .await
            .unwrap();
    }
    ctl.delete_volume(v1::DeleteVolumeRequest {
        volume_id: a.volume_id.clone(),
        secrets: moto.secrets(),
    })
    .await
    .unwrap();
    assert!(store.bucket_exists("shared-vols").await.unwrap());
    assert!(
        list_all(&store, "shared-vols", &format!("k8s/{PVC}/"))
            .await
            .unwrap()
            .is_empty()
    );
    let mut left: Vec<String> = list_all(&store, "shared-vols", "")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "k8s/pvc-other/.dcs-csi-volume.json",
            "k8s/pvc-other/data.bin",
            "unrelated.txt"
        ]
    );
}

#[tokio::test]
async fn invalid_requests_are_invalid_argument_naming_the_field() {
    let (moto, _server, mut ctl) = setup().await;
    let cases: Vec<(&str, v1::CreateVolumeRequest)> = vec![
        (
            "name",
            v1::CreateVolumeRequest {
                name: String::new(),
                ..create_req(&moto, PVC, &[])
            },
        ),
        (
            "volume_capabilities",
            v1::CreateVolumeRequest {
                volume_capabilities: vec![],
                ..create_req(&moto, PVC, &[])
            },
        ),
        ("volume_capabilities[0]", {
            let mut r = create_req(&moto, PVC, &[]);
            r.volume_capabilities[0].access_type =
                Some(v1::volume_capability::AccessType::Block(Default::default()));
            r
        }),
        (
            "parameters.colour",
            create_req(&moto, PVC, &[("colour", "blue")]),
        ),
        (
            "parameters.fileMode",
            create_req(&moto, PVC, &[("fileMode", "999")]),
        ),
        (
            "secrets",
            v1::CreateVolumeRequest {
                secrets: HashMap::new(),
                ..create_req(&moto, PVC, &[])
            },
        ),
        ("capacity_range", {
            let mut r = create_req(&moto, PVC, &[]);
            r.capacity_range = Some(v1::CapacityRange {
                required_bytes: 10,
                limit_bytes: 5,
            });
            r
        }),
    ];
    for (field, req) in cases {
        let e = ctl.create_volume(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{field}: {e:?}");
        assert!(e.message().starts_with(field), "{field}: {}", e.message());
    }
    let e = ctl
        .delete_volume(v1::DeleteVolumeRequest {
            volume_id: String::new(),
            secrets: moto.secrets(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("volume_id"));
    let e = ctl
        .controller_publish_volume(v1::ControllerPublishVolumeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
}

#[tokio::test]
async fn an_unreachable_store_is_unavailable_with_a_clear_message() {
    let moto = Moto::start();
    let server = CsiServer::start("controller", &[]);
    let mut ctl = ControllerClient::new(server.channel().await);
    let mut req = create_req(&moto, PVC, &[]);
    let dead = format!("http://127.0.0.1:{}", common::free_port());
    req.secrets.insert("endpoint".into(), dead);
    let e = ctl.create_volume(req).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(
        e.message().contains("cannot reach the store"),
        "{}",
        e.message()
    );
    assert!(!e.message().contains(SECRET));
    assert!(!server.logs().contains(SECRET));
}

#[tokio::test]
async fn concurrent_creates_of_one_volume_are_ok_or_aborted() {
    let (moto, _server, ctl) = setup().await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut c = ctl.clone();
        let req = create_req(&moto, PVC, &[]);
        tasks.push(tokio::spawn(async move { c.create_volume(req).await }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                assert_eq!(r.into_inner().volume.unwrap().volume_id, PVC);
                ok += 1;
            }
            Err(e) => assert_eq!(e.code(), Code::Aborted, "{e:?}"),
        }
    }
    assert!(ok >= 1);
}

#[tokio::test]
async fn validate_volume_capabilities_confirms_mounts_and_rejects_block() {
    let (moto, _server, mut ctl) = setup().await;
    let vol = ctl
        .create_volume(create_req(&moto, PVC, &[]))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let req = |caps| v1::ValidateVolumeCapabilitiesRequest {
        volume_id: vol.volume_id.clone(),
        volume_context: vol.volume_context.clone(),
        volume_capabilities: caps,
        secrets: moto.secrets(),
        ..Default::default()
    };
    let r = ctl
        .validate_volume_capabilities(req(vec![mount_cap(Mode::SingleNodeWriter)]))
        .await
        .unwrap()
        .into_inner();
    assert!(r.confirmed.is_some(), "{r:?}");
    let mut block = mount_cap(Mode::SingleNodeWriter);
    block.access_type = Some(v1::volume_capability::AccessType::Block(Default::default()));
    let r = ctl
        .validate_volume_capabilities(req(vec![block]))
        .await
        .unwrap()
        .into_inner();
    assert!(r.confirmed.is_none());
    assert!(!r.message.is_empty());
    let mut missing = req(vec![mount_cap(Mode::SingleNodeWriter)]);
    missing.volume_id = "pvc-never-created".into();
    assert_eq!(
        ctl.validate_volume_capabilities(missing)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        ctl.validate_volume_capabilities(req(vec![]))
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
}

#[tokio::test]
async fn server_replaces_a_stale_socket_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("csi.sock");
    std::fs::write(&socket, b"stale").unwrap();
    let log = dir.path().join("log");
    let mut server = CsiServer::start_at(dir, socket.clone(), log, "controller", &[]);
    let mut id = IdentityClient::new(server.channel().await);
    id.probe(v1::ProbeRequest {}).await.unwrap();
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(!socket.exists(), "socket left behind");
}
