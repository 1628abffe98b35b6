//! `dcs-csi mount`: serve one bucket (or prefix) over FUSE at a directory.
//! (Filled in by the filesystem work.)

use clap::Args;

use super::CmdError;

/// Arguments of `dcs-csi mount`.
#[derive(Debug, Args)]
pub struct MountArgs {
    /// Bucket to mount.
    #[arg(long)]
    pub bucket: String,
}

/// Mounts and serves until unmounted.
pub fn run(_args: MountArgs) -> Result<(), CmdError> {
    Err("mount is not implemented yet".into())
}
