//! Turning SDK errors into [`StoreError`]s: the one place that reads S3
//! error codes and HTTP statuses.

use std::fmt;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::store::StoreError;

/// Maps an SDK error to a [`StoreError`]; `what` names the bucket or key involved.
pub(super) fn map_err<E, R>(err: SdkError<E, R>, what: &str) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug + HttpStatus + Send + Sync + 'static,
{
    let status = match &err {
        SdkError::ServiceError(ctx) => Some(ctx.raw().http_status()),
        SdkError::ResponseError(ctx) => Some(ctx.raw().http_status()),
        SdkError::TimeoutError(_) => return StoreError::Unavailable("request timed out".into()),
        SdkError::DispatchFailure(e) => {
            return StoreError::Unavailable(format!("cannot reach the store: {e:?}"));
        }
        _ => None,
    };
    let code = err.code().unwrap_or_default().to_string();
    let message = err.message().unwrap_or_default().to_string();
    let detail = if message.is_empty() {
        format!("{code} (HTTP {})", status.unwrap_or(0))
    } else {
        format!("{code}: {message}")
    };
    match (code.as_str(), status) {
        ("NoSuchBucket", _) => StoreError::NoSuchBucket(what.to_string()),
        ("NoSuchKey", _) | ("NotFound", _) | ("", Some(404)) => {
            StoreError::NoSuchKey(what.to_string())
        }
        ("BucketNotEmpty", _) => StoreError::BucketNotEmpty(what.to_string()),
        ("BucketAlreadyExists", _) => StoreError::BucketNameTaken(what.to_string()),
        ("TooManyBuckets", _) => StoreError::TooManyBuckets(detail),
        ("InvalidBucketName", _) => StoreError::InvalidBucketName(what.to_string()),
        ("AccessDenied", _)
        | ("InvalidAccessKeyId", _)
        | ("SignatureDoesNotMatch", _)
        | ("InvalidToken", _)
        | ("ExpiredToken", _)
        | (_, Some(401))
        | (_, Some(403)) => StoreError::AccessDenied(detail),
        ("NotImplemented", _) | (_, Some(501)) => StoreError::Unsupported(detail),
        ("SlowDown", _)
        | ("ServiceUnavailable", _)
        | ("InternalError", _)
        | ("RequestTimeout", _) => StoreError::Unavailable(detail),
        (_, Some(s)) if s >= 500 => StoreError::Unavailable(detail),
        _ => StoreError::Other(format!(
            "{detail}: {}",
            aws_smithy_types::error::display::DisplayErrorContext(&err)
        )),
    }
}

/// The ETag inside an XML answer body, quotes stripped.
pub(super) fn etag_in_body(body: Option<&[u8]>) -> Option<String> {
    let text = std::str::from_utf8(body?).ok()?;
    let start = text.find("<ETag>")? + "<ETag>".len();
    let end = start + text[start..].find("</ETag>")?;
    let etag = text[start..end].replace("&quot;", "").replace('"', "");
    (!etag.is_empty()).then_some(etag)
}

/// The HTTP status of a raw response, whatever its type.
pub(super) trait HttpStatus {
    /// The status code.
    fn http_status(&self) -> u16;
}

impl HttpStatus for aws_sdk_s3::config::http::HttpResponse {
    fn http_status(&self) -> u16 {
        self.status().as_u16()
    }
}
