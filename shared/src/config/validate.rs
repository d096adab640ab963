//! Validation: **every** problem of a set of config files, each reported as
//! `FILE: <config name>.<field>: <what is wrong>`.
//!
//! A document is first parsed to a generic YAML value; each config entry is then deserialized on its own
//! (with the failing field's path), and a failing field is taken out and the entry tried again, so one bad
//! field neither hides the next one nor the other configs. Semantic checks (ranges, references, overrides,
//! startup-script templates) run on what parsed. Messages never quote the value of a secret field.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde_yaml_ng::{Mapping, Value};

use super::check::{Found, is_http_url, is_pem_certificates, need, serde_name};
use super::did_you_mean::did_you_mean;
use super::dns::{DNS_PROVIDER_KINDS, dns_kasm_columns};
use super::kasm_names::{self, KasmColumn, KasmColumns, KasmIds, Target};
use super::{
    AutoscaleConfig, AutoscaleType, ConfigFile, ConfigSet, DnsProviderConfig, KasmSettings, ProviderKind, Schedule,
    Settings, StagingConfig, VmProviderConfig,
};

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// The file (or other origin) the problem is in.
    pub file: String,
    /// The config: its name, or `autoscale_configs[3]` when it has none; `None` for file-level problems.
    pub config: Option<String>,
    /// The field path inside the config (`aws_ec2_custom_tags`, `gcp_metadata[0].key`), if any.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// Control characters of the input (names, values echoed in messages) are escaped, so a config cannot
/// forge terminal output such as a coloured `OK` line.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::input::escape_controls as esc;
        write!(f, "{}: ", esc(&self.file))?;
        match (&self.config, &self.field) {
            (Some(c), Some(field)) => write!(f, "{}.{}: ", esc(c), esc(field))?,
            (Some(c), None) => write!(f, "{}: ", esc(c))?,
            (None, Some(field)) => write!(f, "{}: ", esc(field))?,
            (None, None) => {}
        }
        f.write_str(&esc(&self.message))
    }
}

/// The JSON Schema of a config file ([`ConfigFile`]), every field described; for editors and `kasm-autoscale schema`.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ConfigFile)).expect("a schema is plain JSON")
}

/// Reads and validates config files: the configs that are valid, and every problem found. A file that cannot
/// be read is a problem too.
pub fn validate_files(paths: &[PathBuf]) -> (ConfigSet, Vec<Problem>) {
    let mut sources = Vec::new();
    let mut problems = Vec::new();
    for p in paths {
        let file = p.display().to_string();
        match crate::input::read_text(p, crate::input::MAX_CONFIG_BYTES) {
            Ok(text) => sources.push((file, text)),
            Err(e) => problems.push(Problem { file, config: None, field: None, message: e.to_string() }),
        }
    }
    let (set, more) = validate_sources(&sources);
    problems.extend(more);
    (set, problems)
}

/// Validates one document; `origin` names it in problems.
pub fn validate_text(text: &str, origin: &str) -> (ConfigSet, Vec<Problem>) {
    validate_sources(&[(origin.to_string(), text.to_string())])
}

/// Validates several documents (`(origin, text)`) as one deployment: references may cross documents.
pub fn validate_sources(sources: &[(String, String)]) -> (ConfigSet, Vec<Problem>) {
    let mut c = Collected::default();
    for (file, text) in sources {
        c.parse_document(file, text);
    }
    c.check();
    let Collected { mut problems, settings, autoscale, providers, dns, schedules, staging, .. } = c;
    let set = ConfigSet {
        settings: settings.into_iter().last().map(|l| l.value).unwrap_or_default(),
        autoscale_configs: autoscale.into_iter().map(|l| l.value).collect(),
        vm_provider_configs: providers.into_iter().map(|l| l.value).collect(),
        dns_provider_configs: dns.into_iter().map(|l| l.value).collect(),
        schedules: schedules.into_iter().map(|l| l.value).collect(),
        staging_configs: staging.into_iter().map(|l| l.value).collect(),
    };
    // Stable, readable order: by file, then as found within the file.
    problems.sort_by(|a, b| a.file.cmp(&b.file));
    (set, problems)
}

/// Checks an already-typed set (e.g. read from the store); `origin` names it in problems.
pub fn validate_set(set: &ConfigSet, origin: &str) -> Vec<Problem> {
    let mut c = Collected::default();
    let at = |label: String| (origin.to_string(), label);
    c.settings.push(Located { file: origin.to_string(), label: "settings".into(), value: set.settings.clone() });
    for (i, a) in set.autoscale_configs.iter().enumerate() {
        let (file, label) = at(label_or(&a.autoscale_config_name, "autoscale_configs", i));
        c.known_autoscale.insert(a.autoscale_config_name.clone());
        c.autoscale.push(Located { file, label, value: a.clone() });
    }
    for (i, p) in set.vm_provider_configs.iter().enumerate() {
        let (file, label) = at(label_or(p.name(), "vm_provider_configs", i));
        c.known_providers.insert(p.name().to_string());
        c.providers.push(Located { file, label, value: p.clone() });
    }
    for (i, d) in set.dns_provider_configs.iter().enumerate() {
        let (file, label) = at(label_or(d.name(), "dns_provider_configs", i));
        c.known_dns.insert(d.name().to_string());
        c.dns.push(Located { file, label, value: d.clone() });
    }
    for (i, s) in set.schedules.iter().enumerate() {
        let (file, label) = at(format!("schedules[{i}]"));
        c.schedules.push(Located { file, label, value: s.clone() });
    }
    for (i, s) in set.staging_configs.iter().enumerate() {
        let (file, label) = at(format!("staging_configs[{i}]"));
        c.staging.push(Located { file, label, value: s.clone() });
    }
    c.check();
    c.problems
}

