//! The one place where errors of the layers below become gRPC statuses.
//! Messages are for humans and never carry credentials or stack traces.

use tonic::{Code, Status};

use crate::config::params::ParamError;
use crate::config::secrets::SecretsError;
use crate::node::NodeError;
use crate::store::StoreError;
use crate::volume::VolumeError;

/// `INVALID_ARGUMENT` naming the request field.
pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {reason}"))
}

/// `INVALID_ARGUMENT` for a missing required field.
pub fn missing(field: &str) -> Status {
    Status::invalid_argument(format!("{field}: required field is missing"))
}

/// Maps a store error.
pub fn from_store(e: &StoreError) -> Status {
    let code = match e {
        StoreError::NoSuchBucket(_) | StoreError::NoSuchKey(_) => Code::NotFound,
        StoreError::BucketNotEmpty(_) => Code::FailedPrecondition,
        StoreError::BucketNameTaken(_) => Code::AlreadyExists,
        StoreError::TooManyBuckets(_) => Code::ResourceExhausted,
        StoreError::InvalidBucketName(_) => Code::InvalidArgument,
        StoreError::AccessDenied(_) => Code::PermissionDenied,
        StoreError::Unsupported(_) => Code::FailedPrecondition,
        StoreError::Unavailable(_) => Code::Unavailable,
        _ => Code::Internal,
    };
    let msg = match e {
        StoreError::AccessDenied(_) => format!(
            "{e}; check accessKeyID/secretAccessKey/endpoint/region in the Secret named by the StorageClass"
        ),
        _ => e.to_string(),
    };
    Status::new(code, msg)
}

/// Maps a volume-layer error.
pub fn from_volume(e: &VolumeError) -> Status {
    match e {
        VolumeError::InvalidArgument { field, reason } => invalid(field, reason),
        VolumeError::AlreadyExists(m) => Status::already_exists(m.clone()),
        VolumeError::FailedPrecondition(m) => Status::failed_precondition(m.clone()),
        VolumeError::ResourceExhausted(m) => Status::resource_exhausted(m.clone()),
        VolumeError::Store(s) => from_store(s),
    }
}

/// Maps a node-layer error.
pub fn from_node(e: &NodeError) -> Status {
    match e {
        NodeError::InvalidArgument { field, reason } => invalid(field, reason),
        NodeError::NotFound(m) => Status::not_found(m.clone()),
        NodeError::FailedPrecondition(m) => Status::failed_precondition(m.clone()),
        NodeError::Mount(_) | NodeError::Kube(_) | NodeError::Io { .. } => {
            Status::internal(e.to_string())
        }
    }
}

/// Maps a StorageClass parameter error (`parameters.<key>`).
pub fn from_param(e: &ParamError) -> Status {
    invalid(&format!("parameters.{}", e.key), &e.reason)
}

/// Maps a secrets error (`secrets`), naming the key, never the value.
pub fn from_secrets(e: &SecretsError) -> Status {
    invalid("secrets", e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(
            from_store(&StoreError::AccessDenied("x".into())).code(),
            Code::PermissionDenied
        );
        assert_eq!(
            from_store(&StoreError::Unavailable("x".into())).code(),
            Code::Unavailable
        );
        let s = from_volume(&VolumeError::invalid("name", "empty"));
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().starts_with("name:"));
        let s = from_param(&ParamError::new("uid", "bad"));
        assert_eq!(s.message(), "parameters.uid: bad");
    }
}
