//! The pod mounter against a mocked Kubernetes API server (tower-test, as
//! kube-rs tests itself): which objects it creates, with which labels, owner
//! and content, how it cleans up, and what it adopts after a restart.

use std::path::PathBuf;

use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock;

use super::*;
use crate::config::fsopts::FsOptions;
use crate::config::secrets::StoreSecrets;
use crate::config::volume_id::VolumeId;

type Handle = mock::Handle<Request<Body>, Response<Body>>;

const SECRET: &str = "pod-test-SECRET-value";

fn mounter() -> (PodMounter, Handle) {
    let (svc, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let cfg = PodMounterConfig {
        namespace: "dcs-csi".into(),
        image: "ghcr.io/example/dcs-csi:0.1.0".into(),
        node_name: "node-a".into(),
        kubelet_dir: "/var/lib/kubelet".into(),
        log_format: "json".into(),
    };
    (
        PodMounter::new(cfg, kube::Client::new(svc, "dcs-csi")),
        handle,
    )
}

fn spec() -> MountSpec {
    MountSpec {
        volume_id: VolumeId::parse("shared/k8s/pvc-1").unwrap(),
        staging_path: PathBuf::from(
            "/var/lib/kubelet/plugins/kubernetes.io/csi/dcs.csi.dev/abc/globalmount",
        ),
        secrets: StoreSecrets {
            access_key_id: "AK".into(),
            secret_access_key: SECRET.into(),
            endpoint: Some("https://gateway.storjshare.io".into()),
            region: "us-east-1".into(),
        },
        fs: FsOptions {
            uid: Some(999),
            ..Default::default()
        },
        read_only: false,
    }
}

fn json_response(status: u16, v: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(v).unwrap()))
        .unwrap()
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": reason})
}

async fn next(handle: &mut Handle) -> (Method, String, Value, mock::SendResponse<Response<Body>>) {
    let (req, send) = handle.next_request().await.expect("a request");
    let method = req.method().clone();
    let uri = req.uri().to_string();
    let body = req.into_body().collect_bytes().await.unwrap();
    let v = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap()
    };
    (method, uri, v, send)
}

#[tokio::test]
async fn start_creates_a_labelled_pod_then_a_secret_owned_by_it() {
    let (m, mut handle) = mounter();
    let server = tokio::spawn(async move {
        let (method, uri, pod, send) = next(&mut handle).await;
        assert_eq!(method, Method::POST);
        assert!(uri.starts_with("/api/v1/namespaces/dcs-csi/pods"), "{uri}");
        let mut created = pod.clone();
        created["metadata"]["uid"] = json!("uid-123");
        send.send_response(json_response(201, &created));
        let (method, uri, secret, send) = next(&mut handle).await;
        assert_eq!(method, Method::POST);
        assert!(
            uri.starts_with("/api/v1/namespaces/dcs-csi/secrets"),
            "{uri}"
        );
        send.send_response(json_response(201, &secret));
        (pod, secret)
    });
    m.create_objects(&spec()).await.unwrap();
    let (pod, secret) = server.await.unwrap();

    let name = object_name("node-a", &spec().staging_path);
    assert_eq!(pod["metadata"]["name"], json!(name));
    assert_eq!(pod["metadata"]["labels"][LABEL_APP], json!(APP));
    assert_eq!(pod["metadata"]["labels"][LABEL_NODE], json!("node-a"));
    assert_eq!(
        pod["metadata"]["annotations"][ANN_VOLUME],
        json!("shared/k8s/pvc-1")
    );
    assert_eq!(pod["spec"]["nodeName"], json!("node-a"));
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["securityContext"]["privileged"], json!(true));
    assert_eq!(
        c["volumeMounts"][0]["mountPropagation"],
        json!("Bidirectional")
    );
    let args: Vec<String> = serde_json::from_value(c["args"].clone()).unwrap();
    assert!(
        args.windows(2).any(|w| w == ["--bucket", "shared"]),
        "{args:?}"
    );
    assert!(
        args.windows(2).any(|w| w == ["--prefix", "k8s/pvc-1"]),
        "{args:?}"
    );
    assert!(args.windows(2).any(|w| w == ["--uid", "999"]), "{args:?}");
    assert_eq!(
        args.last().unwrap(),
        &spec().staging_path.display().to_string()
    );
    let pod_text = pod.to_string();
    assert!(
        !pod_text.contains(SECRET),
        "the secret must not be in the pod spec"
    );

    assert_eq!(secret["metadata"]["name"], json!(name));
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["kind"],
        json!("Pod")
    );
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["uid"],
        json!("uid-123")
    );
    let data = secret["data"]["credentials.json"].as_str().unwrap();
    // The Secret carries the credentials (base64 in the API).
    assert!(!data.contains(SECRET), "secret data is base64-encoded");
    assert!(!data.is_empty());
}