/// Rewrites every config entry of a document from Kasm's names to ours (as validation does), for plain
/// parsing; returns the columns that could not be taken, as problems of `origin`.
pub(crate) fn kasm_names_to_ours(doc: &mut Value, origin: &str) -> Vec<Problem> {
    let Value::Mapping(root) = doc else { return Vec::new() };
    let ids = kasm_ids(root);
    let mut problems = Vec::new();
    for (list, value) in root.iter_mut() {
        let (Some(list), Value::Sequence(items)) = (list.as_str(), value) else { continue };
        for item in items {
            let Value::Mapping(m) = item else { continue };
            let kind = m.get("provider").and_then(Value::as_str);
            let columns: &[KasmColumn] = match list {
                "autoscale_configs" => AutoscaleConfig::KASM_COLUMNS,
                "schedules" => Schedule::KASM_COLUMNS,
                "staging_configs" => StagingConfig::KASM_COLUMNS,
                "vm_provider_configs" => {
                    kind.and_then(ProviderKind::from_name).map(ProviderKind::kasm_columns).unwrap_or_default()
                }
                "dns_provider_configs" => kind.and_then(dns_kasm_columns).unwrap_or_default(),
                _ => &[],
            };
            for p in kasm_names::to_ours(m, columns, &ids).problems {
                problems.push(Problem {
                    file: origin.to_string(),
                    config: None,
                    field: Some(p.field),
                    message: p.message,
                });
            }
        }
    }
    problems
}

/// Kasm's ids of the configs in one document (autoscale, VM-provider and DNS-provider configs), for the
/// references Kasm makes by id.
fn kasm_ids(root: &Mapping) -> KasmIds {
    let mut ids = KasmIds::default();
    let items = |key: &str| root.get(key).and_then(Value::as_sequence).cloned().unwrap_or_default();
    for item in items("autoscale_configs") {
        if let Value::Mapping(m) = item {
            ids.insert_entry(Target::Autoscale, &m, AutoscaleConfig::KASM_COLUMNS, "autoscale_config_name");
        }
    }
    for item in items("vm_provider_configs") {
        let Value::Mapping(m) = item else { continue };
        if let Some(kind) = m.get("provider").and_then(Value::as_str).and_then(ProviderKind::from_name) {
            ids.insert_entry(Target::VmProvider(kind.as_str()), &m, kind.kasm_columns(), "name");
        }
    }
    for item in items("dns_provider_configs") {
        let Value::Mapping(m) = item else { continue };
        let kind = m.get("provider").and_then(Value::as_str).and_then(|k| DNS_PROVIDER_KINDS.iter().find(|d| **d == k));
        if let (Some(kind), Some(columns)) = (kind, kind.and_then(|k| dns_kasm_columns(k))) {
            ids.insert_entry(Target::DnsProvider(kind), &m, columns, "name");
        }
    }
    ids
}

fn label_or(name: &str, list: &str, i: usize) -> String {
    if name.trim().is_empty() { format!("{list}[{i}]") } else { name.to_string() }
}

/// A config with where it came from.
#[derive(Debug)]
struct Located<T> {
    file: String,
    label: String,
    value: T,
}

/// A deserialized config; `touched` lists the fields that failed and were patched (empty = clean).
#[derive(Debug)]
struct Parsed<T> {
    value: T,
    touched: Vec<String>,
}

impl<T> Parsed<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Parsed<U> {
        Parsed { value: f(self.value), touched: self.touched }
    }
}

/// Stand-in values for a missing required field, tried in turn until one has the field's type.
fn stand_ins() -> [Value; 6] {
    let obj = |k: &str| {
        let mut m = Mapping::new();
        m.insert(Value::String(k.into()), Value::String("x".into()));
        Value::Mapping(m)
    };
    [
        Value::String("env:X".into()),
        Value::Number(1.into()),
        Value::Bool(false),
        Value::Sequence(Vec::new()),
        obj("id"),
        Value::Mapping(Mapping::new()),
    ]
}

impl<T> Located<T> {
    fn new(file: &str, label: &str, value: T) -> Self {
        Located { file: file.to_string(), label: label.to_string(), value }
    }
}

#[derive(Debug, Default)]
struct Collected {
    problems: Vec<Problem>,
    settings: Vec<Located<Settings>>,
    autoscale: Vec<Located<AutoscaleConfig>>,
    providers: Vec<Located<VmProviderConfig>>,
    dns: Vec<Located<DnsProviderConfig>>,
    schedules: Vec<Located<Schedule>>,
    staging: Vec<Located<StagingConfig>>,
    // Names present in the documents, including entries that failed to parse: a config with a bad field is
    // reported once, not again as "unknown" by every config that refers to it.
    known_autoscale: HashSet<String>,
    known_providers: HashSet<String>,
    known_dns: HashSet<String>,
    // Kasm's ids of the configs of the document being parsed (Kasm's references are by id, per document).
    kasm_ids: KasmIds,
}

const TOP_LEVEL: [&str; 6] =
    ["settings", "autoscale_configs", "vm_provider_configs", "dns_provider_configs", "schedules", "staging_configs"];

impl Collected {
    fn problem(&mut self, file: &str, config: Option<&str>, field: Option<&str>, message: impl Into<String>) {
        self.problems.push(Problem {
            file: file.to_string(),
            config: config.map(str::to_string),
            field: field.map(str::to_string),
            message: message.into(),
        });
    }

