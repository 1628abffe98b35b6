//! A 3-node Garage cluster (replication factor 3) started with
//! `scripts/garage.sh`, stopped on drop; nodes can be killed and restarted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::S3Target;

/// The Garage binary: `$GARAGE_BIN`, else `~/.cache/dcs-csi-tools/bin/garage`.
pub fn garage_bin() -> Option<PathBuf> {
    let p = match std::env::var("GARAGE_BIN") {
        Ok(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(std::env::var("HOME").ok()?).join(".cache/dcs-csi-tools/bin/garage"),
    };
    p.exists().then_some(p)
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/garage.sh")
}

/// A running cluster; `dir` holds its data, configs and logs.
pub struct Garage {
    pub dir: PathBuf,
    env: HashMap<String, String>,
    /// Whether dropping this handle stops the cluster.
    owner: bool,
}

fn read_env(path: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A base port whose 9 ports (BASE+10N, +1, +3 for N = 1..3) are free, so
/// that clusters of concurrent test runs do not collide.
fn free_base_port() -> u16 {
    for _ in 0..100 {
        let base = super::free_port() / 100 * 100;
        if !(20_000..60_000).contains(&base) {
            continue;
        }
        let free = (1..=3u16).all(|n| {
            [0, 1, 3]
                .iter()
                .all(|d| std::net::TcpListener::bind(("127.0.0.1", base + 10 * n + d)).is_ok())
        });
        if free {
            return base;
        }
    }
    panic!("no free port range for Garage");
}

impl Garage {
    /// Starts a fresh cluster in `dir` with `bin`.
    pub fn start(bin: &Path, dir: &Path) -> Garage {
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(dir)
            .env("GARAGE_BIN", bin)
            .env("GARAGE_BASE_PORT", free_base_port().to_string())
            .output()
            .expect("run scripts/garage.sh");
        assert!(
            out.status.success(),
            "garage.sh start failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Garage {
            dir: dir.to_path_buf(),
            env: read_env(&dir.join("env")),
            owner: true,
        }
    }

    /// Another handle on a running cluster (for a thread); does not stop it on drop.
    pub fn attach(dir: &Path, env: &Path) -> Garage {
        Garage {
            dir: dir.to_path_buf(),
            env: read_env(env),
            owner: false,
        }
    }

    /// The S3 endpoint of node `n` (1..3) with the test key.
    pub fn target(&self, n: u8) -> S3Target {
        S3Target {
            endpoint: self.env[&format!("GARAGE_S3_ENDPOINT_{n}")].clone(),
            access_key_id: self.env["AWS_ACCESS_KEY_ID"].clone(),
            secret_access_key: self.env["AWS_SECRET_ACCESS_KEY"].clone(),
            region: self.env["AWS_REGION"].clone(),
        }
    }

    fn script(&self, args: &[&str]) {
        let out = Command::new("bash")
            .arg(script())
            .arg(args[0])
            .arg(&self.dir)
            .args(&args[1..])
            .env("GARAGE_BIN", &self.env["GARAGE_BIN"])
            .output()
            .expect("run scripts/garage.sh");
        assert!(
            out.status.success(),
            "garage.sh {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops node `n`; `kill` sends SIGKILL.
    pub fn stop_node(&self, n: u8, kill: bool) {
        let n = n.to_string();
        if kill {
            self.script(&["stop-node", &n, "--kill"]);
        } else {
            self.script(&["stop-node", &n]);
        }
    }

    /// Restarts node `n` and waits until its S3 endpoint answers.
    pub fn start_node(&self, n: u8) {
        self.script(&["start-node", &n.to_string()]);
    }

    /// The tail of node `n`'s log (for failure messages).
    pub fn log_tail(&self, n: u8) -> String {
        let log = std::fs::read_to_string(self.dir.join(format!("node{n}/garage.log")))
            .unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        if !self.owner {
            return;
        }
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}
