//! Our ownership labels in a VM's data set, reversibly.
//!
//! The vSphere Automation REST API (the operations in VMware's API metadata) has no tagging
//! operations and no VM annotation ("notes") field; the one key/value store it offers on a VM is the
//! VM's data sets (`/api/vcenter/vm/{vm}/data-sets`, each with a `name` and a free-text
//! `description`). Each VM we make gets one data set named [`DATA_SET`] whose description is one line:
//!
//! ```text
//! kasm-autoscale: deployment=<value> config=<value> claim=<value> [pid=<n>] [script=done]
//! ```
//!
//! `<value>` keeps `A-Z a-z 0-9 . _ -` and writes every other byte of its UTF-8 (`%` included) as `%`
//! and two lowercase hex digits, so it decodes to exactly the original. `pid` and `script` record how
//! far the startup script got, so a resumed `create_vm` neither runs it twice nor forgets to check it.
//! A VM is ours only when it has this data set and the data set carries a deployment.

use std::collections::BTreeMap;

use crate::model::OwnerLabels;

/// The name of our data set on each VM.
pub const DATA_SET: &str = "kasm-autoscale";

/// How our description starts.
pub const PREFIX: &str = "kasm-autoscale:";

const KEYS: [(&str, &str); 3] =
    [("deployment", OwnerLabels::DEPLOYMENT), ("config", OwnerLabels::CONFIG), ("claim", OwnerLabels::CLAIM)];

fn kept(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// How far the startup script got on a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// Not started (or not recorded as started).
    NotStarted,
    /// Started as guest process `pid`.
    Started(i64),
    /// Finished with exit code 0, or there was no script.
    Done,
}

/// The description carrying `labels` and the script's progress.
pub fn description(labels: &OwnerLabels, script: Script) -> String {
    let enc = |v: &str| crate::providers::tag_escape::encode(v, kept, '%');
    let mut s = format!("{PREFIX} deployment={}", enc(&labels.deployment));
    if let Some(c) = &labels.autoscale_config {
        s.push_str(&format!(" config={}", enc(c)));
    }
    if let Some(c) = &labels.claim {
        s.push_str(&format!(" claim={}", enc(c.as_str())));
    }
    match script {
        Script::NotStarted => {}
        Script::Started(pid) => s.push_str(&format!(" pid={pid}")),
        Script::Done => s.push_str(" script=done"),
    }
    s
}

/// The labels a description carries (empty when it is not one of ours).
pub fn labels(description: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let Some(rest) = description.trim().strip_prefix(PREFIX) else { return m };
    for word in rest.split_whitespace() {
        let Some((k, v)) = word.split_once('=') else { continue };
        if let (Some((_, label)), Some(v)) =
            (KEYS.iter().find(|(key, _)| *key == k), crate::providers::tag_escape::decode(v, kept, b'%'))
        {
            m.insert(label.to_string(), v);
        }
    }
    m
}

/// The script's progress a description records.
pub fn script(description: &str) -> Script {
    let Some(rest) = description.trim().strip_prefix(PREFIX) else { return Script::NotStarted };
    let mut out = Script::NotStarted;
    for word in rest.split_whitespace() {
        match word.split_once('=') {
            Some(("script", "done")) => return Script::Done,
            Some(("pid", n)) => {
                if let Ok(n) = n.parse() {
                    out = Script::Started(n);
                }
            }
            _ => {}
        }
    }
    out
}

/// Whether a description is one of ours (carries a deployment).
pub fn is_ours(description: &str) -> bool {
    labels(description).contains_key(OwnerLabels::DEPLOYMENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ClaimId;

    #[test]
    fn labels_and_progress_round_trip_through_the_description() {
        let l = OwnerLabels {
            deployment: "prod eu".into(),
            autoscale_config: Some("Desktop Pool=1%".into()),
            claim: Some(ClaimId("01JABCDEF".into())),
        };
        let d = description(&l, Script::NotStarted);
        assert_eq!(d, "kasm-autoscale: deployment=prod%20eu config=Desktop%20Pool%3d1%25 claim=01JABCDEF");
        assert_eq!(labels(&d), l.to_map());
        assert_eq!(script(&d), Script::NotStarted);
        let d = description(&l, Script::Started(4242));
        assert_eq!((labels(&d), script(&d)), (l.to_map(), Script::Started(4242)));
        let d = description(&l, Script::Done);
        assert_eq!((labels(&d), script(&d)), (l.to_map(), Script::Done));
        assert!(is_ours(&d));
        assert!(!is_ours("an operator's data set"));
        assert!(!is_ours("kasm-autoscale: config=x"));
        assert!(!is_ours("kasm-autoscale: deployment=bad%zz"));
    }
}
