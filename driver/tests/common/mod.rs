//! Shared harness of the integration tests: a real S3 server (moto) on
//! 127.0.0.1, the real `dcs-csi` binary serving CSI on a unix socket, and a
//! tonic client connected to it.
#![allow(dead_code, missing_docs)]

pub mod postgres;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dcs_csi::store::ObjectStore;
use dcs_csi::store::s3::{ChecksumPolicy, S3Config, S3Store};
use tonic::transport::{Channel, Endpoint, Uri};

/// Access key the tests use (moto accepts any).
pub const ACCESS_KEY: &str = "test-access-key";
/// Secret key the tests use; asserted never to appear in logs.
pub const SECRET_KEY: &str = "test-SECRET-value-9f8e7d";

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A moto S3 server on 127.0.0.1, killed on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    /// Starts `moto_server` (from `pip install 'moto[server]'`) on a free port.
    pub fn start() -> Moto {
        let port = free_port();
        let bin = std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin} (pip install 'moto[server]'): {e}"));
        wait_until("moto to listen", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Moto { child, port }
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Secrets as a StorageClass Secret would carry them (csi-s3 keys).
    pub fn secrets(&self) -> std::collections::HashMap<String, String> {
        [
            ("accessKeyID", ACCESS_KEY),
            ("secretAccessKey", SECRET_KEY),
            ("endpoint", &self.endpoint()),
            ("region", "us-east-1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// A store client to check the server's real state.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::new(S3Store::new(&S3Config {
            endpoint: Some(self.endpoint()),
            region: "us-east-1".into(),
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: SECRET_KEY.into(),
            path_style: true,
            checksum: ChecksumPolicy::WhenRequired,
            max_attempts: 3,
        }))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real `dcs-csi` binary serving CSI on a unix socket in a temp dir.
pub struct CsiServer {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl CsiServer {
    /// Starts `dcs-csi --mode <mode>` with extra args; waits for the socket.
    pub fn start(mode: &str, extra: &[&str]) -> CsiServer {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("csi.sock");
        let log = dir.path().join("server.log");
        Self::start_at(dir, socket, log, mode, extra)
    }

    /// Starts the server on a given socket path (which may hold a stale file).
    pub fn start_at(
        dir: tempfile::TempDir,
        socket: PathBuf,
        log: PathBuf,
        mode: &str,
        extra: &[&str],
    ) -> CsiServer {
        let logf = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_dcs-csi"))
            .arg("--endpoint")
            .arg(format!("unix://{}", socket.display()))
            .args([
                "--mode",
                mode,
                "--node-id",
                "test-node",
                "--log-level",
                "debug",
            ])
            .args(extra)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .unwrap();
        let s = CsiServer {
            child: Some(child),
            dir,
            socket,
            log,
        };
        let sock = s.socket.clone();
        wait_until("the CSI socket", Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(&sock).is_ok()
        });
        s
    }

    /// A gRPC channel over the unix socket.
    pub async fn channel(&self) -> Channel {
        connect(&self.socket).await
    }

    /// Everything the server logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the server with SIGKILL (as a crash or OOM kill would).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let t0 = Instant::now();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "server ignored SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for CsiServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Connects a tonic channel to a unix socket.
pub async fn connect(path: &Path) -> Channel {
    let path = path.to_path_buf();
    Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let s = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
            }
        }))
        .await
        .unwrap()
}

/// A mount volume capability with the given access mode.
pub fn mount_cap(
    mode: dcs_csi_proto::v1::volume_capability::access_mode::Mode,
) -> dcs_csi_proto::v1::VolumeCapability {
    use dcs_csi_proto::v1::volume_capability::{AccessMode, AccessType, MountVolume};
    dcs_csi_proto::v1::VolumeCapability {
        access_mode: Some(AccessMode { mode: mode as i32 }),
        access_type: Some(AccessType::Mount(MountVolume::default())),
    }
}
