//! A fault-injecting HTTP/1.1 proxy for S3 tests.
//!
//! The proxy listens on a loopback address and forwards every request to an
//! upstream S3 server that is also on loopback (moto, Garage, ...). Requests
//! and responses are forwarded unchanged: method, request target, every
//! header (including `Host` and the SigV4 `Authorization`/`x-amz-*` headers,
//! with their original case) and streamed bodies. Because the `Host` header is
//! kept, a client that addresses the proxy signs `Host: 127.0.0.1:<proxy
//! port>` and the upstream verifies exactly that value; Garage accepts it (it
//! does not tie signatures to its own port).
//!
//! For each request that matches the filters ([`FaultConfig::methods`],
//! [`FaultConfig::path_regex`]) at most one fault is chosen with a seeded RNG,
//! trying the kinds in this order, each with its own probability:
//! `drop`, `reset`, `status`, `truncate`, `latency`. Faults stop once
//! [`FaultConfig::max_faults`] have been injected or once
//! [`FaultConfig::fault_window`] has passed since the start.
//!
//! With sequential requests the sequence of faults is reproducible for a given
//! seed; with concurrent requests it depends on arrival order.
//!
//! ```no_run
//! # async fn demo(upstream: std::net::SocketAddr) -> std::io::Result<()> {
//! use s3_fault_proxy::{FaultConfig, FaultProxy};
//! let mut config = FaultConfig::new(upstream);
//! config.seed = 7;
//! config.status_prob = 0.05;
//! config.reset_prob = 0.05;
//! config.truncate_prob = 0.05;
//! config.max_faults = Some(100);
//! let proxy = FaultProxy::start(config).await?;
//! let endpoint = proxy.url(); // "http://127.0.0.1:PORT": point the S3 client here
//! # let _ = endpoint;
//! // ... run the workload ...
//! println!("{}", proxy.stats());
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use regex::Regex;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
// Concrete error types (not `BoxError`) for the service and the bodies: hyper's
// `Into<BoxError>` bounds on a boxed error trip a higher-ranked lifetime error.
type ProxyBody = BoxBody<Bytes, io::Error>;

/// When a `reset` fault closes the client connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResetMode {
    /// Before the request reaches the upstream (the operation did not happen).
    Before,
    /// After the upstream answered (the operation happened, the client never
    /// learns it).
    After,
    /// Either, chosen by the RNG with equal odds.
    #[default]
    Either,
}

impl std::str::FromStr for ResetMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "before" => Ok(Self::Before),
            "after" => Ok(Self::After),
            "either" => Ok(Self::Either),
            other => Err(format!(
                "unknown reset mode {other:?} (before|after|either)"
            )),
        }
    }
}

/// Proxy configuration. Build it with [`FaultConfig::new`] and set fields.
#[derive(Clone, Debug)]
pub struct FaultConfig {
    /// Address to listen on; must be loopback. Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Upstream S3 server; must be loopback.
    pub upstream: SocketAddr,
    /// RNG seed; the same seed gives the same faults for the same sequence of
    /// requests.
    pub seed: u64,
    /// Probability of answering with an S3 XML error without forwarding.
    pub status_prob: f64,
    /// Status codes to choose from for `status` faults: 503 answers `SlowDown`,
    /// 500 `InternalError`, anything else `InternalError` with that code.
    pub status_codes: Vec<u16>,
    /// Probability of delaying a request by [`FaultConfig::latency`] before
    /// forwarding it.
    pub latency_prob: f64,
    /// Delay added by a `latency` fault.
    pub latency: Duration,
    /// Probability of closing the client connection abruptly (TCP RST).
    pub reset_prob: f64,
    /// Whether resets happen before or after forwarding.
    pub reset_mode: ResetMode,
    /// Probability of forwarding and then cutting the response body short
    /// (a random point before its end) and closing the connection. Responses
    /// without a body (HEAD, 204, 304, `Content-Length: 0`) are passed
    /// through and not counted.
    pub truncate_prob: f64,
    /// Probability of reading the request, never answering, and closing the
    /// connection after [`FaultConfig::drop_timeout`].
    pub drop_prob: f64,
    /// How long a dropped request is held before the connection is closed.
    pub drop_timeout: Duration,
    /// Stop injecting faults after this many (`None`: no cap).
    pub max_faults: Option<u64>,
    /// Only inject faults during this long after start (`None`: always).
    pub fault_window: Option<Duration>,
    /// Only requests with one of these methods get faults (empty: all).
    pub methods: Vec<Method>,
    /// Only requests whose path-and-query matches get faults (`None`: all).
    /// A plain substring such as `partNumber=` is a valid regex.
    pub path_regex: Option<Regex>,
}

