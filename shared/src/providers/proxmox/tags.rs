//! Our ownership labels as Proxmox tags, reversibly.
//!
//! Proxmox tags match `[a-z0-9_][a-z0-9_+.-]*` (case-insensitive, and de-duplicated ignoring case by
//! default), so label values cannot be stored as they are. Each label becomes one tag:
//!
//! | label                        | tag                |
//! |------------------------------|--------------------|
//! | `kasm-autoscale-deployment`  | `ka-d-<value>`     |
//! | `kasm-autoscale-config`      | `ka-c-<value>`     |
//! | `kasm-autoscale-claim`       | `ka-k-<value>`     |
//!
//! `<value>` keeps the bytes `a-z 0-9 _ . -` and writes every other byte of its UTF-8 as `+` and two
//! lowercase hex digits (`Prod EU` → `+50rod+20+45+55`), so the tag is valid, all lowercase and
//! decodes to exactly the original value. `ka-script-ran` marks a VM whose startup script was
//! started (see the provider's docs). The full labels are also written, readable, into the VM's
//! description.

use std::collections::BTreeMap;

use crate::model::OwnerLabels;

/// Tag prefix of the deployment label.
pub const DEPLOYMENT: &str = "ka-d-";
/// Tag prefix of the autoscale-config label.
pub const CONFIG: &str = "ka-c-";
/// Tag prefix of the claim label.
pub const CLAIM: &str = "ka-k-";
/// The tag set once the startup script has been started in the guest.
pub const SCRIPT_RAN: &str = "ka-script-ran";

fn kept(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
}

/// `value` in the tag alphabet (see the module docs).
pub fn encode(value: &str) -> String {
    crate::providers::tag_escape::encode(value, kept, '+')
}

/// The value [`encode`] made `tag_value` from; `None` when it is not one of ours.
pub fn decode(tag_value: &str) -> Option<String> {
    crate::providers::tag_escape::decode(tag_value, kept, b'+')
}

/// The tags carrying `labels`.
pub fn for_labels(labels: &OwnerLabels) -> Vec<String> {
    let mut t = vec![format!("{DEPLOYMENT}{}", encode(&labels.deployment))];
    if let Some(c) = &labels.autoscale_config {
        t.push(format!("{CONFIG}{}", encode(c)));
    }
    if let Some(c) = &labels.claim {
        t.push(format!("{CLAIM}{}", encode(c.as_str())));
    }
    t
}

/// A tag list as Proxmox returns it (`;`-separated; older releases also `,` or spaces).
pub fn split(tags: Option<&str>) -> Vec<String> {
    tags.unwrap_or_default()
        .split([';', ',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// The labels our tags among `tags` carry (other tags are ignored).
pub fn labels(tags: &[String]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for t in tags {
        for (prefix, key) in
            [(DEPLOYMENT, OwnerLabels::DEPLOYMENT), (CONFIG, OwnerLabels::CONFIG), (CLAIM, OwnerLabels::CLAIM)]
        {
            if let Some(v) = t.strip_prefix(prefix).and_then(decode) {
                m.insert(key.to_string(), v);
            }
        }
    }
    m
}

/// Whether `tag` is one kasm-autoscale writes (others, the template's or an operator's, are kept).
pub fn is_kasm_autoscale_tag(tag: &str) -> bool {
    [DEPLOYMENT, CONFIG, CLAIM].iter().any(|p| tag.starts_with(p)) || tag == SCRIPT_RAN
}

/// Whether `tags` mark a VM made by kasm-autoscale (any deployment).
pub fn is_ours(tags: &[String]) -> bool {
    tags.iter().any(|t| t.starts_with(DEPLOYMENT))
}

/// The VM's description: the labels in full, for people reading the Proxmox UI.
pub fn description(labels: &OwnerLabels) -> String {
    let mut s = String::from("Managed by kasm-autoscale; deleted when no longer needed.\n");
    for (k, v) in labels.to_map() {
        s.push_str(&format!("{k}={v}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ClaimId;

    fn valid_tag(t: &str) -> bool {
        let b = t.as_bytes();
        !b.is_empty()
            && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
            && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'+' | b'.'))
    }

    #[test]
    fn labels_round_trip_through_valid_lowercase_tags() {
        let l = OwnerLabels {
            deployment: "Prod EU/1".into(),
            autoscale_config: Some("Désktop pool +x".into()),
            claim: Some(ClaimId("01jd4x9q7r8s2t3v4w5x6y7z8a".into())),
        };
        let tags = for_labels(&l);
        for t in &tags {
            assert!(valid_tag(t), "{t}");
            assert_eq!(t, &t.to_ascii_lowercase());
        }
        assert_eq!(tags[2], "ka-k-01jd4x9q7r8s2t3v4w5x6y7z8a");
        assert_eq!(labels(&tags), l.to_map());
        assert!(is_ours(&tags));
    }

    #[test]
    fn foreign_and_malformed_tags_are_ignored() {
        let tags = split(Some("web;ka-d-prod;ka-c-+zz;ka-k-+4"));
        let m = labels(&tags);
        assert_eq!(m.len(), 1);
        assert_eq!(m[OwnerLabels::DEPLOYMENT], "prod");
        assert!(!is_ours(&split(Some("web,db other"))));
        assert_eq!(split(Some("a,b c;d")), vec!["a", "b", "c", "d"]);
    }

    #[test]
    fn encoding_is_injective_on_the_escape_character() {
        assert_ne!(encode("+41"), encode("A"));
        assert_eq!(decode(&encode("+41")).unwrap(), "+41");
    }
}
