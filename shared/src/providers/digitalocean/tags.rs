//! Our ownership labels as DigitalOcean tags, reversibly.
//!
//! DigitalOcean tags are plain strings matching `^[a-zA-Z0-9_\-\:]+$`, at most 255 characters, and
//! "case stable" (the first capitalisation is canonical; the API spec, `tags.yml`), so a label value
//! cannot be stored as it is and we write lowercase only. Each label becomes one tag:
//!
//! | label                        | tag               |
//! |------------------------------|-------------------|
//! | `kasm-autoscale-deployment`  | `ka:d:<value>`    |
//! | `kasm-autoscale-config`      | `ka:c:<value>`    |
//! | `kasm-autoscale-claim`       | `ka:k:<value>`    |
//!
//! `<value>` keeps the bytes `a-z 0-9 -` and writes every other byte of its UTF-8 (the escape
//! character `_` itself included) as `_` and two lowercase hex digits (`Prod EU` →
//! `_50rod_20_45_55`), so the tag is valid, all lowercase and decodes to exactly the original value.
//! A label whose tag would exceed 255 characters is refused ([`for_labels`] fails naming it).

use std::collections::BTreeMap;

use crate::model::OwnerLabels;

/// Tag prefix of the deployment label.
pub const DEPLOYMENT: &str = "ka:d:";
/// Tag prefix of the autoscale-config label.
pub const CONFIG: &str = "ka:c:";
/// Tag prefix of the claim label.
pub const CLAIM: &str = "ka:k:";
/// The longest tag DigitalOcean accepts.
pub const MAX_LEN: usize = 255;

fn kept(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
}

/// `value` in the tag alphabet (see the module docs).
pub fn encode(value: &str) -> String {
    crate::providers::tag_escape::encode(value, kept, '_')
}

/// The value [`encode`] made `tag_value` from; `None` when it is not one of ours.
pub fn decode(tag_value: &str) -> Option<String> {
    crate::providers::tag_escape::decode(tag_value, kept, b'_')
}

/// The claim's tag.
pub fn claim_tag(claim: &str) -> String {
    format!("{CLAIM}{}", encode(claim))
}

/// The deployment's tag.
pub fn deployment_tag(deployment: &str) -> String {
    format!("{DEPLOYMENT}{}", encode(deployment))
}

/// The tags carrying `labels`; an error names the label whose tag would be longer than 255.
pub fn for_labels(labels: &OwnerLabels) -> Result<Vec<String>, String> {
    let mut t = vec![(OwnerLabels::DEPLOYMENT, deployment_tag(&labels.deployment))];
    if let Some(c) = &labels.autoscale_config {
        t.push((OwnerLabels::CONFIG, format!("{CONFIG}{}", encode(c))));
    }
    if let Some(c) = &labels.claim {
        t.push((OwnerLabels::CLAIM, claim_tag(c.as_str())));
    }
    t.into_iter()
        .map(|(label, tag)| {
            if tag.len() > MAX_LEN {
                Err(format!("label {label} makes a DigitalOcean tag of {} characters (at most {MAX_LEN})", tag.len()))
            } else {
                Ok(tag)
            }
        })
        .collect()
}

/// The labels our tags among `tags` carry (other tags are ignored; compared lowercase).
pub fn labels(tags: &[String]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for t in tags {
        let t = t.to_ascii_lowercase();
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

/// Whether `tags` mark a droplet made by kasm-autoscale (a deployment tag of any deployment).
pub fn is_ours(tags: &[String]) -> bool {
    tags.iter().any(|t| t.to_ascii_lowercase().strip_prefix(DEPLOYMENT).and_then(decode).is_some())
}

/// Whether `tag` is legal on DigitalOcean (`^[a-zA-Z0-9_\-\:]+$`, at most 255 characters).
pub fn is_legal(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= MAX_LEN
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ClaimId;

    #[test]
    fn labels_round_trip_through_legal_lowercase_tags() {
        let l = OwnerLabels {
            deployment: "Prod EU/1".into(),
            autoscale_config: Some("Désktop pool_x:y".into()),
            claim: Some(ClaimId("01jd4x9q7r8s2t3v4w5x6y7z8a".into())),
        };
        let tags = for_labels(&l).unwrap();
        for t in &tags {
            assert!(is_legal(t), "{t}");
            assert_eq!(t, &t.to_ascii_lowercase());
        }
        assert_eq!(tags[2], "ka:k:01jd4x9q7r8s2t3v4w5x6y7z8a");
        assert_eq!(tags[0], "ka:d:_50rod_20_45_55_2f1");
        assert_eq!(labels(&tags), l.to_map());
        assert!(is_ours(&tags));
    }

    #[test]
    fn foreign_malformed_and_overlong_tags() {
        let tags: Vec<String> = ["web", "ka:d:prod", "ka:c:_zz", "ka:k:_4", "env:prod"].map(String::from).to_vec();
        let m = labels(&tags);
        assert_eq!(m.len(), 1);
        assert_eq!(m[OwnerLabels::DEPLOYMENT], "prod");
        assert!(!is_ours(&["web".to_string(), "ka:d:_zz".to_string()]));
        assert!(!is_legal("bad tag") && !is_legal("") && !is_legal(&"a".repeat(256)));
        let long = OwnerLabels { deployment: "x".repeat(300), autoscale_config: None, claim: None };
        assert!(for_labels(&long).unwrap_err().contains("kasm-autoscale-deployment"));
    }

    #[test]
    fn the_escape_character_is_escaped() {
        assert_ne!(encode("_41"), encode("A"));
        assert_eq!(decode(&encode("_41")).unwrap(), "_41");
        assert_eq!(encode("A"), "_41");
    }
}
