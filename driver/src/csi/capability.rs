//! Which volume capabilities we serve: filesystem (mount) access in every
//! access mode; no raw block devices. Checked before any work is done.

use dcs_csi_proto::v1::VolumeCapability;
use dcs_csi_proto::v1::volume_capability::AccessType;
use dcs_csi_proto::v1::volume_capability::access_mode::Mode;

/// Why a capability is not supported (a message for `INVALID_ARGUMENT`).
pub fn check(cap: &VolumeCapability) -> Result<(), String> {
    match &cap.access_type {
        Some(AccessType::Mount(_)) => {}
        Some(AccessType::Block(_)) => {
            return Err("block access is not supported; use a filesystem (mount) volume".into());
        }
        None => return Err("access_type is missing".into()),
    }
    let mode = cap
        .access_mode
        .as_ref()
        .ok_or("access_mode is missing")?
        .mode;
    match Mode::try_from(mode) {
        Ok(Mode::Unknown) | Err(_) => Err(format!("access mode {mode} is not supported")),
        Ok(_) => Ok(()),
    }
}

/// Checks a non-empty list of capabilities; the error names the field.
pub fn check_all(caps: &[VolumeCapability]) -> Result<(), (String, String)> {
    if caps.is_empty() {
        return Err((
            "volume_capabilities".into(),
            "required field is missing".into(),
        ));
    }
    for (i, c) in caps.iter().enumerate() {
        check(c).map_err(|r| (format!("volume_capabilities[{i}]"), r))?;
    }
    Ok(())
}

/// Whether the access mode only allows reading.
pub fn is_read_only_mode(cap: &VolumeCapability) -> bool {
    matches!(
        cap.access_mode.as_ref().map(|m| Mode::try_from(m.mode)),
        Some(Ok(Mode::SingleNodeReaderOnly)) | Some(Ok(Mode::MultiNodeReaderOnly))
    )
}
