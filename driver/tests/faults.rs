//! The driver under injected store faults: moto upstream, the seeded
//! `s3-fault-proxy` in between (≈5 % each of 503 SlowDown / 500, connection
//! resets before or after the upstream answered, truncated response bodies;
//! bounded in count). Everything the test wrote is then checked with faults
//! off, directly against moto through the S3 API: byte-identical objects, no
//! partial object ever visible, no multipart upload left behind.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::IntoRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{CsiServer, Moto, Mount, S3Target, mount_cap, rt};
use dcs_csi::store::{ObjectStore, UserMetadata, list_all};
use dcs_csi_proto::v1;
use dcs_csi_proto::v1::controller_client::ControllerClient;
use dcs_csi_proto::v1::volume_capability::access_mode::Mode;
use s3_fault_proxy::{FaultConfig, FaultProxy, Stats};
use sha2::{Digest, Sha256};

const MIB: usize = 1 << 20;
const BIG: usize = 256 * MIB;
const SMALL_FILES: usize = 200;

/// ≈5 % each of status (503/500), reset and truncate faults, at most `cap`.
fn faulty_proxy(upstream: &S3Target, seed: u64, cap: u64) -> FaultProxy {
    let mut c = FaultConfig::new(upstream.addr());
    c.seed = seed;
    c.status_prob = 0.05;
    c.status_codes = vec![503, 500];
    c.reset_prob = 0.05;
    c.truncate_prob = 0.05;
    c.max_faults = Some(cap);
    FaultProxy::start_in_thread(c).expect("start the fault proxy")
}

