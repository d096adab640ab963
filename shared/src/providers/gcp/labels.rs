//! Our ownership labels as GCP labels, reversibly.
//!
//! GCP label keys and values are at most 63 characters of lowercase letters, digits, `_` and `-`
//! (keys start with a letter; Compute Engine documentation, "Labeling resources"). Our keys use `_`
//! instead of `-` so that they are plain field names in `instances.list` filters
//! (`labels.kasm_autoscale_deployment = "..."`):
//!
//! | label                        | GCP label key                |
//! |------------------------------|------------------------------|
//! | `kasm-autoscale-deployment`  | `kasm_autoscale_deployment`  |
//! | `kasm-autoscale-config`      | `kasm_autoscale_config`      |
//! | `kasm-autoscale-claim`       | `kasm_autoscale_claim`       |
//!
//! A value keeps the bytes `a-z 0-9 -` and writes every other byte of its UTF-8 (the escape character
//! `_` itself included) as `_` and two lowercase hex digits (`Prod EU` → `_50rod_20_45_55`), so it is
//! a legal label value and decodes to exactly the original. A value that would exceed 63 characters is
//! refused ([`for_owner`] fails naming the label).

use std::collections::BTreeMap;

use crate::model::OwnerLabels;

/// Our label keys: (GCP key, [`OwnerLabels`] key).
pub const KEYS: [(&str, &str); 3] = [
    ("kasm_autoscale_deployment", OwnerLabels::DEPLOYMENT),
    ("kasm_autoscale_config", OwnerLabels::CONFIG),
    ("kasm_autoscale_claim", OwnerLabels::CLAIM),
];
/// The GCP key of the deployment label.
pub const DEPLOYMENT: &str = KEYS[0].0;
/// The GCP key of the claim label.
pub const CLAIM: &str = KEYS[2].0;
/// The longest label value GCP accepts.
pub const MAX_LEN: usize = 63;

fn kept(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
}

/// `value` in the label alphabet (see the module docs).
pub fn encode(value: &str) -> String {
    crate::providers::tag_escape::encode(value, kept, '_')
}

/// The value [`encode`] made `label_value` from; `None` when it is not one of ours.
pub fn decode(label_value: &str) -> Option<String> {
    crate::providers::tag_escape::decode(label_value, kept, b'_')
}

/// The GCP labels carrying `labels`; an error names the label whose value would be too long.
pub fn for_owner(labels: &OwnerLabels) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (owner_key, value) in labels.to_map() {
        let Some((gcp_key, _)) = KEYS.iter().find(|(_, o)| *o == owner_key) else { continue };
        let v = encode(&value);
        if v.len() > MAX_LEN {
            return Err(format!(
                "label {owner_key} makes a GCP label value of {} characters (at most {MAX_LEN})",
                v.len()
            ));
        }
        out.insert(gcp_key.to_string(), v);
    }
    Ok(out)
}

/// The ownership labels our GCP labels among `gcp` carry (other labels are ignored).
pub fn owner_labels(gcp: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    KEYS.iter().filter_map(|(g, o)| gcp.get(*g).and_then(|v| decode(v)).map(|v| (o.to_string(), v))).collect()
}

/// Whether `gcp` carries our deployment label.
pub fn is_ours(gcp: &BTreeMap<String, String>) -> bool {
    gcp.get(DEPLOYMENT).and_then(|v| decode(v)).is_some()
}

/// The `instances.list` filter selecting `labels`: one parenthesised `labels.<key> = "<value>"`
/// expression per label, AND-ed (the `filter` parameter's documented form). Values are in the label
/// alphabet, so they need no escaping inside the quotes.
pub fn filter(labels: &OwnerLabels) -> Result<String, String> {
    Ok(for_owner(labels)?.iter().map(|(k, v)| format!("(labels.{k} = \"{v}\")")).collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ClaimId;

    #[test]
    fn labels_round_trip_and_filter() {
        let o = OwnerLabels {
            deployment: "Prod EU".into(),
            autoscale_config: Some("gpu_pool".into()),
            claim: Some(ClaimId("01jabc".into())),
        };
        let g = for_owner(&o).unwrap();
        assert_eq!(g["kasm_autoscale_deployment"], "_50rod_20_45_55");
        assert_eq!(g["kasm_autoscale_config"], "gpu_5fpool");
        for (k, v) in &g {
            assert!(v.len() <= MAX_LEN && v.bytes().all(|b| kept(b) || b == b'_'), "{k}={v}");
        }
        assert!(o.matches(&owner_labels(&g)));
        assert!(is_ours(&g));
        assert_eq!(filter(&OwnerLabels::deployment("prod")).unwrap(), "(labels.kasm_autoscale_deployment = \"prod\")");
        let long = OwnerLabels::deployment(&"x".repeat(64));
        assert!(for_owner(&long).unwrap_err().contains("kasm-autoscale-deployment"));
        assert!(!is_ours(&[("team".to_string(), "vdi".to_string())].into()));
    }
}
