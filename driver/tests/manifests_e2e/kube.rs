//! What Kubernetes itself does with the manifests, reimplemented small and
//! strict: reading multi-document YAML into k8s-openapi types, Secret data,
//! resource quantities, access modes, secret-name templates, and the kubelet's
//! `$(VAR)` expansion of env values and commands.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use dcs_csi_proto::v1::volume_capability::access_mode::Mode;
use k8s_openapi::api::core::v1::{Container, PodSpec, Secret};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Every non-empty document of a YAML file (or text), untyped.
pub fn documents(text: &str, origin: &str) -> Vec<serde_yaml::Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| {
            serde_yaml::Value::deserialize(d)
                .unwrap_or_else(|e| panic!("{origin}: invalid YAML: {e}"))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// The documents of `path` (relative to the repository root).
pub fn file_documents(root: &Path, path: &str) -> Vec<(String, serde_yaml::Value)> {
    let text = std::fs::read_to_string(root.join(path))
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    documents(&text, path)
        .into_iter()
        .map(|d| (path.to_string(), d))
        .collect()
}

/// The documents of `kind`, as `T` (a document that does not fit `T` fails the test).
pub fn of_kind<T: DeserializeOwned>(docs: &[(String, serde_yaml::Value)], kind: &str) -> Vec<T> {
    docs.iter()
        .filter(|(_, d)| d.get("kind").and_then(|k| k.as_str()) == Some(kind))
        .map(|(origin, d)| {
            serde_yaml::from_value(d.clone()).unwrap_or_else(|e| {
                panic!("{origin}: {kind} does not match the Kubernetes schema: {e}")
            })
        })
        .collect()
}

/// Exactly one document of `kind`.
pub fn one_of_kind<T: DeserializeOwned>(docs: &[(String, serde_yaml::Value)], kind: &str) -> T {
    let mut all = of_kind::<T>(docs, kind);
    assert_eq!(all.len(), 1, "expected exactly one {kind}");
    all.pop().unwrap()
}

/// A Secret's data as the API server stores it: `data` (base64-decoded), then
/// `stringData` on top (it wins on a key present in both).
pub fn secret_data(s: &Secret) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.clone(),
                String::from_utf8(v.0.clone()).expect("UTF-8 secret"),
            )
        })
        .collect();
    m.extend(s.string_data.clone().unwrap_or_default());
    m
}

/// The Secret `namespace/name` among `secrets`; fails the test if absent.
pub fn find_secret<'a>(
    secrets: &'a [Secret],
    namespace: &str,
    name: &str,
    who: &str,
) -> &'a Secret {
    secrets
        .iter()
        .find(|s| {
            s.metadata.name.as_deref() == Some(name)
                && s.metadata.namespace.as_deref().unwrap_or("default") == namespace
        })
        .unwrap_or_else(|| {
            panic!("{who} names Secret {namespace}/{name}, which no example document defines")
        })
}

/// A resource quantity in bytes, rounded up as `Quantity.Value()` does
/// ("10Gi", "500M", "1.5Gi", "1000").
pub fn quantity_bytes(q: &str) -> i64 {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let mult: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        _ => panic!("quantity {q:?}: unsupported suffix {suffix:?}"),
    };
    let n: f64 = num
        .parse()
        .unwrap_or_else(|_| panic!("quantity {q:?}: not a number"));
    (n * mult).ceil() as i64
}

/// A PVC/PV access mode as csi-provisioner and kubelet translate it (drivers
/// without the SINGLE_NODE_MULTI_WRITER capability, like ours).
pub fn csi_access_mode(m: &str) -> Mode {
    match m {
        "ReadWriteOnce" => Mode::SingleNodeWriter,
        "ReadOnlyMany" => Mode::MultiNodeReaderOnly,
        "ReadWriteMany" => Mode::MultiNodeMultiWriter,
        "ReadWriteOncePod" => Mode::SingleNodeSingleWriter,
        _ => panic!("unknown access mode {m:?}"),
    }
}

/// csi-provisioner's templates in secret names/namespaces.
pub fn resolve_secret_template(s: &str, pv: &str, pvc: &str, pvc_ns: &str) -> String {
    let r = s
        .replace("${pv.name}", pv)
        .replace("${pvc.name}", pvc)
        .replace("${pvc.namespace}", pvc_ns);
    assert!(!r.contains("${"), "unsupported secret template in {s:?}");
    r
}

