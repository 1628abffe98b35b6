//! The flow that matters: a throwaway PostgreSQL (Debian `postgresql`), a
//! pgbench database, `pg_dump -Fc` (seeks back to rewrite its TOC), `-Fp` and
//! `-Fd -j 2` (parallel files) into a real mount; unmount, mount again,
//! restore each into a fresh database and compare row counts and checksums of
//! every table. Skips with a message when PostgreSQL, moto or /dev/fuse is missing.

mod common;

use common::postgres::{Postgres, bin_dir as pg_bin, must as run};
use common::{Moto, Mount};

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
    let pg = Postgres::start("postgres", "postgres");
    run(pg.client("createdb").arg("bench"));
    run(pg.client("pgbench").args(["-i", "-s", "2", "-q", "bench"]));
    // Some history rows so that table is not empty.
    run(pg.client("pgbench").args(["-t", "50", "-c", "2", "bench"]));
    let want = pg.fingerprint("bench");

    let moto = Moto::start();
    moto.bucket("pg-bucket");
    let mnt = tmp.path().join("mnt");
    let m = Mount::new(&moto, "pg-bucket", &mnt, &["--part-size-mib", "5"]);
    let p = |f: &str| m.path(f).to_string_lossy().to_string();
    run(pg
        .client("pg_dump")
        .args(["-Fc", "-Z", "0", "-f", &p("dump.fc"), "bench"]));
    run(pg
        .client("pg_dump")
        .args(["-Fp", "-f", &p("dump.sql"), "bench"]));
    run(pg
        .client("pg_dump")
        .args(["-Fd", "-j", "2", "-f", &p("dump.d"), "bench"]));
    m.unmount();

    let m = Mount::new(&moto, "pg-bucket", &mnt, &[]);
    let p = |f: &str| m.path(f).to_string_lossy().to_string();
    for db in ["r_fc", "r_sql", "r_d"] {
        run(pg.client("createdb").arg(db));
    }
    run(pg.client("pg_restore").args(["-d", "r_fc", &p("dump.fc")]));
    run(pg.client("psql").args([
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
        .client("pg_restore")
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
