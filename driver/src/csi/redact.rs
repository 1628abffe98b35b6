//! Request logging without secrets: requests are logged only as copies whose
//! `secrets` map values are replaced (keys stay, so operators see which keys
//! were sent).

use dcs_csi_proto::v1;

/// A copy of a request that is safe to log.
pub trait Redact {
    /// Returns a copy with every secret value replaced by `***`.
    fn redacted(&self) -> Self;
}

fn mask(m: &mut std::collections::HashMap<String, String>) {
    for v in m.values_mut() {
        *v = "***".to_string();
    }
}

macro_rules! redact_secrets {
    ($($t:ty),* $(,)?) => {$(
        impl Redact for $t {
            fn redacted(&self) -> Self {
                let mut c = self.clone();
                mask(&mut c.secrets);
                c
            }
        }
    )*};
}

redact_secrets!(
    v1::CreateVolumeRequest,
    v1::DeleteVolumeRequest,
    v1::ValidateVolumeCapabilitiesRequest,
    v1::NodeStageVolumeRequest,
    v1::NodePublishVolumeRequest,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_reach_the_debug_output() {
        let mut r = v1::CreateVolumeRequest {
            name: "pvc-1".into(),
            ..Default::default()
        };
        r.secrets.insert("secretAccessKey".into(), "hunter2".into());
        let s = format!("{:?}", r.redacted());
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("secretAccessKey"));
    }
}