fn print_faults(what: &str, s: &Stats) {
    let f = &s.faults;
    eprintln!(
        "{what}: {} S3 requests through the proxy ({} forwarded), faults injected: {} total = \
         {} status (503/500), {} resets before forwarding, {} resets after the answer, \
         {} truncated bodies, {} latency, {} dropped",
        s.requests,
        s.forwarded,
        f.total(),
        f.status,
        f.reset_before,
        f.reset_after,
        f.truncate,
        f.latency,
        f.drop
    );
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn fill(seed: u64, buf: &mut [u8]) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

fn sha(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

/// close(2) with its result checked (dropping a `File` ignores it), after fsync.
fn sync_close(f: File, what: &str) {
    f.sync_all()
        .unwrap_or_else(|e| panic!("fsync of {what}: {e}"));
    nix::unistd::close(f.into_raw_fd()).unwrap_or_else(|e| panic!("close of {what}: {e}"));
}

/// Object contents straight from moto, as sha256.
async fn object_sha(store: &dyn ObjectStore, bucket: &str, key: &str) -> Option<(u64, String)> {
    let info = store.head_object(bucket, key).await.unwrap()?;
    let mut h = Sha256::new();
    let mut off = 0;
    while off < info.size {
        let end = (off + 64 * MIB as u64).min(info.size);
        let data = store.get_range(bucket, key, off..end).await.unwrap();
        assert_eq!(data.len() as u64, end - off, "short read of {key}");
        h.update(&data);
        off = end;
    }
    Some((info.size, format!("{:x}", h.finalize())))
}

#[test]
fn filesystem_under_faults_keeps_every_byte() {
    if !common::fuse_available() {
        return;
    }
    let t0 = Instant::now();
    let moto = Moto::start();
    let direct = moto.target();
    let bucket = "faults";
    moto.bucket(bucket);
    let store = direct.store();
    let rt = rt();

    // A previous version of the big file, written directly: while the new one
    // is written, the key must only ever show this, or the complete new file.
    let mut prev = vec![0u8; 3 * MIB + 17];
    fill(1, &mut prev);
    let prev_etag = rt
        .block_on(store.put_object(
            bucket,
            "big.bin",
            Bytes::from(prev.clone()),
            &UserMetadata::new(),
        ))
        .unwrap();

    let proxy = faulty_proxy(&direct, 20_240_601, 2_000);
    let via = direct.via(proxy.url());
    let tmp = tempfile::tempdir().unwrap();
    let m = Mount::at(
        &via,
        bucket,
        &tmp.path().join("mnt"),
        &["--part-size-mib", "5"],
    );
    let mut ops: u64 = 0;

    // Poller: HEAD the key (directly, no faults) all through the write.
    let stop = Arc::new(AtomicBool::new(false));
    let polls = Arc::new(AtomicU64::new(0));
    let poller = {
        let (stop, polls, store) = (stop.clone(), polls.clone(), store.clone());
        std::thread::spawn(move || {
            let rt = common::rt();
            let mut seen: BTreeMap<(u64, String), u64> = BTreeMap::new();
            while !stop.load(Ordering::Relaxed) {
                let o = rt.block_on(store.head_object("faults", "big.bin")).unwrap();
                let k = o
                    .map(|o| (o.size, o.etag))
                    .unwrap_or((u64::MAX, "absent".into()));
                *seen.entry(k).or_default() += 1;
                polls.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
            seen
        })
    };

    // 1. A sequential 256 MiB write (52 parts of 5 MiB), a seek-back write
    //    into part 1 (already uploaded) before close.
    let mut big = vec![0u8; BIG];
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(m.path("big.bin"))
        .unwrap();
    ops += 1;
    for (i, chunk) in big.chunks_mut(MIB).enumerate() {
        fill(1000 + i as u64, chunk);
        f.write_all(chunk).unwrap();
        ops += 1;
    }
    let patch_at = 3 * MIB + 123;
    let mut patch = vec![0u8; 64 * 1024];
    fill(7, &mut patch);
    f.seek(SeekFrom::Start(patch_at as u64)).unwrap();
    f.write_all(&patch).unwrap();
    ops += 2;
    big[patch_at..patch_at + patch.len()].copy_from_slice(&patch);
    let big_sha = sha(&big);
    sync_close(f, "big.bin");
    ops += 2;
    let write_done = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    let seen = poller.join().unwrap();
    let new = rt
        .block_on(store.head_object(bucket, "big.bin"))
        .unwrap()
        .expect("big.bin committed");
    assert_eq!(new.size, BIG as u64);
    for ((size, etag), n) in &seen {
        let is_prev = *size == prev.len() as u64 && *etag == prev_etag;
        let is_new = *size == BIG as u64 && *etag == new.etag;
        assert!(
            is_prev || is_new,
            "the key showed a partial/unknown object {n} times: size {size}, etag {etag}"
        );
    }
    eprintln!(
        "poller: {} HEADs during the write, states seen: {:?}",
        polls.load(Ordering::Relaxed),
        seen
    );

    // 2. Rename the file (CopyObject, size check, delete).
    std::fs::create_dir(m.path("renamed")).unwrap();
    std::fs::rename(m.path("big.bin"), m.path("renamed/big-final.bin")).unwrap();
    ops += 2;

    // 3. 200 small files (0..64 KiB), then 4. rename their directory.
    std::fs::create_dir(m.path("small")).unwrap();
    ops += 1;
    let mut small: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for i in 0..SMALL_FILES {
        let mut data = vec![0u8; (i * 331) % (64 * 1024)];
        fill(50_000 + i as u64, &mut data);
        let name = format!("f{i:03}.dat");
        let mut f = File::create(m.path(&format!("small/{name}"))).unwrap();
        f.write_all(&data).unwrap();
        sync_close(f, &name);
        ops += 4;
        small.insert(name, data);
    }
    std::fs::rename(m.path("small"), m.path("small-moved")).unwrap();
    ops += 1;

    // 5. Read everything back through the mount (still under faults).
    let mut got = Vec::with_capacity(BIG);
    File::open(m.path("renamed/big-final.bin"))
        .unwrap()
        .read_to_end(&mut got)
        .unwrap();
    ops += 2;
    assert!(got == big, "big file read back through the mount differs");
    drop(got);
    assert!(!m.path("big.bin").exists());
    assert!(!m.path("small").exists());
    let mut listed: Vec<String> = std::fs::read_dir(m.path("small-moved"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    listed.sort();
    ops += 1;
    assert_eq!(listed, small.keys().cloned().collect::<Vec<_>>());
    for (name, data) in &small {
        let got = std::fs::read(m.path(&format!("small-moved/{name}"))).unwrap();
        ops += 1;
        assert!(got == *data, "{name} read back through the mount differs");
    }
    let during = proxy.stats();
    m.unmount();

    // Verification, faults off, directly against moto.
    proxy.set_faults_enabled(false);
    let mut want: HashMap<String, (u64, String)> = small
        .iter()
        .map(|(n, d)| (format!("small-moved/{n}"), (d.len() as u64, sha(d))))
        .collect();
    want.insert("renamed/big-final.bin".into(), (BIG as u64, big_sha));
    let mut verified = 0u64;
    let mut lost = 0u64;
    for (key, (size, digest)) in &want {
        match rt.block_on(object_sha(&store, bucket, key)) {
            Some((s, d)) if s == *size && d == *digest => verified += s,
            other => {
                eprintln!("LOST: {key}: want {size} bytes {digest}, got {other:?}");
                lost += size;
            }
        }
    }
    let keys: Vec<String> = rt
        .block_on(list_all(&store, bucket, ""))
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .filter(|k| !k.ends_with('/'))
        .collect();
    let extra: Vec<&String> = keys.iter().filter(|k| !want.contains_key(*k)).collect();
    let uploads = rt
        .block_on(store.list_multipart_uploads(bucket, ""))
        .unwrap();

    print_faults("filesystem under faults", &during);
    eprintln!(
        "filesystem under faults: {ops} filesystem operations, {} objects checked, \
         {verified} bytes verified, {lost} bytes lost; 256 MiB write+close took {:.1?}, all {:.1?}",
        want.len(),
        write_done,
        t0.elapsed()
    );
    assert_eq!(lost, 0, "bytes lost");
    assert!(extra.is_empty(), "objects that should not exist: {extra:?}");
    assert!(
        uploads.is_empty(),
        "multipart uploads left behind: {uploads:?}"
    );
    assert!(
        during.faults.status > 0
            && during.faults.truncate > 0
            && during.faults.reset_before + during.faults.reset_after > 0,
        "every kind of fault was injected: {:?}",
        during.faults
    );
}

/// A CreateVolumeRequest as csi-provisioner sends it.
fn create_req(target: &S3Target, name: &str, params: &[(&str, &str)]) -> v1::CreateVolumeRequest {
    let mut parameters: HashMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    parameters.insert("csi.storage.k8s.io/pvc/name".into(), name.into());
    parameters.insert("csi.storage.k8s.io/pvc/namespace".into(), "default".into());
    v1::CreateVolumeRequest {
        name: name.into(),
        volume_capabilities: vec![mount_cap(Mode::MultiNodeMultiWriter)],
        parameters,
        secrets: target.secrets(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_create_delete_under_faults() {
    if !common::moto_available() {
        return;
    }
    let moto = Moto::start();
    let direct = moto.target();
    let store = direct.store();
    let proxy = faulty_proxy(&direct, 77, 500);
    let via = direct.via(proxy.url());
    let server = CsiServer::start("controller", &[]);
    let mut ctl = ControllerClient::new(server.channel().await);
    let mut ops = 0u64;

    // Bucket mode: each volume is a bucket with a marker; delete removes it
    // with its objects.
    let names: Vec<String> = (0..12).map(|i| format!("pvc-faults-{i:02}")).collect();
    let mut ids = Vec::new();
    for name in &names {
        let v = ctl
            .create_volume(create_req(&via, name, &[]))
            .await
            .unwrap_or_else(|e| panic!("CreateVolume {name}: {e:?}\n{}", server.logs()))
            .into_inner()
            .volume
            .unwrap();
        ops += 1;
        assert!(store.bucket_exists(&v.volume_id).await.unwrap(), "{name}");
        let keys: Vec<String> = list_all(&store, &v.volume_id, "")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, [".dcs-csi-volume.json"], "{name}");
        for i in 0..5 {
            store
                .put_object(
                    &v.volume_id,
                    &format!("data/{i}"),
                    Bytes::from(vec![1u8; 1000]),
                    &UserMetadata::new(),
                )
                .await
                .unwrap();
        }
        ids.push(v.volume_id);
    }
    // Creating again is idempotent (same volume).
    for (name, id) in names.iter().zip(&ids).take(4) {
        let v = ctl
            .create_volume(create_req(&via, name, &[]))
            .await
            .unwrap_or_else(|e| panic!("CreateVolume {name} again: {e:?}"))
            .into_inner()
            .volume
            .unwrap();
        ops += 1;
        assert_eq!(&v.volume_id, id);
    }
    for id in &ids {
        ctl.delete_volume(v1::DeleteVolumeRequest {
            volume_id: id.clone(),
            secrets: via.secrets(),
        })
        .await
        .unwrap_or_else(|e| panic!("DeleteVolume {id}: {e:?}\n{}", server.logs()));
        ops += 1;
        assert!(
            !store.bucket_exists(id).await.unwrap(),
            "bucket {id} still exists"
        );
    }

    // Shared-bucket mode: volumes are prefixes; delete removes only the prefix.
    store.create_bucket("shared").await.unwrap();
    store
        .put_object(
            "shared",
            "unrelated.txt",
            Bytes::from_static(b"keep"),
            &UserMetadata::new(),
        )
        .await
        .unwrap();
    let params = [
        ("bucket", "shared"),
        ("usePrefix", "true"),
        ("prefix", "k8s"),
    ];
    let mut ids = Vec::new();
    for name in &names {
        let v = ctl
            .create_volume(create_req(&via, name, &params))
            .await
            .unwrap_or_else(|e| panic!("CreateVolume {name} (shared): {e:?}\n{}", server.logs()))
            .into_inner()
            .volume
            .unwrap();
        ops += 1;
        assert_eq!(v.volume_id, format!("shared/k8s/{name}"));
        store
            .put_object(
                "shared",
                &format!("k8s/{name}/data.bin"),
                Bytes::from_static(b"x"),
                &UserMetadata::new(),
            )
            .await
            .unwrap();
        ids.push(v.volume_id);
    }
    for id in ids.iter().step_by(2) {
        ctl.delete_volume(v1::DeleteVolumeRequest {
            volume_id: id.clone(),
            secrets: via.secrets(),
        })
        .await
        .unwrap_or_else(|e| panic!("DeleteVolume {id}: {e:?}\n{}", server.logs()));
        ops += 1;
    }
    proxy.set_faults_enabled(false);
    let mut left: Vec<String> = list_all(&store, "shared", "")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    left.sort();
    let mut want = vec!["unrelated.txt".to_string()];
    for name in names.iter().skip(1).step_by(2) {
        want.push(format!("k8s/{name}/.dcs-csi-volume.json"));
        want.push(format!("k8s/{name}/data.bin"));
    }
    want.sort();
    assert_eq!(left, want);
    let mut buckets: Vec<String> = direct
        .sdk()
        .list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_string))
        .collect();
    buckets.sort();
    assert_eq!(buckets, ["shared"], "only the shared bucket is left");
    let stats = proxy.stats();
    print_faults("controller under faults", &stats);
    eprintln!("controller under faults: {ops} CreateVolume/DeleteVolume calls, all succeeded");
    assert!(stats.faults.total() > 0, "no fault was injected");
}

/// Close result, (size, sha256) of the object, expected sha256, uploads left.
type LostAnswer = (Result<(), String>, Option<(u64, String)>, String, usize);

/// Writes a 12 MiB file (3 parts of 5 MiB) through a proxy that resets the
/// connection *after* moto answered the first POST matching `path_regex`:
/// the call happened, the driver never learnt it, the SDK retries it.
/// Returns the close result, the object's sha256 and the uploads left.
fn lost_answer(path_regex: &str) -> LostAnswer {
    let moto = Moto::start();
    moto.bucket("lost");
    let direct = moto.target();
    let mut c = FaultConfig::new(direct.addr());
    c.reset_prob = 1.0;
    c.reset_mode = s3_fault_proxy::ResetMode::After;
    c.methods = vec![http::Method::POST];
    c.path_regex = Some(regex_lite(path_regex));
    c.max_faults = Some(1);
    let proxy = FaultProxy::start_in_thread(c).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let m = Mount::at(
        &direct.via(proxy.url()),
        "lost",
        &tmp.path().join("mnt"),
        &["--part-size-mib", "5"],
    );
    let mut data = vec![0u8; 12 * MIB];
    fill(99, &mut data);
    let mut f = File::create(m.path("f.bin")).unwrap();
    f.write_all(&data).unwrap();
    let closed = f
        .sync_all()
        .map_err(|e| e.to_string())
        .and_then(|_| nix::unistd::close(f.into_raw_fd()).map_err(|e| e.to_string()));
    drop(m);
    assert_eq!(
        proxy.stats().faults.reset_after,
        1,
        "the fault was injected"
    );
    let store = direct.store();
    let rt = rt();
    let got = rt.block_on(object_sha(&store, "lost", "f.bin"));
    let uploads = rt
        .block_on(store.list_multipart_uploads("lost", ""))
        .unwrap()
        .len();
    (closed, got, sha(&data), uploads)
}

fn regex_lite(s: &str) -> regex::Regex {
    regex::Regex::new(s).unwrap()
}

#[test]
fn lost_answer_to_complete_multipart_upload() {
    if !common::fuse_available() {
        return;
    }
    let (closed, got, want, uploads) = lost_answer("uploadId=");
    eprintln!(
        "lost CompleteMultipartUpload answer: close {closed:?}, object {got:?}, uploads left {uploads}"
    );
    assert_eq!(got.map(|g| g.1), Some(want), "object committed");
    assert!(
        closed.is_ok(),
        "close reported {closed:?} although the object was committed"
    );
    assert_eq!(uploads, 0);
}

/// Known gap: the upload created by the lost attempt has an id the driver never
/// received, so nothing aborts it until DeleteVolume (which aborts every upload
/// under the volume). Its parts cost storage; no data is lost.
#[test]
#[ignore = "known gap: a CreateMultipartUpload whose answer is lost leaves an orphan upload until DeleteVolume"]
fn lost_answer_to_create_multipart_upload() {
    if !common::fuse_available() {
        return;
    }
    let (closed, got, want, uploads) = lost_answer(r"\?uploads");
    eprintln!(
        "lost CreateMultipartUpload answer: close {closed:?}, object {got:?}, uploads left {uploads}"
    );
    assert!(closed.is_ok(), "{closed:?}");
    assert_eq!(got.map(|g| g.1), Some(want), "object committed");
    assert_eq!(
        uploads, 0,
        "an upload whose id was never received is left behind"
    );
}
