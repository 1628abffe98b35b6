//! Configuration parsed once at the boundary into types: store secrets,
//! StorageClass parameters, volume ids and volume context. Handlers never look
//! keys up by string literal; the key names live here as constants.

pub mod secrets;
