//! Node logic: what NodeStage/Publish/Unpublish/Unstage/GetVolumeStats do,
//! independent of gRPC and of how mounts are made (the [`Mounter`] trait).
//!
//! Rules kept here, whatever the mounter:
//! - every operation is idempotent (staged → OK, published → OK, missing → OK);
//! - a dead mount (FUSE server gone) is cleaned up and made again on stage, and
//!   reported abnormal by stats;
//! - a target is never published unless the staged mount is live: a pod must
//!   never get the node's plain directory.

pub mod error;
pub mod fake;
pub mod mounter;
pub mod mountinfo;
pub mod pod;
pub mod process;
pub mod system;

use std::path::Path;
use std::sync::Arc;

pub use error::NodeError;
pub use mounter::{MountSpec, MountState, MountTable, Mounter, Usage};
use tracing::{info, warn};

/// Health of a volume as NodeGetVolumeStats reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeHealth {
    /// Usage, when the mount answers.
    pub usage: Option<Usage>,
    /// `None` when healthy, else what is wrong.
    pub abnormal: Option<String>,
}

/// The node operations, over a mounter and a mount table.
#[derive(Clone)]
pub struct NodeOps {
    mounter: Arc<dyn Mounter>,
    table: Arc<dyn MountTable>,
}

fn mkdir(path: &Path) -> Result<(), NodeError> {
    std::fs::create_dir_all(path)
        .map_err(|e| NodeError::io(format!("creating {}", path.display()), e))
}

fn rmdir(path: &Path) {
    match std::fs::remove_dir(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => warn!(path = %path.display(), error = %e, "could not remove directory"),
    }
}

impl NodeOps {
    /// Node operations running FUSE servers with `mounter`, mounting through `table`.
    pub fn new(mounter: Arc<dyn Mounter>, table: Arc<dyn MountTable>) -> Self {
        NodeOps { mounter, table }
    }

    /// NodeStageVolume: serves the volume at `spec.staging_path`.
    pub async fn stage(&self, spec: &MountSpec) -> Result<(), NodeError> {
        let staging = &spec.staging_path;
        match self.table.state(staging) {
            MountState::Live => {
                info!(volume = %spec.volume_id, staging = %staging.display(), "already staged");
                return Ok(());
            }
            MountState::Dead(why) => {
                warn!(volume = %spec.volume_id, %why, "staged mount is dead; mounting again");
                self.mounter.stop(staging).await?;
            }
            MountState::NotMounted => {}
        }
        mkdir(staging)?;
        self.mounter.start(spec).await?;
        info!(volume = %spec.volume_id, staging = %staging.display(), "staged");
        Ok(())
    }

    /// NodeUnstageVolume: ends the staged mount and removes the directory.
    pub async fn unstage(&self, staging: &Path) -> Result<(), NodeError> {
        if self.table.state(staging) != MountState::NotMounted {
            self.mounter.stop(staging).await?;
        }
        rmdir(staging);
        info!(staging = %staging.display(), "unstaged");
        Ok(())
    }

    /// NodePublishVolume: binds the live staged mount onto `target`.
    pub async fn publish(
        &self,
        staging: &Path,
        target: &Path,
        read_only: bool,
    ) -> Result<(), NodeError> {
        match self.table.state(staging) {
            MountState::Live => {}
            MountState::NotMounted => {
                return Err(NodeError::FailedPrecondition(format!(
                    "the volume is not staged at {}",
                    staging.display()
                )));
            }
            MountState::Dead(why) => {
                return Err(NodeError::FailedPrecondition(format!(
                    "the staged mount at {} is dead ({why}); unstage and stage it again",
                    staging.display()
                )));
            }
        }
        match self.table.state(target) {
            MountState::Live => return Ok(()),
            MountState::Dead(_) => self.table.unmount(target)?,
            MountState::NotMounted => {}
        }
        mkdir(target)?;
        self.table.bind(staging, target, read_only)
    }

    /// NodeUnpublishVolume: unmounts `target` and removes it.
    pub async fn unpublish(&self, target: &Path) -> Result<(), NodeError> {
        if self.table.state(target) != MountState::NotMounted {
            self.table.unmount(target)?;
        }
        rmdir(target);
        Ok(())
    }

    /// NodeGetVolumeStats: usage and condition of the mount at `path`.
    pub fn health(&self, path: &Path) -> Result<VolumeHealth, NodeError> {
        match self.table.state(path) {
            MountState::Dead(why) => Ok(VolumeHealth {
                usage: None,
                abnormal: Some(why),
            }),
            MountState::NotMounted if !path.exists() => Err(NodeError::NotFound(format!(
                "{} does not exist",
                path.display()
            ))),
            MountState::NotMounted => Ok(VolumeHealth {
                usage: None,
                abnormal: Some(format!("{} is not mounted", path.display())),
            }),
            MountState::Live => Ok(match self.table.usage(path) {
                Ok(u) => VolumeHealth {
                    usage: Some(u),
                    abnormal: None,
                },
                Err(e) => VolumeHealth {
                    usage: None,
                    abnormal: Some(format!(
                        "the mount does not answer (is the store reachable?): {e}"
                    )),
                },
            }),
        }
    }
}

#[cfg(test)]
mod tests;
