//! Logging setup: text or JSON lines on stderr through `tracing`, level from
//! `--log-level` or `RUST_LOG`.

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

/// Output format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

/// Logging flags.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "DCS_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    /// Log filter (`info`, `debug`, `dcs_csi=debug,info`...); `RUST_LOG` wins when set.
    #[arg(long, global = true, default_value = "info", env = "DCS_LOG_LEVEL")]
    pub log_level: String,
}

/// Installs the global subscriber. Safe to call more than once (later calls are no-ops).
pub fn init(args: &LogArgs) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(args.log_level.clone()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