impl FaultConfig {
    /// A pass-through configuration (all probabilities 0) listening on
    /// `127.0.0.1:0` and forwarding to `upstream`.
    pub fn new(upstream: SocketAddr) -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            upstream,
            seed: 1,
            status_prob: 0.0,
            status_codes: vec![503, 500],
            latency_prob: 0.0,
            latency: Duration::from_millis(500),
            reset_prob: 0.0,
            reset_mode: ResetMode::Either,
            truncate_prob: 0.0,
            drop_prob: 0.0,
            drop_timeout: Duration::from_secs(30),
            max_faults: None,
            fault_window: None,
            methods: Vec::new(),
            path_regex: None,
        }
    }
}

/// Number of faults injected, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// S3 error responses (500/503) sent instead of forwarding.
    pub status: u64,
    /// Requests delayed.
    pub latency: u64,
    /// Connections reset before forwarding.
    pub reset_before: u64,
    /// Connections reset after the upstream answered.
    pub reset_after: u64,
    /// Response bodies cut short.
    pub truncate: u64,
    /// Requests never answered.
    pub drop: u64,
}

impl FaultCounts {
    /// Sum over all kinds.
    pub fn total(&self) -> u64 {
        self.status
            + self.latency
            + self.reset_before
            + self.reset_after
            + self.truncate
            + self.drop
    }
}

/// A snapshot of the proxy counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests received (excluding `GET /__stats`).
    pub requests: u64,
    /// Requests sent to the upstream.
    pub forwarded: u64,
    /// Upstream connection failures (answered with 502; not a fault).
    pub upstream_errors: u64,
    /// Request body bytes sent to the upstream.
    pub bytes_to_upstream: u64,
    /// Response body bytes passed back to clients.
    pub bytes_from_upstream: u64,
    /// Faults injected, by kind.
    pub faults: FaultCounts,
}

impl Stats {
    /// The stats as a JSON object.
    pub fn to_json(&self) -> String {
        let f = &self.faults;
        format!(
            concat!(
                "{{\"requests\":{},\"forwarded\":{},\"upstream_errors\":{},",
                "\"bytes_to_upstream\":{},\"bytes_from_upstream\":{},",
                "\"faults\":{{\"status\":{},\"latency\":{},\"reset_before\":{},",
                "\"reset_after\":{},\"truncate\":{},\"drop\":{},\"total\":{}}}}}"
            ),
            self.requests,
            self.forwarded,
            self.upstream_errors,
            self.bytes_to_upstream,
            self.bytes_from_upstream,
            f.status,
            f.latency,
            f.reset_before,
            f.reset_after,
            f.truncate,
            f.drop,
            f.total()
        )
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let f = &self.faults;
        write!(
            out,
            "requests={} forwarded={} upstream_errors={} bytes_to_upstream={} bytes_from_upstream={} \
             faults_total={} status={} latency={} reset_before={} reset_after={} truncate={} drop={}",
            self.requests,
            self.forwarded,
            self.upstream_errors,
            self.bytes_to_upstream,
            self.bytes_from_upstream,
            f.total(),
            f.status,
            f.latency,
            f.reset_before,
            f.reset_after,
            f.truncate,
            f.drop
        )
    }
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    forwarded: AtomicU64,
    upstream_errors: AtomicU64,
    bytes_to_upstream: AtomicU64,
    bytes_from_upstream: AtomicU64,
    status: AtomicU64,
    latency: AtomicU64,
    reset_before: AtomicU64,
    reset_after: AtomicU64,
    truncate: AtomicU64,
    drop: AtomicU64,
}

fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            requests: get(&self.requests),
            forwarded: get(&self.forwarded),
            upstream_errors: get(&self.upstream_errors),
            bytes_to_upstream: get(&self.bytes_to_upstream),
            bytes_from_upstream: get(&self.bytes_from_upstream),
            faults: FaultCounts {
                status: get(&self.status),
                latency: get(&self.latency),
                reset_before: get(&self.reset_before),
                reset_after: get(&self.reset_after),
                truncate: get(&self.truncate),
                drop: get(&self.drop),
            },
        }
    }
}

