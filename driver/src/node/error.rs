//! Errors of the node layer (stage/publish logic and the mounters). The CSI
//! layer maps them to gRPC statuses in `csi::status`.

use thiserror::Error;

/// Why a node operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A request field is invalid; `field` names it.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The request field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The volume or path does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The operation cannot proceed in the current state (e.g. publish of an unstaged volume).
    #[error("{0}")]
    FailedPrecondition(String),
    /// Mounting, unmounting or starting the FUSE server failed.
    #[error("{0}")]
    Mount(String),
    /// The Kubernetes API refused or failed (pod mounter).
    #[error("kubernetes API: {0}")]
    Kube(String),
    /// A filesystem call failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl NodeError {
    /// An invalid-argument error naming `field`.
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        NodeError::InvalidArgument {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    /// Wraps an I/O error with what we were doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        NodeError::Io {
            context: context.into(),
            source,
        }
    }
}
