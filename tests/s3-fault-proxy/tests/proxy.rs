//! Tests of the fault proxy against a tiny in-process upstream.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use regex::Regex;
use s3_fault_proxy::{FaultConfig, FaultProxy, ResetMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type TestBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A body sent as the given chunks, without a known length (so chunked).
struct Chunks(VecDeque<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

fn chunks(data: &[u8], size: usize) -> Chunks {
    Chunks(data.chunks(size).map(Bytes::copy_from_slice).collect())
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 11)) as u8)
        .collect()
}

fn full(b: impl Into<Bytes>) -> TestBody {
    Full::new(b.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

struct Upstream {
    addr: SocketAddr,
    hits: Arc<AtomicU64>,
}

/// Routes: `/echo` echoes the request body (streamed) and reports the Host
/// header it saw in `x-seen-host`; `/bytes/N` answers N bytes with a length;
/// `/chunked/N` answers N bytes chunked; anything else answers `ok`.
async fn upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicU64::new(0));
    let server_hits = Arc::clone(&hits);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let hits = Arc::clone(&server_hits);
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    hits.fetch_add(1, Ordering::SeqCst);
                    async move { Ok::<_, Infallible>(route(req)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Upstream { addr, hits }
}

fn route(req: Request<Incoming>) -> Response<TestBody> {
    let host = req
        .headers()
        .get(header::HOST)
        .map(|h| h.as_bytes().to_vec())
        .unwrap_or_default();
    let path = req.uri().path().to_owned();
    let mut resp = if path == "/echo" {
        let len = req.headers().get(header::CONTENT_LENGTH).cloned();
        let mut resp = Response::new(req.into_body().map_err(Into::into).boxed());
        if let Some(len) = len {
            resp.headers_mut().insert(header::CONTENT_LENGTH, len);
        }
        resp
    } else if let Some(n) = path.strip_prefix("/bytes/") {
        Response::new(full(pattern(n.parse().unwrap())))
    } else if let Some(n) = path.strip_prefix("/chunked/") {
        Response::new(chunks(&pattern(n.parse().unwrap()), 16 * 1024).boxed())
    } else {
        Response::new(full("ok"))
    };
    resp.headers_mut()
        .insert("x-seen-host", http::HeaderValue::from_bytes(&host).unwrap());
    resp
}

/// What a raw client saw: the bytes before EOF or error, and the error.
#[derive(Debug)]
struct Raw {
    bytes: Vec<u8>,
    error: Option<io::ErrorKind>,
    elapsed: Duration,
}

impl Raw {
    fn head_len(&self) -> Option<usize> {
        self.bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| p + 4)
    }
    fn head(&self) -> String {
        String::from_utf8_lossy(&self.bytes[..self.head_len().unwrap_or(self.bytes.len())])
            .into_owned()
    }
    fn status(&self) -> Option<u16> {
        self.head().get(9..12)?.parse().ok()
    }
    fn header(&self, name: &str) -> Option<String> {
        self.head().lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
    fn body(&self) -> &[u8] {
        &self.bytes[self.head_len().unwrap_or(self.bytes.len())..]
    }
}

/// Sends a raw request (with `Connection: close`) and reads until EOF/error.
async fn raw(addr: SocketAddr, method: &str, target: &str, body: &str) -> Raw {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let len = if body.is_empty() && method != "PUT" {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{len}\r\n{body}"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let error = loop {
        match tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf)).await {
            Err(_) => break Some(io::ErrorKind::TimedOut),
            Ok(Ok(0)) => break None,
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => break Some(e.kind()),
        }
    };
    Raw {
        bytes,
        error,
        elapsed: start.elapsed(),
    }
}

async fn proxy_with(up: &Upstream, f: impl FnOnce(&mut FaultConfig)) -> FaultProxy {
    let mut config = FaultConfig::new(up.addr);
    f(&mut config);
    FaultProxy::start(config).await.unwrap()
}

#[tokio::test]
async fn refuses_non_loopback() {
    let mut config = FaultConfig::new("10.1.2.3:9000".parse().unwrap());
    assert!(FaultProxy::start(config.clone()).await.is_err());
    config.upstream = "127.0.0.1:9000".parse().unwrap();
    config.listen = "0.0.0.0:0".parse().unwrap();
    assert!(FaultProxy::start(config).await.is_err());
}

