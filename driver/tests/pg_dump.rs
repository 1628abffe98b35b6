//! The flow that matters: a throwaway PostgreSQL (Debian `postgresql`), a
//! pgbench database, `pg_dump -Fc` (seeks back to rewrite its TOC), `-Fp` and
//! `-Fd -j 2` (parallel files) into a real mount; unmount, mount again,
//! restore each into a fresh database and compare row counts and checksums of
//! every table. Skips with a message when PostgreSQL, moto or /dev/fuse is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Moto, Mount};

fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
}

fn run(cmd: &mut Command) -> Output {
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
    fn start(dir: &Path) -> Postgres {
        let bin = pg_bin().unwrap();
        run(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir));
        let data = dir.join("data");
        let port = common::free_port();
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

    fn cmd(&self, tool: &str) -> Command {
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

    fn sql(&self, db: &str, q: &str) -> String {
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
    fn fingerprint(&self, db: &str) -> Vec<String> {
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

#[test]
fn pg_dump_formats_round_trip_through_the_mount() {
    if !common::fuse_available() {
        return;
    }
    if pg_bin().is_none() {
        eprintln!("SKIP: PostgreSQL server binaries not found (apt-get install postgresql)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pgdir = tmp.path().join("pg");
    std::fs::create_dir(&pgdir).unwrap();
    let pg = Postgres::start(&pgdir);
    run(pg.cmd("createdb").arg("bench"));
    run(pg.cmd("pgbench").args(["-i", "-s", "2", "-q", "bench"]));
    // Some history rows so that table is not empty.
    run(pg.cmd("pgbench").args(["-t", "50", "-c", "2", "bench"]));
    let want = pg.fingerprint("bench");

    let moto = Moto::start();
    moto.bucket("pg-bucket");
    let mnt = tmp.path().join("mnt");
    let m = Mount::new(&moto, "pg-bucket", &mnt, &["--part-size-mib", "5"]);
    let p = |f: &str| m.path(f).to_string_lossy().to_string();
    run(pg
        .cmd("pg_dump")
        .args(["-Fc", "-Z", "0", "-f", &p("dump.fc"), "bench"]));
    run(pg
        .cmd("pg_dump")
        .args(["-Fp", "-f", &p("dump.sql"), "bench"]));
    run(pg
        .cmd("pg_dump")
        .args(["-Fd", "-j", "2", "-f", &p("dump.d"), "bench"]));
    m.unmount();

    let m = Mount::new(&moto, "pg-bucket", &mnt, &[]);
    let p = |f: &str| m.path(f).to_string_lossy().to_string();
    for db in ["r_fc", "r_sql", "r_d"] {
        run(pg.cmd("createdb").arg(db));
    }
    run(pg.cmd("pg_restore").args(["-d", "r_fc", &p("dump.fc")]));
    run(pg.cmd("psql").args([
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        "r_sql",
        "-f",
        &p("dump.sql"),
    ]));
    run(pg
        .cmd("pg_restore")
        .args(["-j", "2", "-d", "r_d", &p("dump.d")]));
    for db in ["r_fc", "r_sql", "r_d"] {
        assert_eq!(pg.fingerprint(db), want, "database restored from {db}");
    }
    assert!(
        want[0].contains("|200000|"),
        "pgbench -s 2 has 200000 accounts: {want:?}"
    );
    m.unmount();
}