    fn parse_document(&mut self, file: &str, text: &str) {
        if let Err(e) = crate::input::check_nesting(text, crate::input::MAX_NESTING) {
            return self.problem(file, None, None, e.to_string());
        }
        let mut doc: Value = match serde_yaml_ng::from_str(text) {
            Ok(v) => v,
            Err(e) => return self.problem(file, None, None, format!("not valid YAML/JSON: {e}")),
        };
        if let Err(e) = doc.apply_merge() {
            return self.problem(file, None, None, format!("invalid YAML merge key: {e}"));
        }
        let root = match doc {
            Value::Mapping(m) => m,
            Value::Null => return self.problem(file, None, None, "the file holds no configs"),
            _ => {
                return self.problem(
                    file,
                    None,
                    None,
                    format!("expected a mapping with any of: {}", TOP_LEVEL.join(", ")),
                );
            }
        };
        // A file that is not a config at all (a trace pointing at `/etc/shadow`) is said so, without
        // echoing its content as "unknown keys"; a misspelt config key still gets its hint.
        let config_like = |k: &str| {
            TOP_LEVEL.contains(&k) || (k.len() <= 64 && !did_you_mean(k, TOP_LEVEL.iter().copied()).is_empty())
        };
        if !root.keys().any(|k| k.as_str().is_some_and(config_like)) {
            return self.problem(
                file,
                None,
                None,
                format!("not a config file: none of its top-level keys is one of {}", TOP_LEVEL.join(", ")),
            );
        }
        self.kasm_ids = kasm_ids(&root);
        for (k, v) in root {
            let Some(key) = k.as_str().map(str::to_string) else {
                self.problem(file, None, None, "top-level keys must be strings");
                continue;
            };
            if key == "settings" {
                // `settings.kasm` is parsed on its own, so that every problem in it is reported at once
                // (the settings parse stops at the first problem of each top-level field).
                let (rest, kasm) = match v {
                    Value::Mapping(mut m) => {
                        let kasm = match m.get("kasm") {
                            Some(Value::Mapping(_)) => m.remove("kasm"),
                            _ => None,
                        };
                        (Value::Mapping(m), kasm)
                    }
                    other => (other, None),
                };
                let kasm = kasm.map(|k| self.kasm_settings(file, k));
                let p = self.entry::<Settings>(file, "settings", rest, &[]).map(|mut p| {
                    match kasm {
                        Some(Ok(k)) => p.value.kasm = Some(k),
                        Some(Err(())) => p.touched.push("kasm".into()),
                        None => {}
                    }
                    p
                });
                self.keep(p, file, "settings", check_settings, |c| &mut c.settings);
                continue;
            }
            if !TOP_LEVEL.contains(&key.as_str()) {
                let hint = did_you_mean(&key, TOP_LEVEL.iter().copied());
                self.problem(file, None, Some(&crate::input::echo(&key)), format!("unknown top-level key{hint}"));
                continue;
            }
            let items = match v {
                Value::Sequence(items) => items,
                Value::Null => continue,
                _ => {
                    self.problem(file, None, Some(&key), "expected a list of configs");
                    continue;
                }
            };
            for (i, item) in items.into_iter().enumerate() {
                self.parse_entry(file, &key, i, item);
            }
        }
    }

    fn parse_entry(&mut self, file: &str, list: &str, i: usize, item: Value) {
        // Kasm's own name column (`config_name`) names a provider config too.
        let name_keys: &[&str] = match list {
            "autoscale_configs" => &["autoscale_config_name"],
            "vm_provider_configs" | "dns_provider_configs" => &["name", "config_name"],
            _ => &[],
        };
        let name_key = name_keys.first();
        let name = name_keys.iter().find_map(|k| item.get(*k).and_then(Value::as_str)).unwrap_or("").to_string();
        let label = match name_key {
            Some(_) => label_or(&name, list, i),
            None => format!("{list}[{i}]"),
        };
        match list {
            "autoscale_configs" => {
                self.known_autoscale.insert(name.clone());
                let p = self.entry::<AutoscaleConfig>(file, &label, item, AutoscaleConfig::KASM_COLUMNS);
                self.keep(p, file, &label, check_autoscale, |c| &mut c.autoscale);
            }
            "vm_provider_configs" => {
                self.known_providers.insert(name.clone());
                let p = self.provider_entry(file, &label, item);
                self.keep(p, file, &label, check_provider, |c| &mut c.providers);
            }
            "dns_provider_configs" => {
                self.known_dns.insert(name.clone());
                let p = self.dns_entry(file, &label, item);
                self.keep(p, file, &label, check_dns, |c| &mut c.dns);
            }
            "staging_configs" => {
                let p = self.entry::<StagingConfig>(file, &label, item, StagingConfig::KASM_COLUMNS);
                self.keep(p, file, &label, StagingConfig::check, |c| &mut c.staging);
            }
            _ => {
                let p = self.entry::<Schedule>(file, &label, item, Schedule::KASM_COLUMNS);
                self.keep(p, file, &label, check_schedule, |c| &mut c.schedules);
            }
        }
    }

    /// A clean config joins the set; a patched one does not, but its other fields are still checked (problems
    /// on the patched fields themselves are left out: they were reported already).
    /// `settings.kasm`: every problem in it reported (its semantic checks too, for the fields that
    /// parsed); `Err` when there was any.
    fn kasm_settings(&mut self, file: &str, item: Value) -> Result<KasmSettings, ()> {
        const LABEL: &str = "settings.kasm";
        let Some(p) = self.entry::<KasmSettings>(file, LABEL, item, &[]) else { return Err(()) };
        if p.touched.is_empty() {
            // Its semantic checks run with the settings' (as `kasm.*`).
            return Ok(p.value);
        }
        for (field, message) in check_kasm(&p.value) {
            if !p.touched.iter().any(|t| top_key(&field) == *t) {
                self.problem(file, Some(LABEL), Some(&field), message);
            }
        }
        Err(())
    }

