//! `kasm-autoscale apply FILE... --store URL [--dry-run] [--create-table]`: validates config files,
//! shows what changes against the configs in the store, and (unless `--dry-run`) stores them.
//!
//! The diff names configs and fields only, never values: secret fields hold references, but a
//! diff is pasted into tickets and chats, and field names are what a reviewer needs.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;
use shared::config::ConfigSet;
use shared::wiring;

/// One line of the diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A config only in the new set.
    Added(String),
    /// A config only in the stored set.
    Removed(String),
    /// A config in both, with the top-level fields that differ.
    Changed(String, Vec<String>),
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Added(c) => write!(f, "+ {c}"),
            Change::Removed(c) => write!(f, "- {c}"),
            Change::Changed(c, fields) => write!(f, "~ {c}: {}", fields.join(", ")),
        }
    }
}

/// Every config of a set as (label, JSON), in file order. Schedules have no name: they are labelled by
/// their autoscale config and position among its schedules; staging configs by their id.
fn entries(set: &ConfigSet) -> Vec<(String, serde_json::Value)> {
    fn json<T: Serialize>(v: &T) -> serde_json::Value {
        serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
    }
    let mut out = vec![("settings".to_string(), json(&set.settings))];
    for a in &set.autoscale_configs {
        out.push((format!("autoscale_config {}", a.autoscale_config_name), json(a)));
    }
    for p in &set.vm_provider_configs {
        out.push((format!("vm_provider_config {}", p.name()), json(p)));
    }
    for d in &set.dns_provider_configs {
        out.push((format!("dns_provider_config {}", d.name()), json(d)));
    }
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for s in &set.schedules {
        let n = seen.entry(s.autoscale_config.as_str()).or_default();
        out.push((format!("schedule {}[{n}]", s.autoscale_config), json(s)));
        *n += 1;
    }
    for s in &set.staging_configs {
        out.push((format!("staging_config {}", s.id()), json(s)));
    }
    out
}

/// The top-level fields whose values differ (a field present on one side only differs too).
fn changed_fields(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    match (old.as_object(), new.as_object()) {
        (Some(o), Some(n)) => {
            let mut fields: Vec<String> =
                n.iter().filter(|(k, v)| o.get(*k) != Some(v)).map(|(k, _)| k.clone()).collect();
            fields.extend(o.keys().filter(|k| !n.contains_key(*k)).cloned());
            fields
        }
        _ if old != new => vec!["(value)".into()],
        _ => vec![],
    }
}

/// What applying `new` over `stored` changes: added and changed configs in the new set's order, then
/// removed ones in the stored set's order.
pub fn diff(stored: Option<&ConfigSet>, new: &ConfigSet) -> Vec<Change> {
    let old = stored.map(entries).unwrap_or_default();
    let new = entries(new);
    let mut out = vec![];
    for (label, v) in &new {
        match old.iter().find(|(l, _)| l == label) {
            None => out.push(Change::Added(label.clone())),
            Some((_, o)) => {
                let fields = changed_fields(o, v);
                if !fields.is_empty() {
                    out.push(Change::Changed(label.clone(), fields));
                }
            }
        }
    }
    for (label, _) in &old {
        if !new.iter().any(|(l, _)| l == label) {
            out.push(Change::Removed(label.clone()));
        }
    }
    out
}

/// Runs `apply`: 0 when the store holds the files' configs afterwards (or would, with `dry_run`), 1 when
/// the files are invalid (nothing is written) or the store fails.
pub async fn run(
    files: &[PathBuf],
    store_url: &str,
    dry_run: bool,
    create_table: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    // Output errors (a closed pipe) cannot change the verdict, so they are ignored.
    let (set, problems) = shared::config::validate_files(files);
    if !problems.is_empty() {
        for p in &problems {
            let _ = writeln!(err, "{p}");
        }
        let _ = writeln!(err, "{} problem(s) found; nothing was applied", problems.len());
        return 1;
    }
    let store = match wiring::open_store_async(store_url, create_table && !dry_run).await {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return 1;
        }
    };
    let stored = match store.load_configs().await {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "error: failed to read the stored configs: {e}");
            return 1;
        }
    };
    let changes = diff(stored.as_ref(), &set);
    for c in &changes {
        let _ = writeln!(out, "{c}");
    }
    if changes.is_empty() && stored.as_ref() == Some(&set) {
        let _ = writeln!(out, "no changes: {store_url} holds these configs already");
        return 0;
    }
    let count = |f: fn(&Change) -> bool| changes.iter().filter(|c| f(c)).count();
    let summary = format!(
        "{} added, {} changed, {} removed",
        count(|c| matches!(c, Change::Added(_))),
        count(|c| matches!(c, Change::Changed(..))),
        count(|c| matches!(c, Change::Removed(_)))
    );
    if dry_run {
        let _ = writeln!(out, "{summary}; dry run: nothing written to {store_url}");
        return 0;
    }
    if let Err(e) = store.save_configs(&set).await {
        let _ = writeln!(err, "error: failed to store the configs: {e}");
        return 1;
    }
    let _ = writeln!(out, "{summary}; applied to {store_url}");
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> ConfigSet {
        let (set, problems) = shared::config::validate_text(yaml, "test.yaml");
        assert!(problems.is_empty(), "{problems:?}");
        set
    }

    #[test]
    fn a_first_apply_adds_everything() {
        let set = load(include_str!("../../../events/configs/aws.yaml"));
        let d = diff(None, &set);
        assert_eq!(d.first(), Some(&Change::Added("settings".into())));
        assert!(d.contains(&Change::Added("autoscale_config aws-agents".into())), "{d:?}");
        assert!(d.contains(&Change::Added("vm_provider_config aws-us-east-1".into())), "{d:?}");
        assert!(d.iter().all(|c| matches!(c, Change::Added(_))), "{d:?}");
        assert!(diff(Some(&set), &set).is_empty(), "the same set differs from itself");
    }

    #[test]
    fn changed_fields_and_removed_configs_are_named_without_values() {
        let old = load(include_str!("../../../events/configs/aws.yaml"));
        let mut new = old.clone();
        new.autoscale_configs[0].standby_cores = 12.0;
        new.autoscale_configs[0].downscale_backoff = 60;
        new.vm_provider_configs.clear();
        new.autoscale_configs[0].vm_provider_config = "elsewhere".into();
        let lines: Vec<String> = diff(Some(&old), &new).iter().map(ToString::to_string).collect();
        let changed = lines.iter().find(|l| l.starts_with("~ autoscale_config aws-agents: ")).expect("changed");
        let mut fields: Vec<&str> = changed.trim_start_matches("~ autoscale_config aws-agents: ").split(", ").collect();
        fields.sort();
        assert_eq!(fields, ["downscale_backoff", "standby_cores", "vm_provider_config"]);
        assert!(lines.contains(&"- vm_provider_config aws-us-east-1".into()), "{lines:?}");
        assert!(!lines.iter().any(|l| l.contains("12") || l.contains("elsewhere")), "values in the diff: {lines:?}");
    }
}
