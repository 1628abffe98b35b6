//! Real FUSE mounts of `dcs-csi mount` against moto: every operation through
//! std::fs, results checked through the S3 API too. Skips (with a message)
//! where /dev/fuse or moto_server is missing. Needs root (or fusermount3).

mod common;

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use bytes::Bytes;
use common::{Moto, Mount, rt};
use dcs_csi::store::ObjectStore;
use sha2::{Digest, Sha256};

fn s3_get(moto: &Moto, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let s = moto.store();
    let rt = rt();
    let info = rt.block_on(s.head_object(bucket, key)).unwrap()?;
    Some(
        rt.block_on(s.get_range(bucket, key, 0..info.size))
            .unwrap()
            .to_vec(),
    )
}

fn errno(r: std::io::Result<impl std::fmt::Debug>) -> i32 {
    r.expect_err("expected an error").raw_os_error().unwrap()
}

#[test]
fn file_and_directory_operations_reach_the_bucket() {
    if !common::fuse_available() {
        return;
    }
    let moto = Moto::start();
    moto.bucket("ops-bucket");
    let tmp = tempfile::tempdir().unwrap();
    let m = Mount::new(&moto, "ops-bucket", &tmp.path().join("mnt"), &[]);

    // write + read, visible in the bucket after close
    fs::write(m.path("a.txt"), b"line1\n").unwrap();
    assert_eq!(s3_get(&moto, "ops-bucket", "a.txt").unwrap(), b"line1\n");
    assert_eq!(fs::read(m.path("a.txt")).unwrap(), b"line1\n");
    // append
    OpenOptions::new()
        .append(true)
        .open(m.path("a.txt"))
        .unwrap()
        .write_all(b"line2\n")
        .unwrap();
    assert_eq!(
        s3_get(&moto, "ops-bucket", "a.txt").unwrap(),
        b"line1\nline2\n"
    );
    // overwrite in the middle without truncation
    let mut f = OpenOptions::new()
        .write(true)
        .open(m.path("a.txt"))
        .unwrap();
    f.seek(SeekFrom::Start(2)).unwrap();
    f.write_all(b"XY").unwrap();
    drop(f);
    assert_eq!(
        s3_get(&moto, "ops-bucket", "a.txt").unwrap(),
        b"liXY1\nline2\n"
    );
    // seek back while writing a new file (pg_dump -Fc)
    let mut f = fs::File::create(m.path("seek")).unwrap();
    f.write_all(&vec![b'A'; 100_000]).unwrap();
    f.seek(SeekFrom::Start(10)).unwrap();
    f.write_all(b"HEAD").unwrap();
    f.sync_all().unwrap();
    let got = s3_get(&moto, "ops-bucket", "seek").unwrap();
    assert_eq!((&got[10..14], got.len()), (&b"HEAD"[..], 100_000));
    drop(f);
    // truncate
    fs::OpenOptions::new()
        .write(true)
        .open(m.path("seek"))
        .unwrap()
        .set_len(100)
        .unwrap();
    assert_eq!(s3_get(&moto, "ops-bucket", "seek").unwrap().len(), 100);
    assert_eq!(fs::metadata(m.path("seek")).unwrap().len(), 100);
    // rename a file
    fs::rename(m.path("seek"), m.path("seek2")).unwrap();
    assert!(s3_get(&moto, "ops-bucket", "seek").is_none());
    assert_eq!(s3_get(&moto, "ops-bucket", "seek2").unwrap().len(), 100);
    // mkdir / rmdir / ENOTEMPTY / rename a directory
    fs::create_dir(m.path("d")).unwrap();
    assert!(
        s3_get(&moto, "ops-bucket", "d/").is_some(),
        "mkdir writes a marker"
    );
    fs::write(m.path("d/f"), b"z").unwrap();
    assert_eq!(errno(fs::remove_dir(m.path("d"))), libc::ENOTEMPTY);
    assert_eq!(errno(fs::create_dir(m.path("d"))), libc::EEXIST);
    fs::rename(m.path("d"), m.path("d2")).unwrap();
    assert_eq!(fs::read(m.path("d2/f")).unwrap(), b"z");
    assert_eq!(s3_get(&moto, "ops-bucket", "d2/f").unwrap(), b"z");
    assert!(s3_get(&moto, "ops-bucket", "d/f").is_none());
    // unlink
    fs::remove_file(m.path("d2/f")).unwrap();
    assert!(s3_get(&moto, "ops-bucket", "d2/f").is_none());
    assert_eq!(errno(fs::metadata(m.path("d2/f"))), libc::ENOENT);
    fs::remove_dir(m.path("d2")).unwrap();
    assert_eq!(errno(fs::metadata(m.path("d2"))), libc::ENOENT);
    // errors
    assert_eq!(errno(fs::remove_file(m.path("nope"))), libc::ENOENT);
    assert_eq!(
        errno(fs::hard_link(m.path("a.txt"), m.path("hl"))),
        libc::EPERM
    );
    fs::create_dir(m.path("e")).unwrap();
    assert_eq!(errno(fs::remove_file(m.path("e"))), libc::EISDIR);
    assert_eq!(errno(fs::read(m.path("a.txt/x"))), libc::ENOTDIR);
    // objects written by other tools show up as files
    rt().block_on(moto.store().put_object(
        "ops-bucket",
        "ext/obj",
        Bytes::from_static(b"other"),
        &Default::default(),
    ))
    .unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let mut names: Vec<String> = fs::read_dir(m.path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a.txt", "e", "ext", "seek2"]);
    assert_eq!(fs::read(m.path("ext/obj")).unwrap(), b"other");
    // statfs reports a big, sane filesystem
    let st = nix::sys::statvfs::statvfs(&m.dir).unwrap();
    assert!(st.blocks() as u64 * st.fragment_size() as u64 >= 1 << 50);
    m.unmount();
}

#[test]
fn chmod_symlink_and_data_persist_across_remount() {
    if !common::fuse_available() {
        return;
    }
    let moto = Moto::start();
    moto.bucket("remount-bucket");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mnt");
    let m = Mount::new(&moto, "remount-bucket", &dir, &["--prefix", "vols/pvc-1"]);
    fs::write(m.path("f"), b"hello").unwrap();
    fs::set_permissions(m.path("f"), fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("f", m.path("l")).unwrap();
    m.unmount();
    // The volume marker of the controller is never shown.
    rt().block_on(moto.store().put_object(
        "remount-bucket",
        "vols/pvc-1/.dcs-csi-volume.json",
        Bytes::from_static(b"{}"),
        &Default::default(),
    ))
    .unwrap();
    let m = Mount::new(&moto, "remount-bucket", &dir, &["--prefix", "vols/pvc-1/"]);
    assert_eq!(fs::metadata(m.path("f")).unwrap().mode() & 0o7777, 0o600);
    assert_eq!(fs::read_link(m.path("l")).unwrap().to_str(), Some("f"));
    assert_eq!(fs::read(m.path("l")).unwrap(), b"hello");
    assert_eq!(
        s3_get(&moto, "remount-bucket", "vols/pvc-1/f").unwrap(),
        b"hello"
    );
    let names: Vec<_> = fs::read_dir(&m.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "marker hidden: {names:?}");
    assert_eq!(
        errno(fs::metadata(m.path(".dcs-csi-volume.json"))),
        libc::ENOENT
    );
    m.unmount();
}

#[test]
fn large_file_goes_multipart_and_reads_back_identical() {
    if !common::fuse_available() {
        return;
    }
    let moto = Moto::start();
    moto.bucket("large-bucket");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mnt");
    let m = Mount::new(
        &moto,
        "large-bucket",
        &dir,
        &["--part-size-mib", "5", "--max-memory-mib", "32"],
    );
    let mut data = vec![0u8; 64 << 20];
    let mut x: u32 = 12345;
    for b in data.iter_mut() {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        *b = (x >> 16) as u8;
    }
    let mut f = fs::File::create(m.path("big")).unwrap();
    for c in data.chunks(1 << 20) {
        f.write_all(c).unwrap();
    }
    drop(f);
    let want = Sha256::digest(&data);
    let got = s3_get(&moto, "large-bucket", "big").unwrap();
    assert_eq!(got.len(), data.len());
    assert_eq!(Sha256::digest(&got), want);
    let info = rt()
        .block_on(moto.store().head_object("large-bucket", "big"))
        .unwrap()
        .unwrap();
    assert!(
        info.etag.contains('-'),
        "multipart ETag expected, got {}",
        info.etag
    );
    m.unmount();
    let m = Mount::new(&moto, "large-bucket", &dir, &[]);
    let mut back = Vec::new();
    fs::File::open(m.path("big"))
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(Sha256::digest(&back), want);
    m.unmount();
}

#[test]
fn sigterm_commits_open_files_and_unmounts() {
    if !common::fuse_available() {
        return;
    }
    let moto = Moto::start();
    moto.bucket("term-bucket");
    let tmp = tempfile::tempdir().unwrap();
    let mut m = Mount::new(&moto, "term-bucket", &tmp.path().join("mnt"), &[]);
    let mut f = fs::File::create(m.path("open")).unwrap();
    f.write_all(b"still open").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(m.pid() as i32),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    let st = m.wait_exit(Duration::from_secs(30));
    assert!(st.is_some_and(|s| s.success()), "exit status {st:?}");
    assert_eq!(s3_get(&moto, "term-bucket", "open").unwrap(), b"still open");
    assert!(!common::is_mounted(&m.dir));
    drop(f);
}

#[test]
fn unreachable_bucket_fails_before_mounting() {
    if !common::fuse_available() {
        return;
    }
    let moto = Moto::start();
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dcs-csi"))
        .args([
            "mount",
            "--bucket",
            "no-such-bucket",
            "--endpoint",
            &moto.endpoint,
        ])
        .arg(tmp.path())
        .env("AWS_ACCESS_KEY_ID", common::KEY)
        .env("AWS_SECRET_ACCESS_KEY", common::SECRET)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not reachable"), "{err}");
    assert!(!err.contains(common::SECRET), "secret leaked into logs");
    assert!(!common::is_mounted(tmp.path()));
}
