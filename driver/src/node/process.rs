//! The `process` mounter: each staged volume is served by its own
//! `dcs-csi mount` process, started in its own process group with its
//! credentials in a 0600 file (never on the command line), so it keeps serving
//! when the node server is killed, restarted or upgraded in place.
//!
//! What it has started is recorded under `<state-dir>/volumes/`; a restarted
//! node server reads those records back and checks them against the kernel's
//! mount table, so it can report on and unstage mounts it did not start itself.
//! (In Kubernetes a container restart kills every process of the container:
//! there, use the `pod` mounter.)

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::NodeError;
use super::mounter::{MountSpec, MountState, Mounter};
use super::system;
use crate::config::fsopts::FsOptions;

/// How long a new mount may take to appear.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for a FUSE server to exit after its last unmount.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the mounter remembers about one staged volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Volume id served.
    pub volume_id: String,
    /// Staging path.
    pub staging_path: PathBuf,
    /// Pid of the `dcs-csi mount` process.
    pub pid: i32,
    /// Its log file.
    pub log: PathBuf,
}

/// The process mounter.
#[derive(Debug, Clone)]
pub struct ProcessMounter {
    state_dir: PathBuf,
    binary: PathBuf,
    log_format: String,
}

fn key(staging: &Path) -> String {
    let d = Sha256::digest(staging.as_os_str().as_encoded_bytes());
    d.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// The `dcs-csi mount` flags for a volume's options (never credentials).
pub fn mount_args(spec: &MountSpec, creds: &Path, cache: &Path, log_format: &str) -> Vec<String> {
    let mut a = vec![
        "mount".to_string(),
        "--log-format".into(),
        log_format.into(),
        "--bucket".into(),
        spec.volume_id.bucket.clone(),
        "--credentials-file".into(),
        creds.display().to_string(),
        "--cache-dir".into(),
        cache.display().to_string(),
        "--allow-other".into(),
    ];
    if !spec.volume_id.prefix.is_empty() {
        a.extend(["--prefix".into(), spec.volume_id.prefix.clone()]);
    }
    if spec.read_only {
        a.push("--read-only".into());
    }
    let FsOptions {
        uid,
        gid,
        file_mode,
        dir_mode,
        metadata_ttl_secs,
        part_size_mib,
        max_memory_mib,
        checksum,
    } = &spec.fs;
    let mut opt = |flag: &str, v: Option<String>| {
        if let Some(v) = v {
            a.extend([flag.to_string(), v]);
        }
    };
    opt("--uid", uid.map(|v| v.to_string()));
    opt("--gid", gid.map(|v| v.to_string()));
    opt("--file-mode", file_mode.map(|v| format!("{v:o}")));
    opt("--dir-mode", dir_mode.map(|v| format!("{v:o}")));
    opt(
        "--metadata-ttl-secs",
        metadata_ttl_secs.map(|v| v.to_string()),
    );
    opt("--part-size-mib", part_size_mib.map(|v| v.to_string()));
    opt("--max-memory-mib", max_memory_mib.map(|v| v.to_string()));
    opt(
        "--checksum",
        checksum.map(|c| match c {
            crate::store::s3::ChecksumPolicy::WhenRequired => "when-required".into(),
            crate::store::s3::ChecksumPolicy::Always => "always".into(),
        }),
    );
    a.push(spec.staging_path.display().to_string());
    a
}

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

impl ProcessMounter {
    /// A mounter keeping its records under `state_dir`, starting `binary` (this executable).
    pub fn new(state_dir: PathBuf, binary: PathBuf, log_format: &str) -> Result<Self, NodeError> {
        for sub in ["volumes", "creds", "logs", "cache"] {
            let d = state_dir.join(sub);
            std::fs::create_dir_all(&d)
                .map_err(|e| NodeError::io(format!("creating {}", d.display()), e))?;
        }
        let m = ProcessMounter {
            state_dir,
            binary,
            log_format: log_format.to_string(),
        };
        m.adopt();
        Ok(m)
    }

    /// Every record on disk.
    pub fn records(&self) -> Vec<Record> {
        let dir = self.state_dir.join("volumes");
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
            .collect()
    }

    /// Reports what a previous node server left: live mounts are adopted as they
    /// are (the kernel's mount table is the truth); dead ones await unstage.
    fn adopt(&self) {
        for r in self.records() {
            match system::state(&r.staging_path) {
                MountState::Live => {
                    info!(volume = %r.volume_id, pid = r.pid, staging = %r.staging_path.display(), "adopted live mount")
                }
                MountState::Dead(why) => {
                    warn!(volume = %r.volume_id, %why, "found a dead mount; it is reported abnormal until unstaged")
                }
                MountState::NotMounted => {
                    warn!(volume = %r.volume_id, "found a record without a mount; it is cleaned up on unstage")
                }
            }
        }
    }

    fn record_path(&self, staging: &Path) -> PathBuf {
        self.state_dir
            .join("volumes")
            .join(format!("{}.json", key(staging)))
    }

    fn write_creds(&self, spec: &MountSpec) -> Result<PathBuf, NodeError> {
        let path = self
            .state_dir
            .join("creds")
            .join(format!("{}.json", key(&spec.staging_path)));
        let _ = std::fs::remove_file(&path);
        let body = serde_json::to_vec(&spec.secrets.to_map()).expect("map serialises");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| NodeError::io("writing the credentials file", e))?;
        std::io::Write::write_all(&mut f, &body)
            .map_err(|e| NodeError::io("writing the credentials file", e))?;
        Ok(path)
    }
}

