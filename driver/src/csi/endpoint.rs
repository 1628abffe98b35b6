//! The `--endpoint` address: `unix:///path/to/csi.sock` (what kubelet and the
//! sidecars use) or `tcp://127.0.0.1:PORT` (tests, debugging).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// Where the gRPC server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket at this path.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

impl FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(rest) = s.strip_prefix("unix://") {
            // unix:///abs/path → "/abs/path"; unix://rel → "rel"
            if rest.is_empty() {
                return Err("unix:// endpoint needs a path".into());
            }
            Ok(Endpoint::Unix(PathBuf::from(rest)))
        } else if let Some(rest) = s.strip_prefix("unix:") {
            Ok(Endpoint::Unix(PathBuf::from(rest)))
        } else if let Some(rest) = s.strip_prefix("tcp://") {
            rest.parse()
                .map(Endpoint::Tcp)
                .map_err(|e| format!("bad tcp endpoint {rest:?}: {e}"))
        } else {
            Err(format!(
                "endpoint {s:?} must look like unix:///csi/csi.sock or tcp://127.0.0.1:10000"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_kinds() {
        assert_eq!(
            "unix:///csi/csi.sock".parse::<Endpoint>().unwrap(),
            Endpoint::Unix("/csi/csi.sock".into())
        );
        assert_eq!(
            "tcp://127.0.0.1:10000".parse::<Endpoint>().unwrap(),
            Endpoint::Tcp("127.0.0.1:10000".parse().unwrap())
        );
        assert!("http://x".parse::<Endpoint>().is_err());
        assert!("unix://".parse::<Endpoint>().is_err());
    }
}
