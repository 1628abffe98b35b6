//! A throwaway PostgreSQL server for the tests: `initdb` into a temp dir as the
//! `postgres` system user, listening on 127.0.0.1 on a free port (unix socket in
//! the temp dir, so it never clashes with a system cluster), stopped with
//! `pg_ctl stop -m fast` on drop. Clients connect over TCP with a password, as
//! a pod reaches the postgres Service.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The directory of `initdb`, `pg_ctl`, `pg_dump`...: `$PG_BIN`, else the newest
/// `/usr/lib/postgresql/<major>/bin` (Debian's layout).
pub fn bin_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("PG_BIN") {
        return Some(PathBuf::from(d));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

/// Runs `cmd`, panicking with its output unless it succeeds.
pub fn must(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A running PostgreSQL cluster.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    pub user: String,
    pub password: String,
}

fn check(what: &str, out: std::io::Result<Output>) -> String {
    let out = out.unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl Postgres {
    /// initdb with superuser `user`/`password` (password auth on TCP) and start.
    pub fn start(user: &str, password: &str) -> Postgres {
        let bin =
            bin_dir().expect("PostgreSQL not found (apt-get install postgresql, or set PG_BIN)");
        let pg = nix::unistd::User::from_name("postgres")
            .unwrap()
            .expect("a `postgres` system user (from the postgresql package)");
        let dir = tempfile::Builder::new()
            .prefix("dcs-pg-")
            .tempdir()
            .unwrap();
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n")).unwrap();
        for p in [dir.path(), pwfile.as_path()] {
            nix::unistd::chown(p, Some(pg.uid), Some(pg.gid)).unwrap();
        }
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let data = dir.path().join("data");
        let as_postgres = |prog: &str| {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(bin.join(prog))
                .current_dir(dir.path())
                .stdin(Stdio::null());
            c
        };
        check(
            "initdb",
            as_postgres("initdb")
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    user,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                ])
                .args(["-E", "UTF8", "--no-locale", "--no-sync"])
                .arg(format!("--pwfile={}", pwfile.display()))
                .output(),
        );
        let port = super::free_port();
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={} \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            dir.path().display()
        );
        check(
            "pg_ctl start",
            as_postgres("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.path().join("server.log"))
                .args(["-w", "-t", "60", "-o", &opts, "start"])
                .output(),
        );
        Postgres {
            dir,
            bin,
            port,
            user: user.into(),
            password: password.into(),
        }
    }

    /// The directory of the client programs of this server's version.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// A client program with the connection in its environment (TCP + password).
    pub fn client(&self, prog: &str) -> Command {
        let mut c = Command::new(self.bin.join(prog));
        c.env("PGHOST", "127.0.0.1")
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", &self.user)
            .env("PGPASSWORD", &self.password)
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::null());
        c
    }

    /// Runs SQL in `db` (psql -X -At, stop on the first error); returns stdout.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        check(
            &format!("psql -d {db} -c {sql:?}"),
            self.client("psql")
                .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql])
                .output(),
        )
    }

    /// Runs a client program with arguments; panics on failure; returns stdout.
    pub fn run(&self, prog: &str, args: &[&str]) -> String {
        check(
            &format!("{prog} {args:?}"),
            self.client(prog).args(args).output(),
        )
    }

    /// Row count and checksum of every pgbench table of `db`.
    pub fn fingerprint(&self, db: &str) -> Vec<String> {
        ["pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history"]
            .iter()
            .map(|t| {
                self.psql(
                    db,
                    &format!(
                        "select '{t}', count(*), md5(coalesce(string_agg(x::text, ',' order by x::text), '')) from {t} x"
                    ),
                )
            })
            .collect()
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
