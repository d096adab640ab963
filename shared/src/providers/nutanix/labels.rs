//! Our ownership labels in a VM's description, reversibly.
//!
//! A v3 clone takes the new VM's `name` and `description` in its `override_spec`, but not its
//! `metadata` (where categories live), so the labels travel in the description, one line:
//!
//! ```text
//! kasm-autoscale: deployment=<value> config=<value> claim=<value>
//! ```
//!
//! `<value>` keeps the bytes `A-Z a-z 0-9 . _ -` and writes every other byte of its UTF-8 (`%`
//! itself included) as `%` and two lowercase hex digits (`Desktop Pool` → `Desktop%20Pool`), so
//! it decodes to exactly the original value. A VM is ours when its description starts with
//! [`PREFIX`] and carries a deployment; any other VM is never deleted.

use std::collections::BTreeMap;

use crate::model::OwnerLabels;

/// How a description of ours starts.
pub const PREFIX: &str = "kasm-autoscale:";

/// The keys in the description and the labels they carry.
const KEYS: [(&str, &str); 3] =
    [("deployment", OwnerLabels::DEPLOYMENT), ("config", OwnerLabels::CONFIG), ("claim", OwnerLabels::CLAIM)];

fn kept(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// `value` in the description's alphabet.
pub fn encode(value: &str) -> String {
    crate::providers::tag_escape::encode(value, kept, '%')
}

/// The value [`encode`] made; `None` when it is not one of ours.
pub fn decode(value: &str) -> Option<String> {
    crate::providers::tag_escape::decode(value, kept, b'%')
}

/// The description carrying `labels`.
pub fn description(labels: &OwnerLabels) -> String {
    let mut s = format!("{PREFIX} deployment={}", encode(&labels.deployment));
    if let Some(c) = &labels.autoscale_config {
        s.push_str(&format!(" config={}", encode(c)));
    }
    if let Some(c) = &labels.claim {
        s.push_str(&format!(" claim={}", encode(c.as_str())));
    }
    s
}

/// The labels a description carries (empty when it is not one of ours).
pub fn labels(description: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let Some(rest) = description.trim().strip_prefix(PREFIX) else { return m };
    for word in rest.split_whitespace() {
        let Some((k, v)) = word.split_once('=') else { continue };
        if let (Some((_, label)), Some(v)) = (KEYS.iter().find(|(key, _)| *key == k), decode(v)) {
            m.insert(label.to_string(), v);
        }
    }
    m
}

/// Whether a VM with this description is ours (carries a deployment).
pub fn is_ours(description: &str) -> bool {
    labels(description).contains_key(OwnerLabels::DEPLOYMENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ClaimId;

    #[test]
    fn labels_round_trip_through_the_description() {
        let l = OwnerLabels {
            deployment: "prod eu".into(),
            autoscale_config: Some("Desktop Pool=1%".into()),
            claim: Some(ClaimId("01JABCDEF".into())),
        };
        let d = description(&l);
        assert_eq!(d, "kasm-autoscale: deployment=prod%20eu config=Desktop%20Pool%3d1%25 claim=01JABCDEF");
        assert_eq!(labels(&d), l.to_map());
        assert!(is_ours(&d));
        assert!(labels("an operator's VM").is_empty());
        assert!(!is_ours("kasm-autoscale: config=x"));
        assert!(!is_ours("kasm-autoscale: deployment=bad%zz"));
        assert!(!is_ours(""));
    }
}