    fn keep<T>(
        &mut self,
        parsed: Option<Parsed<T>>,
        file: &str,
        label: &str,
        check: fn(&T) -> Found,
        list: fn(&mut Self) -> &mut Vec<Located<T>>,
    ) {
        let Some(p) = parsed else { return };
        if p.touched.is_empty() {
            list(self).push(Located::new(file, label, p.value));
            return;
        }
        for (field, message) in check(&p.value) {
            if !p.touched.iter().any(|t| top_key(&field) == *t) {
                self.problem(file, Some(label), (!field.is_empty()).then_some(field.as_str()), message);
            }
        }
    }

    /// Splits off the `provider:` tag and returns the rest, reporting a missing or unknown tag.
    fn tagged<'a>(&mut self, file: &str, label: &str, item: Value, kinds: &[&'a str]) -> Option<(&'a str, Value)> {
        let Value::Mapping(mut m) = item else {
            self.problem(file, Some(label), None, "expected a mapping of fields");
            return None;
        };
        let expected = kinds.join(", ");
        match m.remove("provider") {
            None => {
                self.problem(file, Some(label), Some("provider"), format!("is required (one of: {expected})"));
                None
            }
            Some(Value::String(p)) => match kinds.iter().find(|k| **k == p) {
                Some(k) => Some((k, Value::Mapping(m))),
                None => {
                    let hint = did_you_mean(&p, kinds.iter().copied());
                    self.problem(
                        file,
                        Some(label),
                        Some("provider"),
                        format!("unknown provider `{p}`{hint} (one of: {expected})"),
                    );
                    None
                }
            },
            Some(_) => {
                self.problem(file, Some(label), Some("provider"), format!("expected a string (one of: {expected})"));
                None
            }
        }
    }

    fn provider_entry(&mut self, file: &str, label: &str, item: Value) -> Option<Parsed<VmProviderConfig>> {
        let kinds: Vec<&str> = ProviderKind::ALL.iter().map(|k| k.as_str()).collect();
        let (kind, rest) = self.tagged(file, label, item, &kinds)?;
        let columns = ProviderKind::from_name(kind).map(ProviderKind::kasm_columns).unwrap_or_default();
        Some(match kind {
            "aws" => self.entry(file, label, rest, columns)?.map(VmProviderConfig::Aws),
            "azure" => self.entry(file, label, rest, columns)?.map(VmProviderConfig::Azure),
            "digital_ocean" => self.entry(file, label, rest, columns)?.map(VmProviderConfig::DigitalOcean),
            "gcp" => self.entry(file, label, rest, columns)?.map(VmProviderConfig::Gcp),
            "harvester" => self.entry(file, label, rest, columns)?.map(VmProviderConfig::Harvester),
            "oci" => self.entry(file, label, rest, columns)?.map(VmProviderConfig::Oci),
            "nutanix" => self.entry(file, label, rest, columns)?.map(VmProviderConfig::Nutanix),
            "proxmox" => self.entry(file, label, rest, columns)?.map(VmProviderConfig::Proxmox),
            "vsphere" => self.entry(file, label, rest, columns)?.map(VmProviderConfig::Vsphere),
            "openstack" => self.entry(file, label, rest, columns)?.map(VmProviderConfig::Openstack),
            "kubevirt" => self.entry(file, label, rest, columns)?.map(VmProviderConfig::Kubevirt),
            other => unreachable!("provider kind {other} is in ProviderKind::ALL but not matched here"),
        })
    }

    fn dns_entry(&mut self, file: &str, label: &str, item: Value) -> Option<Parsed<DnsProviderConfig>> {
        let (kind, rest) = self.tagged(file, label, item, &DNS_PROVIDER_KINDS)?;
        let columns = dns_kasm_columns(kind).unwrap_or_default();
        Some(match kind {
            "aws" => self.entry(file, label, rest, columns)?.map(DnsProviderConfig::Aws),
            "azure" => self.entry(file, label, rest, columns)?.map(DnsProviderConfig::Azure),
            "digital_ocean" => self.entry(file, label, rest, columns)?.map(DnsProviderConfig::DigitalOcean),
            "gcp" => self.entry(file, label, rest, columns)?.map(DnsProviderConfig::Gcp),
            "oci" => self.entry(file, label, rest, columns)?.map(DnsProviderConfig::Oci),
            other => unreachable!("DNS provider kind {other} is in DNS_PROVIDER_KINDS but not matched here"),
        })
    }

    /// Deserializes one config, reporting every field that fails: a failing field is removed (a missing one
    /// given a stand-in value) and the config tried again, until it deserializes or nothing more can be learnt.
    /// The result is clean only when nothing failed; otherwise `touched` names the fields that were patched.
    /// Kasm's names for the fields (`columns`) are taken first ([`kasm_names::to_ours`]).
    fn entry<T: DeserializeOwned>(
        &mut self,
        file: &str,
        label: &str,
        item: Value,
        columns: &[KasmColumn],
    ) -> Option<Parsed<T>> {
        let Value::Mapping(mut map) = item else {
            self.problem(file, Some(label), None, "expected a mapping of fields");
            return None;
        };
        // Kasm columns that could not be taken are reported here; the fields they stood for are then known
        // to be missing, which is not reported again.
        let mut reported: Vec<String> = Vec::new();
        for p in kasm_names::to_ours(&mut map, columns, &self.kasm_ids).problems {
            self.problem(file, Some(label), Some(&p.field), p.message);
            reported.push(p.ours.map_or(p.field, str::to_string));
        }
        let attempt = |map: &Mapping| serde_path_to_error::deserialize::<_, T>(Value::Mapping(map.clone()));
        let mut touched: Vec<String> = Vec::new();
        let mut pending = None;
        // Terminates: every round patches or removes a top-level field not touched before (a field touched
        // twice ends the loop); the bound is only a backstop well above any config's field count.
        for _ in 0..256 {
            let err = match pending.take().map_or_else(|| attempt(&map), Err) {
                Ok(value) => {
                    touched.extend(reported);
                    return Some(Parsed { value, touched });
                }
                Err(e) => e,
            };
            let (field, message, key) = describe(&err.path().to_string(), &err.into_inner().to_string());
            let Some(target) = key else {
                self.problem(file, Some(label), field.as_deref(), message);
                return None;
            };
            match message.strip_prefix(MISSING) {
                // A field patched before and now missing (it was removed) was reported already.
                Some(missing) if touched.iter().chain(&reported).any(|t| t == missing) => {}
                Some(missing) => self.problem(file, Some(label), Some(missing), "is required"),
                None => self.problem(file, Some(label), field.as_deref(), message.clone()),
            }
            if touched.contains(&target) {
                return None;
            }
            touched.push(target.clone());
            if message.starts_with("unknown field") {
                map.remove(target.as_str());
                continue;
            }
            // Stand in a value of the right type (keeping the key, which may be an alias) so the fields after
            // this one are checked too; a value that fits nothing is removed instead.
            for stand_in in stand_ins() {
                map.insert(Value::String(target.clone()), stand_in);
                match attempt(&map) {
                    Ok(value) => {
                        touched.extend(reported);
                        return Some(Parsed { value, touched });
                    }
                    Err(e) => {
                        let (_, _, k) = describe(&e.path().to_string(), &e.inner().to_string());
                        if k.as_deref() != Some(target.as_str()) {
                            pending = Some(e);
                            break;
                        }
                    }
                }
            }
            if pending.is_none() {
                map.remove(target.as_str());
            }
        }
        None
    }

    fn check(&mut self) {
        let mut out: Vec<Problem> = Vec::new();
        let mut push = |file: &str, label: &str, found: Vec<(String, String)>| {
            for (field, message) in found {
                out.push(Problem {
                    file: file.to_string(),
                    config: Some(label.to_string()),
                    field: (!field.is_empty()).then_some(field),
                    message,
                });
            }
        };
        if self.settings.len() > 1 {
            let files: Vec<&str> = self.settings.iter().map(|s| s.file.as_str()).collect();
            for s in &self.settings[1..] {
                push(
                    &s.file,
                    "settings",
                    vec![(String::new(), format!("defined in more than one file ({})", files.join(", ")))],
                );
            }
        }
        for s in &self.settings {
            push(&s.file, &s.label, check_settings(&s.value));
        }
        for a in &self.autoscale {
            push(&a.file, &a.label, check_autoscale(&a.value));
        }
        for p in &self.providers {
            push(&p.file, &p.label, check_provider(&p.value));
        }
        for d in &self.dns {
            push(&d.file, &d.label, check_dns(&d.value));
        }
        for s in &self.schedules {
            push(&s.file, &s.label, check_schedule(&s.value));
        }
        for s in &self.staging {
            push(&s.file, &s.label, s.value.check());
        }

        // Duplicate names.
        duplicates(
            self.autoscale.iter().map(|l| (l, l.value.autoscale_config_name.as_str())),
            "autoscale_config_name",
            &mut push,
        );
        duplicates(self.providers.iter().map(|l| (l, l.value.name())), "name", &mut push);
        duplicates(self.dns.iter().map(|l| (l, l.value.name())), "name", &mut push);

        // References.
        let providers: HashMap<&str, &VmProviderConfig> =
            self.providers.iter().map(|l| (l.value.name(), &l.value)).collect();
        let autoscales: HashMap<&str, &AutoscaleConfig> =
            self.autoscale.iter().map(|l| (l.value.autoscale_config_name.as_str(), &l.value)).collect();
        for a in &self.autoscale {
            let mut found = Vec::new();
            let c = &a.value;
            if !self.known_providers.contains(&c.vm_provider_config) {
                found.push((
                    "vm_provider_config".into(),
                    format!("no VM-provider config named `{}`", c.vm_provider_config),
                ));
            }
            if let Some(d) = &c.dns_provider_config
                && !self.known_dns.contains(d)
            {
                found.push(("dns_provider_config".into(), format!("no DNS-provider config named `{d}`")));
            }
            if c.autoscale_type == AutoscaleType::Server
                && let Some(p) = providers.get(c.vm_provider_config.as_str())
                && p.common().retrieves_windows_password()
                && c.connection_password.is_some()
            {
                found.push((
                    "connection_password".into(),
                    format!("is set, so the Windows password retrieved by `{}` would not be used", p.name()),
                ));
            }
            push(&a.file, &a.label, found);
        }
        for s in &self.schedules {
            let mut found = Vec::new();
            let name = s.value.autoscale_config.as_str();
            if !self.known_autoscale.contains(name) {
                found.push(("autoscale_config".into(), format!("no autoscale config named `{name}`")));
            } else if let Some(p) = autoscales.get(name).and_then(|a| providers.get(a.vm_provider_config.as_str()))
                && s.value.minimum_instances > p.max_instances()
            {
                found.push((
                    "minimum_instances".into(),
                    format!(
                        "{} is above max_instances {} of VM-provider config `{}`",
                        s.value.minimum_instances,
                        p.max_instances(),
                        p.name()
                    ),
                ));
            }
            push(&s.file, &s.label, found);
        }
        // Staging configs: the autoscale config exists; a Docker Agent one needs the image's size; one
        // staging config per zone and image (Kasm's unique key).
        let mut staged: HashMap<(String, String), &str> = HashMap::new();
        for s in &self.staging {
            let mut found = Vec::new();
            let v = &s.value;
            let name = v.autoscale_config.as_str();
            match autoscales.get(name) {
                None if !self.known_autoscale.contains(name) => {
                    found.push(("autoscale_config".into(), format!("no autoscale config named `{name}`")))
                }
                None => {}
                Some(a) => {
                    if a.autoscale_type == AutoscaleType::DockerAgent && v.image_size() == Default::default() {
                        found.push((
                            "image_cores".into(),
                            format!(
                                "`{name}` is a Docker Agent config: give the staged image's size (image_cores, image_memory_mb, image_gpus as Kasm's image has them), or its sessions count as taking nothing"
                            ),
                        ));
                    }
                    let zone = v.zone_id.clone().unwrap_or_else(|| a.zone_id.clone());
                    let key = (kasm_names::norm_id(&zone), kasm_names::norm_id(&v.image_id));
                    if let Some(other) = staged.insert(key, s.label.as_str()) {
                        found.push((
                            "image_id".into(),
                            format!("{other} stages the same image in the same zone (Kasm allows one staging config per zone and image)"),
                        ));
                    }
                }
            }
            push(&s.file, &s.label, found);
        }

        // Conflicts between two provider configs (e.g. overlapping Proxmox VMID ranges on one host).
        for (i, la) in self.providers.iter().enumerate() {
            for lb in &self.providers[..i] {
                if let Some(conflict) = la.value.common().conflicts_with(&lb.value) {
                    push(&la.file, &la.label, vec![conflict]);
                }
            }
        }
        self.problems.extend(out);
    }
}

