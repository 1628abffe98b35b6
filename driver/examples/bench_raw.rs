//! Raw S3 throughput without FUSE, the baseline of `bench/run.sh`: uploads
//! SIZE MiB as a multipart upload (8 MiB parts, 8 in flight, like the mount's
//! defaults), then reads it back with parallel 8 MiB ranged GETs.
//!
//! `cargo run --release --example bench_raw -- ENDPOINT BUCKET SIZE_MIB`
//! with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment.
//! Prints `RAW op=put|get secs=.. mbps=..`.

use std::time::Instant;

use bytes::Bytes;
use dcs_csi::store::s3::{ChecksumPolicy, S3Config, S3Store};
use dcs_csi::store::{CompletedPart, ObjectStore};
use futures::{StreamExt, TryStreamExt, stream};

const PART: u64 = 8 << 20;
const PARALLEL: usize = 8;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, endpoint, bucket, size_mib] = &args[..] else {
        eprintln!("usage: bench_raw ENDPOINT BUCKET SIZE_MIB");
        std::process::exit(2);
    };
    let size = size_mib.parse::<u64>().expect("SIZE_MIB") << 20;
    let store = S3Store::new(&S3Config {
        endpoint: Some(endpoint.clone()),
        region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
        access_key_id: std::env::var("AWS_ACCESS_KEY_ID").expect("AWS_ACCESS_KEY_ID"),
        secret_access_key: std::env::var("AWS_SECRET_ACCESS_KEY").expect("AWS_SECRET_ACCESS_KEY"),
        path_style: true,
        checksum: ChecksumPolicy::WhenRequired,
        max_attempts: 3,
    });
    let key = "bench-raw/object";
    let chunk = Bytes::from((0..PART).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let parts = size.div_ceil(PART);

    let t = Instant::now();
    let id = store
        .create_multipart(bucket, key, &Default::default())
        .await
        .unwrap();
    let mut done: Vec<CompletedPart> = stream::iter(1..=parts)
        .map(|n| {
            let len = PART.min(size - (n - 1) * PART) as usize;
            let (store, id, body) = (&store, &id, chunk.slice(..len));
            async move {
                let etag = store.upload_part(bucket, key, id, n as i32, body).await?;
                Ok::<_, dcs_csi::store::StoreError>(CompletedPart {
                    number: n as i32,
                    etag,
                })
            }
        })
        .buffer_unordered(PARALLEL)
        .try_collect()
        .await
        .unwrap();
    done.sort_by_key(|p| p.number);
    store
        .complete_multipart(bucket, key, &id, &done)
        .await
        .unwrap();
    report("put", size, t);

    let t = Instant::now();
    let got: u64 = stream::iter(0..parts)
        .map(|n| {
            let store = &store;
            async move {
                let r = n * PART..((n + 1) * PART).min(size);
                store
                    .get_range(bucket, key, r)
                    .await
                    .map(|b| b.len() as u64)
            }
        })
        .buffer_unordered(PARALLEL)
        .try_fold(0, |a, n| async move { Ok(a + n) })
        .await
        .unwrap();
    assert_eq!(got, size, "short read");
    report("get", size, t);
    store.delete_object(bucket, key).await.unwrap();
}

fn report(op: &str, size: u64, t: Instant) {
    let secs = t.elapsed().as_secs_f64();
    println!(
        "RAW op={op} secs={secs:.3} mbps={:.1}",
        size as f64 / 1e6 / secs
    );
}
