//! dcs-csi: a Kubernetes CSI driver that gives every PersistentVolumeClaim its own
//! bucket (or prefix) on an S3-compatible, often decentralized, object store, and
//! serves it to pods through a FUSE filesystem.
//!
//! Layers, each depending only on the ones below it:
//! `csi` (gRPC services) → `volume` / `node` (provisioning and mount logic) →
//! `fs` (filesystem core; `fs::fuse` is the thin fuser adapter) → `store`
//! (object-store trait; `store::s3` implements it on aws-sdk-s3).

pub mod cmd;
pub mod config;
pub mod csi;
pub mod fs;
pub mod node;
pub mod store;
pub mod volume;