#[tokio::test]
async fn no_faults_with_probability_zero() {
    let up = upstream().await;
    let proxy = proxy_with(&up, |c| c.drop_timeout = Duration::from_millis(100)).await;
    for i in 0..30 {
        let r = raw(proxy.addr(), "GET", &format!("/bytes/{}", 1000 + i), "").await;
        assert_eq!(r.status(), Some(200), "{r:?}");
        assert_eq!(r.body(), &pattern(1000 + i)[..]);
        assert_eq!(r.error, None);
    }
    let s = proxy.stats();
    assert_eq!(s.faults.total(), 0, "{s}");
    assert_eq!((s.requests, s.forwarded), (30, 30));
    assert_eq!(up.hits.load(Ordering::SeqCst), 30);
    assert_eq!(
        s.bytes_from_upstream,
        (0..30).map(|i| 1000 + i).sum::<u64>()
    );
}

#[tokio::test]
async fn status_fault_answers_s3_xml_without_forwarding() {
    let up = upstream().await;
    let proxy = proxy_with(&up, |c| {
        c.status_prob = 1.0;
        c.status_codes = vec![503];
    })
    .await;
    let r = raw(proxy.addr(), "PUT", "/bucket/key", "hello").await;
    assert_eq!(r.status(), Some(503), "{r:?}");
    let body = String::from_utf8_lossy(r.body()).into_owned();
    assert!(body.contains("<Code>SlowDown</Code>"), "{body}");
    assert!(body.contains("<Resource>/bucket/key</Resource>"), "{body}");
    assert_eq!(r.header("content-type").as_deref(), Some("application/xml"));

    let proxy500 = proxy_with(&up, |c| {
        c.status_prob = 1.0;
        c.status_codes = vec![500];
    })
    .await;
    let r = raw(proxy500.addr(), "GET", "/bucket/key", "").await;
    assert_eq!(r.status(), Some(500));
    assert!(String::from_utf8_lossy(r.body()).contains("<Code>InternalError</Code>"));

    assert_eq!(up.hits.load(Ordering::SeqCst), 0);
    assert_eq!(proxy.stats().faults.status, 1);
    assert_eq!(proxy.stats().forwarded, 0);
}

