//! Unit tests of the core on the in-memory store (no FUSE).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;

use crate::store::memory::MemoryStore;
use crate::store::*;

pub(super) use super::test_store::Flaky;
use super::*;

pub(super) const PART: u64 = 64 * 1024;
pub(super) const B: &str = "bkt";

pub(super) async fn setup_with(store: MemoryStore, prefix: &str) -> (Arc<Flaky>, Filesystem) {
    let s = Arc::new(Flaky {
        inner: store.with_min_part_size(PART),
        fail_commit: AtomicBool::new(false),
    });
    s.create_bucket(B).await.unwrap();
    let opts = MountOptions {
        metadata_ttl: std::time::Duration::from_secs(60),
        ..Default::default()
    };
    let fs = Filesystem::with_part_size(s.clone(), B, prefix, opts, PART);
    (s, fs)
}

async fn setup() -> (Arc<Flaky>, Filesystem) {
    setup_with(MemoryStore::new().with_page_size(3), "").await
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn write_file(fs: &Filesystem, parent: u64, name: &str, body: &[u8]) -> u64 {
    let (a, fh) = fs.create(parent, name, 0o640, 7, 8).await.unwrap();
    for (i, c) in body.chunks(10_000).enumerate() {
        fs.write(a.ino, fh, (i * 10_000) as u64, c).await.unwrap();
    }
    fs.flush(a.ino, fh).await.unwrap();
    fs.release(a.ino, fh).await.unwrap();
    a.ino
}

async fn read_all(fs: &Filesystem, ino: u64) -> Vec<u8> {
    let fh = fs.open(ino, libc::O_RDONLY).await.unwrap();
    let mut out = Vec::new();
    loop {
        let b = fs.read(ino, fh, out.len() as u64, 7_000).await.unwrap();
        if b.is_empty() {
            break;
        }
        out.extend_from_slice(&b);
    }
    fs.release(ino, fh).await.unwrap();
    out
}

fn errno<T: std::fmt::Debug>(r: FsResult<T>) -> i32 {
    r.expect_err("expected an error").errno()
}

#[tokio::test]
async fn create_write_is_invisible_until_flush_then_committed() {
    let (s, fs) = setup().await;
    let (a, fh) = fs.create(ROOT_INO, "f", 0o600, 5, 6).await.unwrap();
    fs.write(a.ino, fh, 0, b"hello").await.unwrap();
    assert_eq!(fs.read(a.ino, fh, 0, 100).await.unwrap(), &b"hello"[..]);
    assert_eq!(fs.getattr(a.ino).await.unwrap().size, 5);
    assert!(
        s.inner.object(B, "f").is_none(),
        "nothing visible before commit"
    );
    fs.flush(a.ino, fh).await.unwrap();
    assert_eq!(s.inner.object(B, "f").unwrap(), &b"hello"[..]);
    fs.release(a.ino, fh).await.unwrap();
    let meta = s.head_object(B, "f").await.unwrap().unwrap().metadata;
    assert_eq!(meta["dcs-mode"], "600");
    assert_eq!(meta["dcs-uid"], "5");
    let at = fs.lookup(ROOT_INO, "f").await.unwrap();
    assert_eq!((at.perm, at.uid, at.gid, at.size), (0o600, 5, 6, 5));
}

#[tokio::test]
async fn errors_have_the_right_errno() {
    let (_s, fs) = setup().await;
    assert_eq!(errno(fs.lookup(ROOT_INO, "nope").await), libc::ENOENT);
    let d = fs.mkdir(ROOT_INO, "d", 0o755).await.unwrap();
    assert_eq!(errno(fs.mkdir(ROOT_INO, "d", 0o755).await), libc::EEXIST);
    let f = write_file(&fs, d.ino, "f", b"x").await;
    assert_eq!(errno(fs.rmdir(ROOT_INO, "d").await), libc::ENOTEMPTY);
    assert_eq!(errno(fs.rmdir(d.ino, "f").await), libc::ENOTDIR);
    assert_eq!(errno(fs.unlink(ROOT_INO, "d").await), libc::EISDIR);
    assert_eq!(errno(fs.unlink(ROOT_INO, "nope").await), libc::ENOENT);
    assert_eq!(errno(fs.open(d.ino, libc::O_RDONLY).await), libc::EISDIR);
    assert_eq!(errno(fs.lookup(f, "x").await), libc::ENOTDIR);
    assert_eq!(errno(fs.create(f, "x", 0o644, 0, 0).await), libc::ENOTDIR);
    write_file(&fs, ROOT_INO, "g", b"y").await;
    assert_eq!(
        errno(fs.rename(ROOT_INO, "d", ROOT_INO, "g", false).await),
        libc::ENOTDIR
    );
    assert_eq!(
        errno(fs.rename(ROOT_INO, "g", ROOT_INO, "d", false).await),
        libc::EISDIR
    );
    assert_eq!(
        errno(fs.rename(d.ino, "f", ROOT_INO, "g", true).await),
        libc::EEXIST
    );
    assert_eq!(
        errno(fs.rename(ROOT_INO, "d", d.ino, "sub", false).await),
        libc::EINVAL
    );
    assert_eq!(errno(fs.link(f, "h")), libc::EPERM);
    fs.unlink(d.ino, "f").await.unwrap();
    fs.rmdir(ROOT_INO, "d").await.unwrap();
    assert_eq!(errno(fs.lookup(ROOT_INO, "d").await), libc::ENOENT);
}

#[tokio::test]
async fn read_only_mount_refuses_changes() {
    let s = Arc::new(MemoryStore::new());
    s.create_bucket(B).await.unwrap();
    s.put_object(B, "f", Bytes::from_static(b"abc"), &Default::default())
        .await
        .unwrap();
    let opts = MountOptions {
        read_only: true,
        ..Default::default()
    };
    let fs = Filesystem::new(s, B, "", opts);
    let f = fs.lookup(ROOT_INO, "f").await.unwrap();
    assert_eq!(errno(fs.open(f.ino, libc::O_WRONLY).await), libc::EROFS);
    assert_eq!(
        errno(fs.create(ROOT_INO, "g", 0o644, 0, 0).await),
        libc::EROFS
    );
    assert_eq!(errno(fs.mkdir(ROOT_INO, "d", 0o755).await), libc::EROFS);
    assert_eq!(errno(fs.unlink(ROOT_INO, "f").await), libc::EROFS);
    assert_eq!(read_all(&fs, f.ino).await, b"abc");
}

#[tokio::test]
async fn sequential_writes_stream_parts_and_seek_back_reuploads_one_part() {
    let (s, fs) = setup().await;
    let (a, fh) = fs.create(ROOT_INO, "big", 0o644, 0, 0).await.unwrap();
    let mut expect = data(10 * PART as usize + 123, 1);
    for (i, c) in expect.chunks(4096).enumerate() {
        fs.write(a.ino, fh, (i * 4096) as u64, c).await.unwrap();
    }
    assert_eq!(s.inner.pending_uploads(B), 1, "parts stream before close");
    assert!(s.inner.object(B, "big").is_none());
    // pg_dump -Fc style: go back and rewrite near the start.
    fs.write(a.ino, fh, 10, b"TOC!").await.unwrap();
    expect[10..14].copy_from_slice(b"TOC!");
    fs.fsync(a.ino, fh).await.unwrap();
    assert_eq!(s.inner.object(B, "big").unwrap(), &expect[..]);
    assert_eq!(s.inner.pending_uploads(B), 0);
    // Writes after a commit start a new upload on the next commit.
    fs.write(a.ino, fh, expect.len() as u64, b"tail")
        .await
        .unwrap();
    expect.extend_from_slice(b"tail");
    fs.flush(a.ino, fh).await.unwrap();
    fs.release(a.ino, fh).await.unwrap();
    assert_eq!(s.inner.object(B, "big").unwrap(), &expect[..]);
    assert_eq!(read_all(&fs, a.ino).await, expect);
}

#[tokio::test]
async fn failed_commit_is_eio_aborts_upload_and_keeps_previous_version() {
    let (s, fs) = setup().await;
    let old = data(3 * PART as usize, 2);
    let ino = write_file(&fs, ROOT_INO, "f", &old).await;
    let fh = fs.open(ino, libc::O_WRONLY | libc::O_TRUNC).await.unwrap();
    let new = data(5 * PART as usize, 3);
    fs.write(ino, fh, 0, &new).await.unwrap();
    s.fail_commit.store(true, Ordering::Relaxed);
    assert_eq!(errno(fs.flush(ino, fh).await), libc::EIO);
    assert_eq!(s.inner.pending_uploads(B), 0, "upload aborted");
    assert_eq!(
        s.inner.object(B, "f").unwrap(),
        &old[..],
        "previous version intact"
    );
    // The data stays staged: a retry succeeds.
    s.fail_commit.store(false, Ordering::Relaxed);
    fs.flush(ino, fh).await.unwrap();
    fs.release(ino, fh).await.unwrap();
    assert_eq!(s.inner.object(B, "f").unwrap(), &new[..]);
    // A small file fails the same way.
    let (a, fh) = fs.create(ROOT_INO, "small", 0o644, 0, 0).await.unwrap();
    fs.write(a.ino, fh, 0, b"x").await.unwrap();
    s.fail_commit.store(true, Ordering::Relaxed);
    assert_eq!(errno(fs.flush(a.ino, fh).await), libc::EIO);
    assert!(s.inner.object(B, "small").is_none());
}

#[tokio::test]
async fn append_and_overwrite_existing_objects() {
    let (s, fs) = setup().await;
    let body = data(2 * PART as usize + 5, 4);
    s.put_object(B, "x", Bytes::from(body.clone()), &Default::default())
        .await
        .unwrap();
    let x = fs.lookup(ROOT_INO, "x").await.unwrap();
    let fh = fs.open(x.ino, libc::O_WRONLY).await.unwrap();
    fs.write(x.ino, fh, PART + 1, b"MID").await.unwrap();
    fs.write(x.ino, fh, body.len() as u64, b"END")
        .await
        .unwrap();
    fs.flush(x.ino, fh).await.unwrap();
    fs.release(x.ino, fh).await.unwrap();
    let mut expect = body;
    expect[PART as usize + 1..PART as usize + 4].copy_from_slice(b"MID");
    expect.extend_from_slice(b"END");
    assert_eq!(s.inner.object(B, "x").unwrap(), &expect[..]);
}

#[tokio::test]
async fn truncate_shrinks_and_extends_without_open_handle() {
    let (s, fs) = setup().await;
    let ino = write_file(&fs, ROOT_INO, "t", &data(3 * PART as usize, 5)).await;
    let a = fs
        .setattr(
            ino,
            SetAttr {
                size: Some(100),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(a.size, 100);
    assert_eq!(
        s.inner.object(B, "t").unwrap(),
        &data(3 * PART as usize, 5)[..100]
    );
    fs.setattr(
        ino,
        SetAttr {
            size: Some(PART + 1),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let got = s.inner.object(B, "t").unwrap();
    assert_eq!(got.len() as u64, PART + 1);
    assert!(got[100..].iter().all(|&b| b == 0));
    // ftruncate through an open handle, then more writes.
    let fh = fs.open(ino, libc::O_RDWR).await.unwrap();
    fs.setattr(
        ino,
        SetAttr {
            size: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    fs.write(ino, fh, 0, b"new").await.unwrap();
    fs.flush(ino, fh).await.unwrap();
    fs.release(ino, fh).await.unwrap();
    assert_eq!(s.inner.object(B, "t").unwrap(), &b"new"[..]);
}

#[tokio::test]
async fn rename_files_and_directories_without_server_copy() {
    let (s, fs) = setup_with(MemoryStore::new().without_copy().with_page_size(2), "vol/").await;
    let d = fs.mkdir(ROOT_INO, "d", 0o755).await.unwrap();
    let big = data(3 * PART as usize + 7, 6);
    write_file(&fs, d.ino, "big", &big).await;
    write_file(&fs, d.ino, "small", b"s").await;
    let sub = fs.mkdir(d.ino, "sub", 0o755).await.unwrap();
    write_file(&fs, sub.ino, "f", b"deep").await;
    fs.rename(ROOT_INO, "d", ROOT_INO, "e", false)
        .await
        .unwrap();
    let keys: HashSet<String> = s.inner.keys(B).unwrap().into_iter().collect();
    let want: HashSet<String> = [
        "vol/e/",
        "vol/e/big",
        "vol/e/small",
        "vol/e/sub/",
        "vol/e/sub/f",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(keys, want);
    assert_eq!(s.inner.object(B, "vol/e/big").unwrap(), &big[..]);
    let e = fs.lookup(ROOT_INO, "e").await.unwrap();
    fs.rename(e.ino, "small", ROOT_INO, "moved", false)
        .await
        .unwrap();
    let m = fs.lookup(ROOT_INO, "moved").await.unwrap();
    assert_eq!(read_all(&fs, m.ino).await, b"s");
    assert_eq!(errno(fs.lookup(e.ino, "small").await), libc::ENOENT);
    // Rename over an existing file replaces it.
    fs.rename(e.ino, "big", ROOT_INO, "moved", false)
        .await
        .unwrap();
    assert_eq!(s.inner.object(B, "vol/moved").unwrap(), &big[..]);
}

#[tokio::test]
async fn listing_is_complete_unordered_and_hides_the_volume_marker() {
    let (s, fs) = setup_with(MemoryStore::new().with_page_size(2), "v/").await;
    let m = UserMetadata::new();
    for k in [
        "v/.dcs-csi-volume.json",
        "v/a",
        "v/b",
        "v/c/d",
        "v/e/",
        "v/f",
        "other",
    ] {
        s.put_object(B, k, Bytes::from_static(b"1"), &m)
            .await
            .unwrap();
    }
    let fh = fs.opendir(ROOT_INO).await.unwrap();
    let names: Vec<String> = fs
        .readdir(fh, 0)
        .unwrap()
        .into_iter()
        .map(|(i, _)| i.name)
        .collect();
    fs.releasedir(fh);
    assert_eq!(names, [".", "..", "a", "b", "c", "e", "f"]);
    assert_eq!(
        errno(fs.lookup(ROOT_INO, VOLUME_MARKER).await),
        libc::ENOENT
    );
    assert_eq!(fs.lookup(ROOT_INO, "c").await.unwrap().kind, Kind::Dir);
    assert_eq!(
        errno(fs.create(ROOT_INO, VOLUME_MARKER, 0o644, 0, 0).await),
        libc::EACCES
    );
    // readdir from an offset continues where the kernel left off.
    let fh = fs.opendir(ROOT_INO).await.unwrap();
    assert_eq!(fs.readdir(fh, 5).unwrap()[0].0.name, "e");
}

#[tokio::test]
async fn symlinks_chmod_and_mtime_persist_in_metadata() {
    let (s, fs) = setup().await;
    let ino = write_file(&fs, ROOT_INO, "f", b"abc").await;
    let l = fs.symlink(ROOT_INO, "l", "f", 0, 0).await.unwrap();
    assert_eq!(l.kind, Kind::Symlink);
    assert_eq!(fs.readlink(l.ino).await.unwrap(), "f");
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    fs.setattr(
        ino,
        SetAttr {
            mode: Some(0o600),
            uid: Some(42),
            mtime: Some(t),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let meta = s.head_object(B, "f").await.unwrap().unwrap().metadata;
    assert_eq!(meta["dcs-mode"], "600");
    assert_eq!(meta["dcs-uid"], "42");
    assert_eq!(s.inner.object(B, "f").unwrap(), &b"abc"[..]);
    // A fresh filesystem (remount) sees the same.
    let fs2 = Filesystem::with_part_size(s.clone(), B, "", MountOptions::default(), PART);
    let a = fs2.lookup(ROOT_INO, "f").await.unwrap();
    assert_eq!((a.perm, a.uid, a.mtime), (0o600, 42, t));
    let l2 = fs2.lookup(ROOT_INO, "l").await.unwrap();
    assert_eq!(l2.kind, Kind::Symlink);
    assert_eq!(fs2.readlink(l2.ino).await.unwrap(), "f");
}

#[tokio::test]
async fn reads_prefetch_sequentially_and_fetch_little_at_random() {
    let s = Arc::new(MemoryStore::new());
    s.create_bucket(B).await.unwrap();
    let body = data(20 * 1024 * 1024 + 3, 7);
    s.put_object(B, "r", Bytes::from(body.clone()), &Default::default())
        .await
        .unwrap();
    let fs = Filesystem::new(s.clone(), B, "", MountOptions::default());
    let r = fs.lookup(ROOT_INO, "r").await.unwrap();
    let fh = fs.open(r.ino, libc::O_RDONLY).await.unwrap();
    let mut out = Vec::new();
    loop {
        let b = fs.read(r.ino, fh, out.len() as u64, 131_072).await.unwrap();
        if b.is_empty() {
            break;
        }
        out.extend_from_slice(&b);
    }
    assert!(out == body, "sequential read is byte-identical");
    let calls = s.calls();
    let b = fs.read(r.ino, fh, 5_000_000, 100).await.unwrap();
    assert_eq!(&b[..], &body[5_000_000..5_000_100]);
    let b = fs.read(r.ino, fh, 5_000_200, 100).await.unwrap();
    assert_eq!(&b[..], &body[5_000_200..5_000_300]);
    assert_eq!(
        s.calls() - calls,
        1,
        "nearby random reads share one small GET"
    );
    fs.release(r.ino, fh).await.unwrap();
    assert_eq!(
        fs.ctx.budget.available(),
        MountOptions::default().max_memory
    );
}

#[tokio::test]
async fn unlinked_open_file_is_not_recreated_on_close() {
    let (s, fs) = setup().await;
    let (a, fh) = fs.create(ROOT_INO, "gone", 0o644, 0, 0).await.unwrap();
    fs.write(a.ino, fh, 0, b"data").await.unwrap();
    fs.unlink(ROOT_INO, "gone").await.unwrap();
    fs.flush(a.ino, fh).await.unwrap();
    fs.release(a.ino, fh).await.unwrap();
    assert!(s.inner.object(B, "gone").is_none());
    assert_eq!(errno(fs.lookup(ROOT_INO, "gone").await), libc::ENOENT);
}

#[tokio::test]
async fn statfs_is_large_and_sane() {
    let (_s, fs) = setup().await;
    let st = fs.statfs();
    assert!(st.blocks * st.bsize as u64 >= 1 << 50);
    assert_eq!(st.bfree, st.blocks);
}
