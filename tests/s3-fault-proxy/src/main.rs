//! `s3-fault-proxy`: command-line front end of the fault-injecting S3 proxy.
//!
//! Prints `listening on 127.0.0.1:PORT` once ready, and the stats on exit
//! (SIGINT, SIGTERM or `--exit-after-secs`). The stats are also served as JSON
//! on `GET /__stats`.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use http::Method;
use regex::Regex;
use s3_fault_proxy::{FaultConfig, FaultProxy, ResetMode};

/// Loopback-only HTTP/1.1 proxy that forwards to an S3 server and injects faults.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Upstream S3 server on loopback: `127.0.0.1:3900` or `http://127.0.0.1:3900`.
    #[arg(long)]
    upstream: String,
    /// Address to listen on (loopback only; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// RNG seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Probability of an S3 error answer (500 InternalError / 503 SlowDown).
    #[arg(long, default_value_t = 0.0)]
    status_prob: f64,
    /// Status codes for status faults, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "503,500")]
    status_codes: Vec<u16>,
    /// Probability of added latency.
    #[arg(long, default_value_t = 0.0)]
    latency_prob: f64,
    /// Latency added, in milliseconds.
    #[arg(long, default_value_t = 500)]
    latency_ms: u64,
    /// Probability of a connection reset.
    #[arg(long, default_value_t = 0.0)]
    reset_prob: f64,
    /// When resets happen: before, after (forwarding) or either.
    #[arg(long, default_value = "either")]
    reset_mode: ResetMode,
    /// Probability of a truncated response body.
    #[arg(long, default_value_t = 0.0)]
    truncate_prob: f64,
    /// Probability of a dropped request (never answered).
    #[arg(long, default_value_t = 0.0)]
    drop_prob: f64,
    /// How long a dropped request is held before its connection is closed, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    drop_timeout_ms: u64,
    /// Maximum number of faults.
    #[arg(long)]
    max_faults: Option<u64>,
    /// Only inject faults during the first N seconds.
    #[arg(long)]
    fault_window_secs: Option<f64>,
    /// Only inject faults on these methods (repeatable or comma-separated).
    #[arg(long = "method", value_delimiter = ',')]
    methods: Vec<Method>,
    /// Only inject faults on requests whose path?query matches this regex.
    #[arg(long)]
    path_regex: Option<Regex>,
    /// Exit after N seconds (default: run until SIGINT/SIGTERM).
    #[arg(long)]
    exit_after_secs: Option<f64>,
}

fn parse_upstream(s: &str) -> Result<SocketAddr, String> {
    let trimmed = s.strip_prefix("http://").unwrap_or(s).trim_end_matches('/');
    let trimmed = trimmed.replace("localhost:", "127.0.0.1:");
    trimmed
        .parse()
        .map_err(|e| format!("--upstream {s:?}: expected 127.0.0.1:PORT ({e})"))
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let upstream = match parse_upstream(&args.upstream) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("s3-fault-proxy: {e}");
            std::process::exit(2);
        }
    };
    let mut config = FaultConfig::new(upstream);
    config.listen = args.listen;
    config.seed = args.seed;
    config.status_prob = args.status_prob;
    config.status_codes = args.status_codes;
    config.latency_prob = args.latency_prob;
    config.latency = Duration::from_millis(args.latency_ms);
    config.reset_prob = args.reset_prob;
    config.reset_mode = args.reset_mode;
    config.truncate_prob = args.truncate_prob;
    config.drop_prob = args.drop_prob;
    config.drop_timeout = Duration::from_millis(args.drop_timeout_ms);
    config.max_faults = args.max_faults;
    config.fault_window = args.fault_window_secs.map(Duration::from_secs_f64);
    config.methods = args.methods;
    config.path_regex = args.path_regex;

    let proxy = match FaultProxy::start(config).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("s3-fault-proxy: {e}");
            std::process::exit(1);
        }
    };
    println!("listening on {}", proxy.addr());
    let _ = std::io::stdout().flush();

    let mut sigterm = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("s3-fault-proxy: cannot install SIGTERM handler: {e}");
            std::process::exit(1);
        }
    };
    let exit_after = async {
        match args.exit_after_secs {
            Some(secs) => tokio::time::sleep(Duration::from_secs_f64(secs)).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = sigterm.recv() => {}
        _ = exit_after => {}
    }
    let stats = proxy.shutdown();
    println!("stats {stats}");
    println!("stats-json {}", stats.to_json());
}