#[tokio::test]
async fn latency_fault_delays_but_forwards() {
    let up = upstream().await;
    let proxy = proxy_with(&up, |c| {
        c.latency_prob = 1.0;
        c.latency = Duration::from_millis(300);
    })
    .await;
    let r = raw(proxy.addr(), "GET", "/bytes/10", "").await;
    assert_eq!(r.status(), Some(200));
    assert!(r.elapsed >= Duration::from_millis(300), "{:?}", r.elapsed);
    assert_eq!(proxy.stats().faults.latency, 1);
    assert_eq!(up.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn reset_before_forwarding() {
    let up = upstream().await;
    let proxy = proxy_with(&up, |c| {
        c.reset_prob = 1.0;
        c.reset_mode = ResetMode::Before;
    })
    .await;
    let r = raw(proxy.addr(), "GET", "/bytes/10", "").await;
    assert!(r.bytes.is_empty(), "{r:?}");
    assert_eq!(r.error, Some(io::ErrorKind::ConnectionReset), "{r:?}");
    assert_eq!(up.hits.load(Ordering::SeqCst), 0);
    assert_eq!(proxy.stats().faults.reset_before, 1);
}

#[tokio::test]
async fn reset_after_forwarding() {
    let up = upstream().await;
    let proxy = proxy_with(&up, |c| {
        c.reset_prob = 1.0;
        c.reset_mode = ResetMode::After;
    })
    .await;
    let r = raw(proxy.addr(), "PUT", "/echo", "abc").await;
    assert!(r.bytes.is_empty(), "{r:?}");
    assert_eq!(r.error, Some(io::ErrorKind::ConnectionReset), "{r:?}");
    assert_eq!(
        up.hits.load(Ordering::SeqCst),
        1,
        "the upstream got the request"
    );
    assert_eq!(proxy.stats().faults.reset_after, 1);
    assert_eq!(proxy.stats().bytes_to_upstream, 3);
}

#[tokio::test]
async fn truncate_cuts_bodies() {
    let up = upstream().await;
    let proxy = proxy_with(&up, |c| c.truncate_prob = 1.0).await;
    let mut delivered = 0;
    for _ in 0..5 {
        let r = raw(proxy.addr(), "GET", "/bytes/300000", "").await;
        assert_eq!(r.status(), Some(200));
        assert_eq!(r.header("content-length").as_deref(), Some("300000"));
        assert!(r.body().len() < 300_000, "{} bytes", r.body().len());
        assert_eq!(
            r.body(),
            &pattern(300_000)[..r.body().len()],
            "prefix is intact"
        );
        delivered += r.body().len();
    }
    assert!(delivered > 0, "the part before the cut is delivered");
    // Chunked: the terminating chunk never comes.
    let r = raw(proxy.addr(), "GET", "/chunked/100000", "").await;
    assert_eq!(r.status(), Some(200));
    assert!(
        !r.body().ends_with(b"0\r\n\r\n"),
        "{} bytes",
        r.body().len()
    );
    assert!(
        r.body().len() > 8_000,
        "half of the first 16 KiB chunk arrives"
    );
    assert_eq!(proxy.stats().faults.truncate, 6);
    // Bodyless responses pass and are not counted.
    let r = raw(proxy.addr(), "HEAD", "/bytes/10", "").await;
    assert_eq!(r.status(), Some(200));
    assert_eq!(r.error, None);
    assert_eq!(proxy.stats().faults.truncate, 6);
}

#[tokio::test]
async fn drop_never_answers_and_closes_after_timeout() {
    let up = upstream().await;
    let proxy = proxy_with(&up, |c| {
        c.drop_prob = 1.0;
        c.drop_timeout = Duration::from_millis(400);
    })
    .await;
    let r = raw(proxy.addr(), "PUT", "/echo", "abc").await;
    assert!(r.bytes.is_empty(), "{r:?}");
    assert_ne!(r.error, Some(io::ErrorKind::TimedOut));
    assert!(r.elapsed >= Duration::from_millis(400), "{:?}", r.elapsed);
    assert_eq!(up.hits.load(Ordering::SeqCst), 0);
    assert_eq!(proxy.stats().faults.drop, 1);
}

#[tokio::test]
async fn cap_is_honoured() {
    let up = upstream().await;
    let proxy = proxy_with(&up, |c| {
        c.status_prob = 1.0;
        c.max_faults = Some(3);
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(
            raw(proxy.addr(), "GET", "/bytes/1", "")
                .await
                .status()
                .unwrap(),
        );
    }
    assert!(statuses[..3].iter().all(|s| *s >= 500), "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 200), "{statuses:?}");
    let s = proxy.stats();
    assert_eq!((s.faults.total(), s.forwarded), (3, 7), "{s}");
}

#[tokio::test]
async fn time_window_and_switch() {
    let up = upstream().await;
    let proxy = proxy_with(&up, |c| {
        c.status_prob = 1.0;
        c.fault_window = Some(Duration::from_millis(200));
    })
    .await;
    assert_eq!(
        raw(proxy.addr(), "GET", "/x", "").await.status().unwrap() / 100,
        5
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(raw(proxy.addr(), "GET", "/x", "").await.status(), Some(200));

    let proxy = proxy_with(&up, |c| c.status_prob = 1.0).await;
    proxy.set_faults_enabled(false);
    assert_eq!(raw(proxy.addr(), "GET", "/x", "").await.status(), Some(200));
    proxy.set_faults_enabled(true);
    assert_eq!(
        raw(proxy.addr(), "GET", "/x", "").await.status().unwrap() / 100,
        5
    );
}

#[tokio::test]
async fn filters_by_method_and_path() {
    let up = upstream().await;
    let proxy = proxy_with(&up, |c| {
        c.status_prob = 1.0;
        c.methods = vec![Method::PUT];
        c.path_regex = Some(Regex::new("partNumber=").unwrap());
    })
    .await;
    let part = "/b/k?partNumber=2&uploadId=abc";
    assert_eq!(raw(proxy.addr(), "GET", part, "").await.status(), Some(200));
    assert_eq!(
        raw(proxy.addr(), "PUT", "/b/k", "").await.status(),
        Some(200)
    );
    assert_eq!(
        raw(proxy.addr(), "PUT", part, "").await.status().unwrap() / 100,
        5
    );
    assert_eq!(proxy.stats().faults.status, 1);
}

#[tokio::test]
async fn same_seed_same_faults() {
    let up = upstream().await;
    let mut runs = Vec::new();
    for seed in [42, 42, 43] {
        let proxy = proxy_with(&up, |c| {
            c.seed = seed;
            c.status_prob = 0.5;
        })
        .await;
        let mut statuses = Vec::new();
        for _ in 0..40 {
            statuses.push(raw(proxy.addr(), "GET", "/x", "").await.status().unwrap());
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    assert_ne!(runs[0], runs[2]);
    let faults = runs[0].iter().filter(|s| **s != 200).count();
    assert!((8..=32).contains(&faults), "{faults} of 40");
}

#[tokio::test]
async fn host_header_reaches_upstream_unchanged() {
    let up = upstream().await;
    let proxy = proxy_with(&up, |_| {}).await;
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    s.write_all(
        b"GET /x HTTP/1.1\r\nHost: Bucket.S3.example.test:1234\r\nX-Amz-Date: 20260101T000000Z\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("x-seen-host: Bucket.S3.example.test:1234\r\n"),
        "{text}"
    );

    let r = raw(proxy.addr(), "GET", "/x", "").await;
    assert_eq!(r.header("x-seen-host"), Some(proxy.addr().to_string()));
}

async fn put_echo(proxy: SocketAddr, body: TestBody) -> (Response<()>, Vec<u8>) {
    let stream = TcpStream::connect(proxy).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::put("/echo")
        .header(header::HOST, proxy.to_string())
        .body(body)
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let data = body.collect().await.unwrap().to_bytes().to_vec();
    (Response::from_parts(parts, ()), data)
}

#[tokio::test]
async fn pass_through_20_mib_is_byte_identical() {
    let up = upstream().await;
    let proxy = proxy_with(&up, |_| {}).await;
    let data = pattern(20 * 1024 * 1024);

    // With Content-Length.
    let (resp, echoed) = put_echo(proxy.addr(), full(data.clone())).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers().get(header::CONTENT_LENGTH).unwrap(),
        &data.len().to_string()
    );
    assert!(echoed == data, "echo differs ({} bytes)", echoed.len());

    // Chunked transfer encoding, odd chunk sizes.
    let (resp, echoed) = put_echo(proxy.addr(), chunks(&data, 77_777).boxed()).await;
    assert_eq!(resp.status(), 200);
    assert!(
        echoed == data,
        "chunked echo differs ({} bytes)",
        echoed.len()
    );

    // Download.
    let r = raw(proxy.addr(), "GET", &format!("/bytes/{}", data.len()), "").await;
    assert!(
        r.body() == &data[..],
        "download differs ({} bytes)",
        r.body().len()
    );

    let s = proxy.stats();
    assert_eq!(s.bytes_to_upstream, 2 * data.len() as u64, "{s}");
    assert_eq!(s.bytes_from_upstream, 3 * data.len() as u64, "{s}");
    assert_eq!(s.faults.total(), 0);
}

#[tokio::test]
async fn stats_endpoint() {
    let up = upstream().await;
    let proxy = proxy_with(&up, |_| {}).await;
    raw(proxy.addr(), "GET", "/bytes/5", "").await;
    let r = raw(proxy.addr(), "GET", "/__stats", "").await;
    let body = String::from_utf8_lossy(r.body()).into_owned();
    assert!(body.contains("\"requests\":1"), "{body}");
    assert!(body.contains("\"bytes_from_upstream\":5"), "{body}");
}

#[test]
fn start_in_thread_for_sync_tests() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let up = rt.block_on(upstream());
    let mut config = FaultConfig::new(up.addr);
    config.status_prob = 1.0;
    config.max_faults = Some(1);
    let proxy = FaultProxy::start_in_thread(config).unwrap();
    let first = rt.block_on(raw(proxy.addr(), "GET", "/x", ""));
    let second = rt.block_on(raw(proxy.addr(), "GET", "/x", ""));
    assert_eq!(
        (first.status().unwrap() / 100, second.status()),
        (5, Some(200))
    );
    let stats = proxy.shutdown();
    assert_eq!(stats.faults.status, 1);
}
