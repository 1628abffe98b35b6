//! A throwaway PostgreSQL (Debian `postgresql`) on a free port, owned by the
//! `postgres` user, stopped on drop; pgbench table fingerprints.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

pub struct Postgres {
    pub bin: PathBuf,
    pub data: PathBuf,
    pub port: u16,
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Postgres {
    pub fn start(dir: &Path) -> Postgres {
        let bin = pg_bin().unwrap();
        run(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir));
        let data = dir.join("data");
        let port = super::free_port();
        run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&data));
        run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                dir.display()
            ))
            .args(["-w", "-l"])
            .arg(dir.join("pg.log"))
            .arg("start"));
        Postgres { bin, data, port }
    }

    pub fn cmd(&self, tool: &str) -> Command {
        let mut c = Command::new(self.bin.join(tool));
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
        ]);
        c
    }

    pub fn sql(&self, db: &str, q: &str) -> String {
        let out = run(self.cmd("psql").args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            db,
            "-c",
            q,
        ]));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Row count and checksum of every pgbench table.
    pub fn fingerprint(&self, db: &str) -> Vec<String> {
        ["pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history"]
            .iter()
            .map(|t| {
                self.sql(
                    db,
                    &format!("select '{t}', count(*), md5(coalesce(string_agg(x::text, ',' order by x::text), '')) from {t} x"),
                )
            })
            .collect()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}