/// xorshift64* — small, seedable, good enough to pick faults.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // splitmix64 step so that small seeds (0, 1, 2) give unrelated streams.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Self(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn roll(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            false
        } else if p >= 1.0 {
            true
        } else {
            self.next_f64() < p
        }
    }

    /// Uniform in [0, n); n > 0.
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Status(u16),
    Latency,
    Reset { after: bool },
    Truncate,
    Drop,
}

struct Decider {
    rng: Rng,
    injected: u64,
}

struct Shared {
    config: FaultConfig,
    started: Instant,
    enabled: AtomicBool,
    decider: Mutex<Decider>,
    counters: Counters,
    client: Client<HttpConnector, ProxyBody>,
}

impl Shared {
    fn decide(&self, method: &Method, path_and_query: &str) -> Option<Fault> {
        let c = &self.config;
        if !self.enabled.load(Ordering::Relaxed) {
            return None;
        }
        if !c.methods.is_empty() && !c.methods.contains(method) {
            return None;
        }
        if let Some(re) = &c.path_regex
            && !re.is_match(path_and_query)
        {
            return None;
        }
        if let Some(window) = c.fault_window
            && self.started.elapsed() > window
        {
            return None;
        }
        let mut d = self.decider.lock().unwrap_or_else(|e| e.into_inner());
        if c.max_faults.is_some_and(|max| d.injected >= max) {
            return None;
        }
        let fault = if d.rng.roll(c.drop_prob) {
            Fault::Drop
        } else if d.rng.roll(c.reset_prob) {
            let after = match c.reset_mode {
                ResetMode::Before => false,
                ResetMode::After => true,
                ResetMode::Either => d.rng.below(2) == 1,
            };
            Fault::Reset { after }
        } else if d.rng.roll(c.status_prob) && !c.status_codes.is_empty() {
            let i = d.rng.below(c.status_codes.len() as u64) as usize;
            Fault::Status(c.status_codes[i])
        } else if d.rng.roll(c.truncate_prob) {
            Fault::Truncate
        } else if d.rng.roll(c.latency_prob) {
            Fault::Latency
        } else {
            return None;
        };
        d.injected += 1;
        Some(fault)
    }

    /// Gives back a fault slot that turned out not to apply.
    fn release(&self) {
        let mut d = self.decider.lock().unwrap_or_else(|e| e.into_inner());
        d.injected = d.injected.saturating_sub(1);
    }

    /// A cut point for a truncated body, in [0, len).
    fn cut_point(&self, len: u64) -> u64 {
        let mut d = self.decider.lock().unwrap_or_else(|e| e.into_inner());
        d.rng.below(len)
    }
}

fn check_loopback(addr: &SocketAddr, what: &str) -> io::Result<()> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{what} address {addr} is not loopback; the fault proxy only works on 127.0.0.1/::1"
            ),
        ))
    }
}

