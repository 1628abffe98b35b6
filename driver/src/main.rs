//! The `dcs-csi` binary: the CSI server (default), the standalone `mount`
//! command that serves one bucket over FUSE, and the local `demo`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = dcs_csi::cmd::Cli::parse();
    dcs_csi::cmd::run(cli)
}