/// Kubernetes' `$(VAR)` expansion (third_party/forked/golang/expansion): `$$`
/// is a literal `$`, `$(NAME)` of a defined NAME is replaced, anything else
/// (`$(cmd args)` of a shell script, an undefined name) is left as written.
pub fn expand(input: &str, vars: &HashMap<String, String>) -> String {
    let b = input.as_bytes();
    let mut out = String::new();
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < b.len() {
        if b[cursor] == b'$' && cursor + 1 < b.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let advance = match rest.as_bytes()[0] {
                b'$' => {
                    out.push('$');
                    1
                }
                b'(' => match rest.find(')') {
                    Some(close) => {
                        let name = &rest[1..close];
                        match vars.get(name) {
                            Some(v) => out.push_str(v),
                            None => out.push_str(&format!("$({name})")),
                        }
                        close + 1
                    }
                    None => {
                        out.push_str("$(");
                        1
                    }
                },
                _ => {
                    let c = rest.chars().next().unwrap();
                    out.push('$');
                    out.push(c);
                    c.len_utf8()
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    out.push_str(&input[checkpoint.min(input.len())..]);
    out
}

/// A container's environment as kubelet builds it: in order, each value
/// expanded against the ones before, `secretKeyRef` read from `secrets`
/// (in the pod's namespace).
pub fn container_env(c: &Container, namespace: &str, secrets: &[Secret]) -> Vec<(String, String)> {
    let mut vars: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    assert!(c.env_from.is_none(), "envFrom is not played by this test");
    for e in c.env.iter().flatten() {
        let v = match (&e.value, &e.value_from) {
            (Some(v), None) => expand(v, &vars),
            (None, Some(src)) => {
                let r = src
                    .secret_key_ref
                    .as_ref()
                    .unwrap_or_else(|| panic!("env {}: only secretKeyRef is played", e.name));
                let s = find_secret(secrets, namespace, &r.name, &format!("env {}", e.name));
                secret_data(s)
                    .get(&r.key)
                    .unwrap_or_else(|| {
                        panic!("env {}: Secret {} has no key {}", e.name, r.name, r.key)
                    })
                    .clone()
            }
            (None, None) => String::new(),
            (Some(_), Some(_)) => panic!("env {}: both value and valueFrom", e.name),
        };
        vars.insert(e.name.clone(), v.clone());
        out.push((e.name.clone(), v));
    }
    out
}

/// The container's argv: command + args, `$(VAR)`-expanded against its env.
pub fn container_argv(c: &Container, env: &[(String, String)]) -> Vec<String> {
    let vars: HashMap<String, String> = env.iter().cloned().collect();
    c.command
        .iter()
        .flatten()
        .chain(c.args.iter().flatten())
        .map(|a| expand(a, &vars))
        .collect()
}

/// uid, gid and supplementary groups of a container, as the runtime sets them:
/// the container's securityContext over the pod's; fsGroup and
/// supplementalGroups become supplementary groups.
pub fn identity(pod: &PodSpec, c: &Container) -> (Option<u32>, Option<u32>, Vec<u32>) {
    let psc = pod.security_context.clone().unwrap_or_default();
    let csc = c.security_context.clone().unwrap_or_default();
    let uid = csc.run_as_user.or(psc.run_as_user).map(|v| v as u32);
    let gid = csc.run_as_group.or(psc.run_as_group).map(|v| v as u32);
    let mut groups: Vec<u32> = psc.fs_group.into_iter().map(|g| g as u32).collect();
    groups.extend(psc.supplemental_groups.iter().flatten().map(|g| *g as u32));
    groups.extend(gid);
    groups.sort();
    groups.dedup();
    (uid, gid, groups)
}

#[test]
fn expansion_follows_kubernetes() {
    let vars: HashMap<String, String> = [("A".to_string(), "x".to_string())].into();
    assert_eq!(
        expand("$(A)/$(B) $$(A) $$ $x $(", &vars),
        "x/$(B) $(A) $ $x $("
    );
    assert_eq!(
        expand("tail -n +$(expr \"$KEEP\" + 1) $(wc -c < \"$f\")", &vars),
        "tail -n +$(expr \"$KEEP\" + 1) $(wc -c < \"$f\")"
    );
    assert_eq!(quantity_bytes("10Gi"), 10 << 30);
    assert_eq!(quantity_bytes("1.5Ki"), 1536);
    assert_eq!(quantity_bytes("2G"), 2_000_000_000);
}
