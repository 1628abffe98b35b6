//! The CSI gRPC layer: the Identity, Controller and Node services, the server
//! that hosts them on a unix socket (or TCP for tests), and the one mapping of
//! lower-layer errors to gRPC statuses (`status`).

pub mod capability;
pub mod controller;
pub mod endpoint;
pub mod identity;
pub mod locks;
pub mod node;
pub mod redact;
pub mod server;
pub mod status;
pub mod stores;

/// Checks a driver name against the CSI rules: at most 63 characters,
/// domain-name notation (alphanumerics, `-`, `.`, starting and ending alphanumeric).
pub fn validate_driver_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.');
    let ends_ok = name
        .bytes()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > 63 || !ok_chars || !ends_ok {
        return Err(format!(
            "driver name {name:?} must be 1-63 characters of letters, digits, '-' and '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}