/// A running proxy. Dropping it stops the proxy (open connections are closed).
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    fn prepare(config: FaultConfig) -> io::Result<(std::net::TcpListener, Arc<Shared>)> {
        check_loopback(&config.listen, "listen")?;
        check_loopback(&config.upstream, "upstream")?;
        let listener = std::net::TcpListener::bind(config.listen)?;
        listener.set_nonblocking(true)?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(4))
            .pool_timer(TokioTimer::new())
            .http1_preserve_header_case(true)
            .set_host(false)
            .build(connector);
        let shared = Arc::new(Shared {
            decider: Mutex::new(Decider {
                rng: Rng::new(config.seed),
                injected: 0,
            }),
            config,
            started: Instant::now(),
            enabled: AtomicBool::new(true),
            counters: Counters::default(),
            client,
        });
        Ok((listener, shared))
    }

    /// Starts the proxy on the current tokio runtime.
    pub async fn start(config: FaultConfig) -> io::Result<Self> {
        let (listener, shared) = Self::prepare(config)?;
        let addr = listener.local_addr()?;
        let listener = TcpListener::from_std(listener)?;
        let (shutdown, rx) = watch::channel(false);
        tokio::spawn(serve(listener, Arc::clone(&shared), rx));
        Ok(Self {
            addr,
            shared,
            shutdown,
            thread: None,
        })
    }

    /// Starts the proxy on its own thread with its own runtime, for tests
    /// that are not async. Dropping the handle stops and joins the thread.
    pub fn start_in_thread(config: FaultConfig) -> io::Result<Self> {
        let (listener, shared) = Self::prepare(config)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3-fault-proxy")
            .enable_all()
            .build()?;
        let (shutdown, rx) = watch::channel(false);
        let task_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("s3-fault-proxy".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => serve(listener, task_shared, rx).await,
                        Err(e) => eprintln!("s3-fault-proxy: {e}"),
                    }
                });
                runtime.shutdown_background();
            })?;
        Ok(Self {
            addr,
            shared,
            shutdown,
            thread: Some(thread),
        })
    }

    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, to use as the S3 endpoint.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// Turns fault injection on or off (it starts on). Requests are forwarded
    /// either way.
    pub fn set_faults_enabled(&self, enabled: bool) {
        self.shared.enabled.store(enabled, Ordering::Relaxed);
    }

    /// Stops the proxy (same as dropping it) and returns the final stats.
    pub fn shutdown(self) -> Stats {
        self.stats()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let shared = Arc::clone(&shared);
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move {
                        if let Err(e) = serve_connection(stream, shared, shutdown).await {
                            eprintln!("s3-fault-proxy: connection setup failed: {e}");
                        }
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    // Keep a second handle on the socket so a `reset` fault can set
    // SO_LINGER=0 after hyper owns the stream: the final close then sends RST.
    let std_stream = stream.into_std()?;
    let guard = std_stream.try_clone()?;
    let stream = TcpStream::from_std(std_stream)?;
    let kill = Arc::new(Notify::new());
    let svc_kill = Arc::clone(&kill);
    let service = service_fn(move |req| {
        let shared = Arc::clone(&shared);
        let kill = Arc::clone(&svc_kill);
        async move { handle(shared, kill, req).await }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .preserve_header_case(true)
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = kill.notified() => {
            let _ = socket2::SockRef::from(&guard).set_linger(Some(Duration::ZERO));
        }
        _ = shutdown.changed() => {}
    }
    Ok(())
}

fn full(body: impl Into<Bytes>) -> ProxyBody {
    Full::new(body.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn s3_error(status: u16, resource: &str, request_id: u64) -> Response<ProxyBody> {
    let (code, message) = match status {
        503 => ("SlowDown", "Please reduce your request rate."),
        _ => (
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
    };
    let resource = resource
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>\
         <Resource>{resource}</Resource><RequestId>fault-proxy-{request_id}</RequestId></Error>"
    );
    let mut resp = Response::new(full(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    resp.headers_mut()
        .insert("x-amz-request-id", HeaderValue::from(request_id));
    resp
}

/// Reads and discards a request body.
async fn drain(mut body: Incoming) {
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            break;
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    kill: Arc<Notify>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, io::Error> {
    if req.method() == Method::GET && req.uri().path() == "/__stats" {
        let mut resp = Response::new(full(shared.counters.snapshot().to_json()));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Ok(resp);
    }
    let request_id = shared.counters.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());
    let fault = shared.decide(req.method(), &path_and_query);
    let c = &shared.counters;
    match fault {
        Some(Fault::Drop) => {
            bump(&c.drop, 1);
            drain(req.into_body()).await;
            tokio::time::sleep(shared.config.drop_timeout).await;
            return Err(io::Error::other("request dropped by fault proxy"));
        }
        Some(Fault::Reset { after: false }) => {
            bump(&c.reset_before, 1);
            kill.notify_one();
            return std::future::pending().await;
        }
        Some(Fault::Status(code)) => {
            bump(&c.status, 1);
            let path = req.uri().path().to_owned();
            drain(req.into_body()).await;
            return Ok(s3_error(code, &path, request_id));
        }
        Some(Fault::Latency) => {
            bump(&c.latency, 1);
            tokio::time::sleep(shared.config.latency).await;
        }
        Some(Fault::Reset { after: true } | Fault::Truncate) | None => {}
    }

    let is_head = req.method() == Method::HEAD;
    let upstream_resp = match forward(&shared, req, &path_and_query).await {
        Ok(resp) => resp,
        Err(e) => {
            bump(&c.upstream_errors, 1);
            if matches!(fault, Some(Fault::Truncate)) {
                shared.release();
            }
            if matches!(fault, Some(Fault::Reset { after: true })) {
                bump(&c.reset_after, 1);
                kill.notify_one();
                return std::future::pending().await;
            }
            let mut resp = Response::new(full(format!("s3-fault-proxy: upstream error: {e}\n")));
            *resp.status_mut() = StatusCode::BAD_GATEWAY;
            return Ok(resp);
        }
    };

    if matches!(fault, Some(Fault::Reset { after: true })) {
        bump(&c.reset_after, 1);
        // Let the upstream finish its answer so it is fully applied, then
        // reset the client without a response.
        drain(upstream_resp.into_body()).await;
        kill.notify_one();
        return std::future::pending().await;
    }

    let (parts, body) = upstream_resp.into_parts();
    let mut cut = Cut::None;
    if matches!(fault, Some(Fault::Truncate)) {
        let content_length = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let bodyless = is_head
            || parts.status == StatusCode::NO_CONTENT
            || parts.status == StatusCode::NOT_MODIFIED
            || parts.status.is_informational();
        cut = match content_length {
            _ if bodyless => Cut::None,
            Some(0) => Cut::None,
            Some(len) => Cut::After(shared.cut_point(len)),
            None => Cut::Last,
        };
        if matches!(cut, Cut::None) {
            shared.release();
        }
    }
    let body = ResponseBody {
        inner: body,
        shared: Arc::clone(&shared),
        cut,
        held: None,
        closing: None,
    }
    .boxed();
    Ok(Response::from_parts(parts, body))
}

async fn forward(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    path_and_query: &str,
) -> Result<Response<Incoming>, BoxError> {
    let (mut parts, body) = req.into_parts();
    parts.uri = format!("http://{}{}", shared.config.upstream, path_and_query).parse()?;
    let counted = Arc::clone(shared);
    let body = body
        .map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                bump(&counted.counters.bytes_to_upstream, data.len() as u64);
            }
            frame
        })
        .map_err(io::Error::other)
        .boxed();
    bump(&shared.counters.forwarded, 1);
    Ok(shared
        .client
        .request(Request::from_parts(parts, body))
        .await?)
}

#[derive(Clone, Copy, Debug)]
enum Cut {
    /// Pass the body through.
    None,
    /// Pass this many more bytes, then fail the body.
    After(u64),
    /// Unknown length (chunked): hold each data frame back until the next
    /// one arrives; at the end, pass only half of the last frame, then fail.
    Last,
}

/// Response body: counts bytes and, for a `truncate` fault, cuts the body and
/// then fails it (after a short pause so the partial data is flushed), which
/// makes hyper close the connection without finishing the response.
struct ResponseBody {
    inner: Incoming,
    shared: Arc<Shared>,
    cut: Cut,
    held: Option<Bytes>,
    closing: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl ResponseBody {
    fn start_closing(&mut self) {
        bump(&self.shared.counters.truncate, 1);
        self.cut = Cut::None;
        self.closing = Some(Box::pin(tokio::time::sleep(Duration::from_millis(50))));
    }

    fn emit(&self, data: Bytes) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        bump(&self.shared.counters.bytes_from_upstream, data.len() as u64);
        Poll::Ready(Some(Ok(Frame::data(data))))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        loop {
            if let Some(sleep) = this.closing.as_mut() {
                ready!(sleep.as_mut().poll(cx));
                return Poll::Ready(Some(Err(io::Error::other(
                    "response truncated by fault proxy",
                ))));
            }
            let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => return Poll::Ready(Some(Err(io::Error::other(e)))),
                None => {
                    match (this.cut, this.held.take()) {
                        (Cut::Last, Some(mut last)) => {
                            last.truncate(last.len() / 2);
                            this.start_closing();
                            if !last.is_empty() {
                                return this.emit(last);
                            }
                            continue;
                        }
                        (Cut::None, _) => {}
                        // The body ended before any cut point: nothing was cut.
                        _ => {
                            this.shared.release();
                            this.cut = Cut::None;
                        }
                    }
                    return Poll::Ready(None);
                }
            };
            let mut data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    // Trailers (not used by S3): give up on cutting this body.
                    if !matches!(this.cut, Cut::None) {
                        this.shared.release();
                        this.cut = Cut::None;
                    }
                    if let Some(held) = this.held.take() {
                        // Rare enough that dropping the trailers is acceptable.
                        return this.emit(held);
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
            };
            match this.cut {
                Cut::None => return this.emit(data),
                Cut::After(n) if (data.len() as u64) <= n => {
                    this.cut = Cut::After(n - data.len() as u64);
                    return this.emit(data);
                }
                Cut::After(n) => {
                    data.truncate(n as usize);
                    this.start_closing();
                    if !data.is_empty() {
                        return this.emit(data);
                    }
                }
                Cut::Last => {
                    if data.is_empty() {
                        continue;
                    }
                    if let Some(previous) = this.held.replace(data) {
                        return this.emit(previous);
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.closing.is_none() && self.held.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