fn duplicates<'a, T: 'a>(
    items: impl Iterator<Item = (&'a Located<T>, &'a str)>,
    field: &str,
    push: &mut impl FnMut(&str, &str, Vec<(String, String)>),
) {
    let mut first: HashMap<&str, &str> = HashMap::new();
    for (l, name) in items {
        if name.is_empty() {
            push(&l.file, &l.label, vec![(field.to_string(), "must not be empty".into())]);
            continue;
        }
        match first.get(name) {
            Some(f) => {
                push(&l.file, &l.label, vec![(field.to_string(), format!("duplicate name (first defined in {f})"))])
            }
            None => {
                first.insert(name, &l.file);
            }
        }
    }
}

const MISSING: &str = "missing field: ";

/// Turns serde's path and message into (field path, message, top-level key to remove before retrying).
fn describe(path: &str, message: &str) -> (Option<String>, String, Option<String>) {
    let path = if path == "." { "" } else { path };
    // An error inside a value read through an intermediate carries its inner path (`json_text::at`).
    let joined;
    let (path, message) = match crate::config::json_text::split_at_path(message) {
        Some((inner, rest)) => {
            joined = match (path.is_empty(), inner.starts_with('[')) {
                (true, _) => inner.to_string(),
                (false, true) => format!("{path}{inner}"),
                (false, false) => format!("{path}.{inner}"),
            };
            (joined.as_str(), rest)
        }
        None => (path, message),
    };
    let join = |p: &str, f: &str| if p.is_empty() { f.to_string() } else { format!("{p}.{f}") };
    if let Some(rest) = message.strip_prefix("missing field `") {
        let f = rest.split('`').next().unwrap_or(rest);
        let full = join(path, f);
        let key = if path.is_empty() { f.to_string() } else { top_key(path) };
        return (Some(full.clone()), format!("{MISSING}{full}"), Some(key));
    }
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let f = rest.split('`').next().unwrap_or(rest);
        // serde_path_to_error may or may not include the unknown key in the path.
        let parent = path.strip_suffix(f).map(|p| p.trim_end_matches('.')).unwrap_or(path);
        let expected: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        let hint = did_you_mean(f, expected.iter().copied());
        let top = if parent.is_empty() { f.to_string() } else { top_key(parent) };
        return (Some(join(parent, f)), format!("unknown field{hint}"), Some(top));
    }
    let top = (!path.is_empty()).then(|| top_key(path));
    if let Some(name) = message.strip_prefix("data did not match any variant of untagged enum ") {
        let name = name.trim();
        let expected = UNTAGGED_FORMS.iter().find(|(n, _)| *n == name).map_or("one of its accepted forms", |(_, e)| e);
        return ((!path.is_empty()).then(|| path.to_string()), format!("expected {expected}"), top);
    }
    let message = message
        .replace("expected u64", "expected a whole number ≥ 0")
        .replace("expected u32", "expected a whole number ≥ 0")
        .replace("expected u16", "expected a whole number in 0..=65535")
        .replace("expected f64", "expected a number");
    ((!path.is_empty()).then(|| path.to_string()), message, top)
}

