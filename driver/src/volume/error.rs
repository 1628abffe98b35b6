//! Errors of the volume layer (provisioning and deletion). The CSI layer maps
//! them to gRPC status codes in one place (`csi::status`).

use thiserror::Error;

use crate::store::StoreError;

/// Why a volume operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VolumeError {
    /// A request field or parameter is invalid; `field` names it.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The request field or parameter key.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A volume with this name exists with incompatible settings, or the
    /// bucket/prefix holds data that is not a dcs-csi volume.
    #[error("{0}")]
    AlreadyExists(String),
    /// Something the volume depends on is missing (e.g. the shared bucket).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The store refuses to create more buckets.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl VolumeError {
    /// An invalid-argument error naming `field`.
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        VolumeError::InvalidArgument {
            field: field.into(),
            reason: reason.to_string(),
        }
    }
}