#[tokio::test]
async fn an_existing_pod_is_adopted_not_recreated() {
    let (m, mut handle) = mounter();
    let server = tokio::spawn(async move {
        let (method, _, pod, send) = next(&mut handle).await;
        assert_eq!(method, Method::POST);
        send.send_response(json_response(409, &status(409, "AlreadyExists")));
        let (method, uri, _, send) = next(&mut handle).await;
        assert_eq!(method, Method::GET);
        assert!(uri.contains("/pods/dcs-mount-"), "{uri}");
        let mut existing = pod.clone();
        existing["metadata"]["uid"] = json!("uid-old");
        send.send_response(json_response(200, &existing));
        let (method, _, _, send) = next(&mut handle).await;
        assert_eq!(method, Method::POST);
        send.send_response(json_response(409, &status(409, "AlreadyExists")));
    });
    let pod = m.create_objects(&spec()).await.unwrap();
    assert_eq!(pod.metadata.uid.as_deref(), Some("uid-old"));
    server.await.unwrap();
}

#[tokio::test]
async fn cleanup_deletes_pod_and_secret_and_tolerates_missing_ones() {
    let (m, mut handle) = mounter();
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        for code in [200u16, 404] {
            let (method, uri, _, send) = next(&mut handle).await;
            assert_eq!(method, Method::DELETE);
            seen.push(uri);
            let body = if code == 200 {
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})
            } else {
                status(404, "NotFound")
            };
            send.send_response(json_response(code, &body));
        }
        seen
    });
    m.delete_objects(&spec().staging_path).await.unwrap();
    let seen = server.await.unwrap();
    let name = object_name("node-a", &spec().staging_path);
    assert!(
        seen[0].starts_with(&format!("/api/v1/namespaces/dcs-csi/pods/{name}")),
        "{seen:?}"
    );
    assert!(
        seen[1].starts_with(&format!("/api/v1/namespaces/dcs-csi/secrets/{name}")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_restarted_plugin_lists_its_node_s_mount_pods() {
    let (m, mut handle) = mounter();
    let server = tokio::spawn(async move {
        let (method, uri, _, send) = next(&mut handle).await;
        assert_eq!(method, Method::GET);
        let uri = uri
            .replace("%3D", "=")
            .replace("%2C", ",")
            .replace("%2F", "/");
        assert!(
            uri.contains(&format!(
                "labelSelector={LABEL_APP}={APP},{LABEL_NODE}=node-a"
            )),
            "{uri}"
        );
        let pod = json!({"metadata": {"name": "dcs-mount-1", "annotations": {ANN_STAGING: "/nonexistent/staging"}}});
        send.send_response(json_response(
            200,
            &json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [pod]}),
        ));
    });
    assert_eq!(m.adopt().await.unwrap(), 1);
    server.await.unwrap();
}

#[test]
fn names_are_stable_per_node_and_path() {
    let p = PathBuf::from("/a/b");
    assert_eq!(object_name("n1", &p), object_name("n1", &p));
    assert_ne!(object_name("n1", &p), object_name("n2", &p));
    assert!(object_name("n1", &p).len() <= 63);
}