/// What each untagged enum of the config model accepts, for a message naming the forms instead of
/// serde's "did not match any variant of untagged enum X".
const UNTAGGED_FORMS: &[(&str, &str)] = &[(
    "AzureImageReference",
    "{publisher, offer, sku, version} (a marketplace image) or {id} (an image by resource id), with no other keys",
)];

fn top_key(path: &str) -> String {
    path.split(['.', '[']).next().unwrap_or(path).to_string()
}

fn non_negative(found: &mut Found, v: f64, field: &str) {
    need(found, v.is_finite() && v >= 0.0, field, "must be a number ≥ 0");
    need(found, !v.is_finite() || v <= bounds::AMOUNT_MAX, field, format!("must be at most {}", bounds::AMOUNT_MAX));
}

/// The ranges of durations and counts (issue 21): beyond them a value is a typo or an attack, never a
/// policy, and every one of them is far from where arithmetic on it could overflow.
pub mod bounds {
    /// `provision_timeout`, `agent_missing_after`, `agent_dead_after`: at most 7 days, in seconds.
    pub const TIMEOUT_MAX: u64 = 7 * 86_400;
    /// `downscale_backoff`: at most 1 day, in seconds.
    pub const BACKOFF_MAX: u64 = 86_400;
    /// `evaluation_interval`: at most 1 day, in seconds.
    pub const INTERVAL_MAX: u64 = 86_400;
    /// `provisioning_workers`.
    pub const WORKERS_MAX: u64 = 256;
    /// `webhook.max_body_bytes`: 16 MiB.
    pub const BODY_MAX: u64 = 16 << 20;
    /// Standby and per-VM amounts (cores, memory MB or GB, GPUs).
    pub const AMOUNT_MAX: f64 = 1e9;
    /// Session and instance counts (`minimum_pool_standby_sessions`, `max_instances`, ...).
    pub const COUNT_MAX: u64 = 100_000;
}

