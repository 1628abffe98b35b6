//! Command-line interface: argument types (clap) and the entry point of each
//! command. Parsing happens here; the work is done by the layers below.

pub mod demo;
pub mod logging;
pub mod mount;
pub mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// dcs-csi: S3 / decentralized-storage CSI driver.
#[derive(Debug, Parser)]
#[command(version, about, subcommand_negates_reqs = true)]
pub struct Cli {
    /// Logging options, shared by every command.
    #[command(flatten)]
    pub log: logging::LogArgs,
    /// CSI server flags (used when no command is given).
    #[command(flatten)]
    pub serve: serve::ServeArgs,
    /// What to run; without a command, the CSI server runs.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands of the binary.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mount a bucket (or a prefix of it) at a directory and serve it until unmounted.
    Mount(mount::MountArgs),
    /// Run everything locally on an embedded S3 store and mount a demo volume.
    Demo(demo::DemoArgs),
}

/// Runs the parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    logging::init(&cli.log);
    let result = match cli.command {
        Some(Command::Mount(args)) => mount::run(args),
        Some(Command::Demo(args)) => demo::run(args),
        None => serve::run(cli.serve, cli.log.log_format.as_str()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "exiting");
            eprintln!("dcs-csi: {e}");
            ExitCode::FAILURE
        }
    }
}

/// An error a command reports to the user before exiting.
pub type CmdError = Box<dyn std::error::Error + Send + Sync>;
