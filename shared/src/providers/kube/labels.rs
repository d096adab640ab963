//! Our ownership labels as Kubernetes labels, reversibly.
//!
//! A Kubernetes label value is at most 63 characters, empty or beginning and ending with an
//! alphanumeric character, with `-`, `_`, `.` and alphanumerics between (Kubernetes documentation,
//! "Labels and Selectors", syntax and character set). Our keys are the shared [`OwnerLabels`] keys
//! (`kasm-autoscale-deployment`, `kasm-autoscale-config`, `kasm-autoscale-claim`): legal label names
//! without a prefix.
//!
//! A value is written as `v` + the value with the bytes `A-Z a-z 0-9 - .` kept and every other byte
//! (the escape character `_` included) as `_` and two lowercase hex digits + `v`
//! (`Prod EU` → `vProd_20EUv`). The `v` at each end makes every value begin and end with a letter
//! whatever its own first and last characters are, and the escaping keeps the alphabet, so the result
//! is always a legal label value that decodes to exactly the original. A value that would exceed 63
//! characters is refused ([`for_owner`] fails naming the label). Values need no escaping inside a
//! label selector (`key=value,key=value`).

use std::collections::BTreeMap;

use crate::model::OwnerLabels;

/// Our label keys, in selector order.
pub const KEYS: [&str; 3] = [OwnerLabels::DEPLOYMENT, OwnerLabels::CONFIG, OwnerLabels::CLAIM];

/// The longest label value Kubernetes accepts.
pub const MAX_LEN: usize = 63;

fn kept(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'.'
}

/// `value` as a label value (see the module docs).
pub fn encode(value: &str) -> String {
    format!("v{}v", crate::providers::tag_escape::encode(value, kept, '_'))
}

/// The value [`encode`] made `label_value` from; `None` when it is not one of ours.
pub fn decode(label_value: &str) -> Option<String> {
    let inner = label_value.strip_prefix('v')?.strip_suffix('v')?;
    crate::providers::tag_escape::decode(inner, kept, b'_')
}

/// The Kubernetes labels carrying `labels`; an error names the label whose value would be too long.
pub fn for_owner(labels: &OwnerLabels) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (key, value) in labels.to_map() {
        let v = encode(&value);
        if v.len() > MAX_LEN {
            return Err(format!(
                "label {key} makes a Kubernetes label value of {} characters (at most {MAX_LEN})",
                v.len()
            ));
        }
        out.insert(key, v);
    }
    Ok(out)
}

/// The ownership labels our Kubernetes labels among `kube` carry (other labels are ignored).
pub fn owner_labels(kube: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    KEYS.iter().filter_map(|k| kube.get(*k).and_then(|v| decode(v)).map(|v| (k.to_string(), v))).collect()
}

/// Whether `kube` carries our deployment label (made by kasm-autoscale).
pub fn is_ours(kube: &BTreeMap<String, String>) -> bool {
    kube.get(OwnerLabels::DEPLOYMENT).and_then(|v| decode(v)).is_some()
}

/// The label selector (`labelSelector` query parameter) matching every label of `labels`.
pub fn selector(labels: &OwnerLabels) -> Result<String, String> {
    Ok(for_owner(labels)?.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ClaimId;

    fn legal(v: &str) -> bool {
        let b = v.as_bytes();
        v.len() <= MAX_LEN
            && (b.is_empty()
                || (b[0].is_ascii_alphanumeric()
                    && b[b.len() - 1].is_ascii_alphanumeric()
                    && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))))
    }

    #[test]
    fn values_are_legal_and_reversible() {
        for v in ["", "-", "a", "Prod EU", "_x_", "3f2a9c1e-0000-4000-8000-00000000000a", "ünï.code-", ".x."] {
            let e = encode(v);
            assert!(legal(&e), "{v:?} -> {e:?}");
            assert_eq!(decode(&e).as_deref(), Some(v), "{e}");
        }
        assert_eq!(encode("Prod EU"), "vProd_20EUv");
        assert_eq!(decode("Prod EU"), None);
        assert_eq!(decode("vx_zzv"), None);
    }

    #[test]
    fn owner_labels_round_trip_and_select() {
        let l = OwnerLabels {
            deployment: "dep 1".into(),
            autoscale_config: Some("cfg".into()),
            claim: Some(ClaimId("c-1".into())),
        };
        let k = for_owner(&l).unwrap();
        assert_eq!(owner_labels(&k), l.to_map());
        assert!(is_ours(&k));
        assert!(!is_ours(&BTreeMap::from([("kasm-autoscale-deployment".to_string(), "dep".to_string())])));
        assert_eq!(
            selector(&l).unwrap(),
            "kasm-autoscale-claim=vc-1v,kasm-autoscale-config=vcfgv,kasm-autoscale-deployment=vdep_201v"
        );
        let long = OwnerLabels::deployment(&"x".repeat(62));
        assert!(for_owner(&long).unwrap_err().contains("kasm-autoscale-deployment"));
    }
}