/// `min <= v <= max`, else an error naming the field and the range in `unit` (`"seconds"`, or `""`).
fn within(found: &mut Found, v: u64, min: u64, max: u64, field: &str, unit: &str) {
    let unit = if unit.is_empty() { String::new() } else { format!(" {unit}") };
    need(found, (min..=max).contains(&v), field, format!("must be between {min} and {max}{unit}"));
}

fn check_settings(s: &Settings) -> Found {
    let mut f = Found::new();
    let id_ok = !s.deployment_id.is_empty()
        && s.deployment_id.len() <= 63
        && s.deployment_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    need(
        &mut f,
        id_ok,
        "deployment_id",
        "must be 1-63 letters, digits, `-` or `_` (it is written as a tag/label on every VM)",
    );
    within(&mut f, s.provision_timeout, 60, bounds::TIMEOUT_MAX, "provision_timeout", "seconds");
    within(&mut f, s.agent_missing_after, 1, bounds::TIMEOUT_MAX, "agent_missing_after", "seconds");
    within(&mut f, s.agent_dead_after, 1, bounds::TIMEOUT_MAX, "agent_dead_after", "seconds");
    need(
        &mut f,
        s.agent_dead_after >= s.agent_missing_after,
        "agent_dead_after",
        format!("must not be shorter than agent_missing_after ({} s)", s.agent_missing_after),
    );
    within(&mut f, s.provisioning_workers.into(), 1, bounds::WORKERS_MAX, "provisioning_workers", "");
    within(&mut f, s.evaluation_interval, 1, bounds::INTERVAL_MAX, "evaluation_interval", "seconds");
    if let Some(w) = &s.webhook {
        within(&mut f, w.max_body_bytes as u64, 1, bounds::BODY_MAX, "webhook.max_body_bytes", "bytes");
    }
    if let Some(k) = &s.kasm {
        f.extend(check_kasm(k).into_iter().map(|(field, m)| (format!("kasm.{field}"), m)));
    }
    f
}

fn check_kasm(k: &KasmSettings) -> Found {
    let mut f = Found::new();
    match url::Url::parse(&k.url) {
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {}
        _ => f.push(("url".into(), "must be an http(s) URL, e.g. https://kasm.example.com".into())),
    }
    need(&mut f, !k.api_key.trim().is_empty(), "api_key", "must not be empty");
    f
}

fn check_autoscale(c: &AutoscaleConfig) -> Found {
    let mut f = Found::new();
    need(&mut f, !c.server_pool_id.trim().is_empty(), "server_pool_id", "must not be empty");
    need(&mut f, !c.zone_id.trim().is_empty(), "zone_id", "must not be empty");
    within(&mut f, c.downscale_backoff, 0, bounds::BACKOFF_MAX, "downscale_backoff", "seconds");
    for (v, n) in [
        (c.minimum_pool_standby_sessions, "minimum_pool_standby_sessions"),
        (c.max_simultaneous_sessions_per_server, "max_simultaneous_sessions_per_server"),
        (c.max_simultaneous_users, "max_simultaneous_users"),
    ] {
        need(&mut f, u64::from(v) <= bounds::COUNT_MAX, n, format!("must be at most {}", bounds::COUNT_MAX));
    }
    for (v, n) in [
        (c.standby_cores, "standby_cores"),
        (c.standby_gpus, "standby_gpus"),
        (c.standby_memory_mb, "standby_memory_mb"),
        (c.agent_cores_override, "agent_cores_override"),
        (c.agent_gpus_override, "agent_gpus_override"),
        (c.agent_memory_override_gb, "agent_memory_override_gb"),
    ] {
        non_negative(&mut f, v, n);
    }
    match c.autoscale_type {
        AutoscaleType::Server => {
            need(
                &mut f,
                c.connection_type.is_some(),
                "connection_type",
                "is required for server autoscale configs (KasmVNC, RDP, VNC or SSH)",
            );
            need(
                &mut f,
                c.max_simultaneous_sessions_per_server >= 1,
                "max_simultaneous_sessions_per_server",
                "must be at least 1",
            );
            need(&mut f, c.max_simultaneous_users >= 1, "max_simultaneous_users", "must be at least 1");
            for (v, n) in [
                (c.standby_cores, "standby_cores"),
                (c.standby_gpus, "standby_gpus"),
                (c.standby_memory_mb, "standby_memory_mb"),
            ] {
                need(
                    &mut f,
                    v == 0.0,
                    n,
                    "only applies to docker_agent configs; server configs scale on minimum_pool_standby_sessions",
                );
            }
        }
        AutoscaleType::DockerAgent => {
            need(
                &mut f,
                c.minimum_pool_standby_sessions == 0,
                "minimum_pool_standby_sessions",
                "only applies to server configs; docker_agent configs scale on standby_cores/standby_memory_mb/standby_gpus",
            );
        }
    }
    if let Some(port) = c.connection_port {
        need(&mut f, port >= 1, "connection_port", "must be a port in 1..=65535");
    }
    if c.register_dns {
        need(&mut f, c.dns_provider_config.is_some(), "dns_provider_config", "is required when register_dns is on");
        need(
            &mut f,
            c.base_domain_name.as_deref().is_some_and(|d| !d.trim().is_empty()),
            "base_domain_name",
            "is required when register_dns is on",
        );
    } else if c.dns_provider_config.is_some() {
        f.push((
            "dns_provider_config".into(),
            "is set but register_dns is off, so no record would be registered".into(),
        ));
    }
    if c.ad_create_machine_record {
        need(&mut f, c.ldap_id.is_some(), "ldap_id", "is required when ad_create_machine_record is on");
    }
    if let Some(days) = c.rotate_servers_in_days.filter(|d| *d > 0) {
        need(
            &mut f,
            days <= MAX_ROTATE_DAYS,
            "rotate_servers_in_days",
            format!("must be at most {MAX_ROTATE_DAYS} days (0 or absent = no rotation)"),
        );
        let period = days as u64 * 1440;
        need(
            &mut f,
            (c.rotate_servers_pre_warm_minutes.unwrap_or(0) as u64) < period,
            "rotate_servers_pre_warm_minutes",
            format!(
                "must be shorter than the rotation period (rotate_servers_in_days {days} = {period} minutes), or every VM would need a replacement as soon as it exists"
            ),
        );
    }
    f
}

