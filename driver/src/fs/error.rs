//! The filesystem layer's one error type, [`FsError`]: an errno plus a message
//! and, when a store call failed, its [`StoreError`]. The mapping from store
//! errors to errno lives here and nowhere else; the fuser adapter only reads
//! [`FsError::errno`].

use std::fmt;

use crate::store::StoreError;

/// Result type of every filesystem-core call.
pub type FsResult<T> = Result<T, FsError>;

/// Why a filesystem operation failed, as an errno the kernel understands.
#[derive(Debug, Clone)]
pub struct FsError {
    errno: i32,
    message: String,
    source: Option<StoreError>,
}

impl FsError {
    /// An error with `errno` (a `libc::E*` constant) and a message.
    pub fn new(errno: i32, message: impl Into<String>) -> Self {
        FsError {
            errno,
            message: message.into(),
            source: None,
        }
    }

    /// The errno to return to the caller.
    pub fn errno(&self) -> i32 {
        self.errno
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// `ENOENT`.
    pub fn not_found(what: impl fmt::Display) -> Self {
        Self::new(libc::ENOENT, format!("{what}: no such file or directory"))
    }

    /// `EIO` with a message (local I/O or an unexpected store answer).
    pub fn io(message: impl Into<String>) -> Self {
        Self::new(libc::EIO, message)
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (errno {})", self.message, self.errno)?;
        if let Some(s) = &self.source {
            write!(f, ": {s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// The one mapping from store errors to errno.
impl From<StoreError> for FsError {
    fn from(e: StoreError) -> Self {
        let errno = match &e {
            StoreError::NoSuchKey(_) => libc::ENOENT,
            StoreError::AccessDenied(_) => libc::EACCES,
            StoreError::Unsupported(_) => libc::ENOTSUP,
            _ => libc::EIO,
        };
        FsError {
            errno,
            message: "object store call failed".into(),
            source: Some(e),
        }
    }
}

impl From<std::io::Error> for FsError {
    fn from(e: std::io::Error) -> Self {
        FsError::new(
            e.raw_os_error().unwrap_or(libc::EIO),
            format!("local staging file: {e}"),
        )
    }
}