#[async_trait]
impl Mounter for ProcessMounter {
    async fn start(&self, spec: &MountSpec) -> Result<(), NodeError> {
        let k = key(&spec.staging_path);
        let creds = self.write_creds(spec)?;
        let cache = self.state_dir.join("cache").join(&k);
        let log = self.state_dir.join("logs").join(format!("{k}.log"));
        let logf =
            std::fs::File::create(&log).map_err(|e| NodeError::io("creating the mount log", e))?;
        let logf2 = logf
            .try_clone()
            .map_err(|e| NodeError::io("creating the mount log", e))?;
        let mut cmd = tokio::process::Command::new(&self.binary);
        cmd.args(mount_args(spec, &creds, &cache, &self.log_format))
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .stdin(Stdio::null())
            .stdout(logf)
            .stderr(logf2)
            // Its own process group: signals to the node server's group do not reach it.
            .process_group(0)
            .kill_on_drop(false);
        let mut child = cmd
            .spawn()
            .map_err(|e| NodeError::Mount(format!("starting {}: {e}", self.binary.display())))?;
        let pid = child.id().unwrap_or(0) as i32;
        let t0 = Instant::now();
        let result = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break Err(NodeError::Mount(format!(
                    "the mount process exited ({status}) before the mount was ready: {}",
                    tail(&log)
                )));
            }
            if system::state(&spec.staging_path) == MountState::Live {
                break Ok(());
            }
            if t0.elapsed() > MOUNT_TIMEOUT {
                let _ = child.start_kill();
                break Err(NodeError::Mount(format!(
                    "the mount did not appear within {MOUNT_TIMEOUT:?}: {}",
                    tail(&log)
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // The process has read its credentials (or failed): they need not stay on disk.
        let _ = std::fs::remove_file(&creds);
        result?;
        let rec = Record {
            volume_id: spec.volume_id.to_string(),
            staging_path: spec.staging_path.clone(),
            pid,
            log,
        };
        std::fs::write(
            self.record_path(&spec.staging_path),
            serde_json::to_vec_pretty(&rec).expect("serialises"),
        )
        .map_err(|e| NodeError::io("writing the mount record", e))?;
        // Reap it if it exits while we run; it keeps running if we do not.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        info!(volume = %spec.volume_id, pid, "mount process serving");
        Ok(())
    }

    async fn stop(&self, staging: &Path) -> Result<(), NodeError> {
        let rec_path = self.record_path(staging);
        let rec: Option<Record> = std::fs::read(&rec_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if system::state(staging) != MountState::NotMounted {
            system::unmount(staging)?;
        }
        if let Some(r) = &rec {
            let t0 = Instant::now();
            while alive(r.pid) && t0.elapsed() < EXIT_TIMEOUT {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if alive(r.pid) {
                info!(
                    pid = r.pid,
                    "mount process still serves other mounts of the volume"
                );
            }
        }
        let k = key(staging);
        let _ = std::fs::remove_file(&rec_path);
        let _ = std::fs::remove_dir_all(self.state_dir.join("cache").join(&k));
        Ok(())
    }
}