/// The longest rotation period accepted (ten years): a larger value is a typo, not a policy.
const MAX_ROTATE_DAYS: u32 = 3650;

fn check_schedule(s: &Schedule) -> Found {
    let mut f = Found::new();
    need(&mut f, !s.days_of_the_week.is_empty(), "days_of_the_week", "must list at least one day");
    let mut seen = HashSet::new();
    for d in &s.days_of_the_week {
        if !seen.insert(*d) {
            f.push(("days_of_the_week".into(), format!("{} is listed twice", serde_name(d))));
        }
    }
    // start = end is valid: Kasm reads it as "from the start until midnight" (engine docs, "Schedules").
    need(&mut f, s.start_minute().is_some(), "active_start_time", "must be a time HH:MM or HH:MM:SS (00:00 to 23:59)");
    need(
        &mut f,
        s.end_minute().is_some(),
        "active_end_time",
        "must be a time HH:MM or HH:MM:SS (00:00 to 23:59, or 24:00 for the end of the day)",
    );
    if crate::engine::schedule::time_zone(&s.timezone).is_none() {
        let names = crate::engine::schedule::time_zone_names();
        let hint = did_you_mean(&s.timezone, names.iter().map(String::as_str));
        let hint = if hint.is_empty() { " (e.g. UTC, Europe/Berlin, America/New_York)".to_string() } else { hint };
        f.push(("timezone".into(), format!("`{}` is not an IANA timezone name{hint}", s.timezone)));
    }
    f
}

fn check_dns(d: &DnsProviderConfig) -> Found {
    let mut f = Found::new();
    let min_ttl = if matches!(d, DnsProviderConfig::DigitalOcean(_)) { 30 } else { 1 };
    need(&mut f, d.ttl() >= min_ttl, "ttl", format!("must be at least {min_ttl} seconds"));
    if let DnsProviderConfig::Aws(c) = d {
        need(
            &mut f,
            c.aws_access_key_id.is_some() == c.aws_secret_access_key.is_some(),
            "aws_secret_access_key",
            "aws_access_key_id and aws_secret_access_key must be set together (or both left out for the default credentials)",
        );
    }
    if let DnsProviderConfig::Azure(c) = d
        && let Some(u) = c.authority_url.as_deref()
    {
        need(&mut f, is_http_url(u), "authority_url", "must be an http(s)://host[:port] URL");
    }
    if let DnsProviderConfig::Oci(c) = d {
        f.extend(c.check());
    }
    check_endpoint(&mut f, d.endpoint());
    f
}

fn check_provider(p: &VmProviderConfig) -> Found {
    let mut f = Found::new();
    let common = p.common();
    within(&mut f, common.max_instances().into(), 1, bounds::COUNT_MAX, "max_instances", "");
    check_script(&mut f, common.startup_script());
    check_endpoint(&mut f, common.endpoint());
    f.extend(common.check());
    f
}

/// `endpoint_url` and `ca_bundle` (our extensions on every provider and DNS config).
fn check_endpoint(f: &mut Found, endpoint: crate::config::provider::Endpoint<'_>) {
    if let Some(u) = endpoint.url {
        need(f, is_http_url(u), "endpoint_url", "must be an http(s)://host[:port] URL");
    }
    if let Some(pem) = endpoint.ca_bundle {
        need(f, is_pem_certificates(pem), "ca_bundle", "must be PEM certificates (-----BEGIN CERTIFICATE----- ...)");
    }
}

/// Renders the template with every placeholder set (and again with the optional ones `None`), so an
/// unknown `{name}` or a stray brace is reported now, not when a VM is provisioned.
fn check_script(f: &mut Found, template: &str) {
    if let Err(e) = crate::script::check(template) {
        f.push(("startup_script".into(), e.to_string()));
    }
}

#[cfg(test)]
mod tests;
