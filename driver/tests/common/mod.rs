//! Shared helpers of the integration tests: a throwaway moto S3 server on a
//! free port (killed on drop), an `S3Store` for it, a real FUSE mount made
//! with the built `dcs-csi mount` (unmounted on drop, even when a test fails),
//! and the real `dcs-csi` server on a unix socket with a tonic channel to it.

#![allow(dead_code, missing_docs)]

pub mod garage;
pub mod postgres;
pub mod target;

pub use target::S3Target;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dcs_csi::store::ObjectStore;
use dcs_csi::store::s3::S3Store;
use tonic::transport::{Channel, Endpoint, Uri};

/// Access key used against moto.
pub const KEY: &str = "testing";
/// Secret used against moto; asserted never to appear in logs.
pub const SECRET: &str = "testing-SECRET-value-9f8e7d";

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether real FUSE mounts can run here; prints why not.
pub fn fuse_available() -> bool {
    if !Path::new("/dev/fuse").exists() {
        eprintln!("SKIP: /dev/fuse is missing; FUSE tests need it (and root or fusermount3)");
        return false;
    }
    if moto_bin().is_none() {
        eprintln!("SKIP: moto_server not found (pip install 'moto[server]==5.2.1')");
        return false;
    }
    true
}

/// Whether moto_server can be started; prints why not.
pub fn moto_available() -> bool {
    if moto_bin().is_none() {
        eprintln!("SKIP: moto_server not found (pip install 'moto[server]==5.2.1')");
        return false;
    }
    true
}

fn moto_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("MOTO_SERVER") {
        return Some(p.into());
    }
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/root/.pyenv/shims")])
        .map(|d| d.join("moto_server"))
        .find(|p| p.exists())
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A tokio runtime for S3 checks from synchronous tests.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A moto server, killed on drop.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Moto {
    /// Starts moto and waits until it answers.
    pub fn start() -> Moto {
        let port = free_port();
        let child = Command::new(moto_bin().expect("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(30), "moto did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Secrets as a StorageClass Secret carries them (csi-s3 keys).
    pub fn secrets(&self) -> std::collections::HashMap<String, String> {
        self.target().secrets()
    }

    /// A store client for this server.
    pub fn store(&self) -> S3Store {
        self.target().store()
    }

    /// Endpoint and credentials of this server.
    pub fn target(&self) -> S3Target {
        S3Target {
            endpoint: self.endpoint.clone(),
            access_key_id: KEY.into(),
            secret_access_key: SECRET.into(),
            region: "us-east-1".into(),
        }
    }

    /// Creates `bucket`.
    pub fn bucket(&self, bucket: &str) {
        rt().block_on(self.store().create_bucket(bucket)).unwrap();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A live `dcs-csi mount`, unmounted on drop.
pub struct Mount {
    child: Child,
    /// The mountpoint.
    pub dir: PathBuf,
    /// Mount stderr lines collected so far (for failure messages).
    pub log: PathBuf,
}

/// Whether `dir` is a mountpoint right now.
pub fn is_mounted(dir: &Path) -> bool {
    let dir = dir.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(dir.as_str()))
}

impl Mount {
    /// Mounts `bucket` of `moto` at `dir` with `extra` flags; waits until live.
    pub fn new(moto: &Moto, bucket: &str, dir: &Path, extra: &[&str]) -> Mount {
        Self::at(&moto.target(), bucket, dir, extra)
    }

    /// Mounts `bucket` of any S3 endpoint (a fault proxy, Garage) at `dir`.
    pub fn at(target: &S3Target, bucket: &str, dir: &Path, extra: &[&str]) -> Mount {
        std::fs::create_dir_all(dir).unwrap();
        let log = dir.with_extension("log");
        let cache = dir.with_extension("cache");
        let mut child = Command::new(env!("CARGO_BIN_EXE_dcs-csi"))
            .arg("mount")
            .args(["--bucket", bucket, "--endpoint", &target.endpoint])
            .args(["--region", &target.region])
            .arg("--cache-dir")
            .arg(&cache)
            .args(extra)
            .arg(dir)
            .env("AWS_ACCESS_KEY_ID", &target.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &target.secret_access_key)
            .env("DCS_LOG_LEVEL", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn dcs-csi mount");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) if l.contains("mounted") => {}
            other => {
                let _ = child.kill();
                panic!(
                    "mount did not come up ({other:?}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        }
        assert!(
            is_mounted(dir),
            "printed 'mounted' but {dir:?} is not a mountpoint"
        );
        Mount {
            child,
            dir: dir.to_path_buf(),
            log,
        }
    }

    /// Path inside the mount.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Process id of the FUSE server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the server to exit (after an unmount or a signal).
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let t = Instant::now();
        while t.elapsed() < within {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Unmounts and waits for the server to exit cleanly.
    pub fn unmount(mut self) {
        let ok = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
            || Command::new("umount")
                .arg(&self.dir)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
        assert!(ok, "unmount of {:?} failed", self.dir);
        let st = self.wait_exit(Duration::from_secs(30));
        assert!(
            st.is_some_and(|s| s.success()),
            "mount process did not exit cleanly: {st:?}\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if is_mounted(&self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        if self.wait_exit(Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
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
        wait_until("the CSI socket", Duration::from_secs(60), || {
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

/// Live `dcs-csi mount` processes serving mounts under `root`.
pub fn mount_processes(root: &Path) -> Vec<i32> {
    let root = root.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains(" mount ")
                && cmd.contains(&root)
                && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .unwrap_or_default()
                    .contains(") Z")
        })
        .collect()
}
