//! Configuration parsed once at the boundary into types: store secrets,
//! StorageClass parameters, filesystem options, volume ids. Handlers never look
//! keys up by string literal; the key names live here as constants.

pub mod fsopts;
pub mod naming;
pub mod params;
pub mod secrets;
pub mod volume_id;
