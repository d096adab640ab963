//! `kasm-autoscale import`: a running Kasm's autoscale configs, VM-provider and DNS-provider configs, server
//! pools and schedules, as its admin API answers them, mapped to a config file of ours. Pure functions over
//! the answers; the CLI makes the calls ([`IMPORT_CALLS`], through [`super::KasmClient::read_call`]).
//!
//! What the answers look like is Kasm 1.15's API (`admin_api.py` and the `@Jsonable(...)` lists of
//! `data/model.py` in `kasmweb-decompilation/api`; fixtures in `fixtures/import/`). Kasm 1.19's answers are
//! not public: they are read with both spellings of every field (the 1.19 database names of
//! [`crate::config::kasm_names`] and 1.15's), and a record whose provider or name cannot be told is an
//! error naming the call, not a guess.
//!
//! - Names and units become ours through the same column tables config files use; provider configs keep
//!   their Kasm name, and references by Kasm id become references by name.
//! - **Secrets are never written**: every field Kasm masks (`**********`, its `sanitize=[...]` fields) and
//!   every field our model holds as a secret reference becomes `env:KASM_IMPORT_<CONFIG>_<FIELD>`
//!   (upper case, anything but letters and digits `_`); [`Imported::secret_vars`] lists them.
//! - Nothing is dropped silently: every Kasm field with no place here is listed in
//!   [`Imported::not_imported`] with the reason, and every field we need that Kasm has no value for is
//!   given a placeholder that validates and listed in [`Imported::fill_in`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use schemars::JsonSchema;
use serde_json::Value as Json;
use serde_yaml_ng::{Mapping, Value};

use super::KasmError;
use super::client::Call;
use crate::config::dns::{
    AzureDnsConfig, DNS_PROVIDER_KINDS, DigitalOceanDnsConfig, GcpDnsConfig, OciDnsConfig, Route53DnsConfig,
    dns_kasm_columns,
};
use crate::config::kasm_names::{self, KasmColumn, KasmColumns, KasmIds, MapsTo, Target};
use crate::config::providers::*;
use crate::config::{
    AutoscaleConfig, DnsProviderConfig, KasmAuthMode, Problem, ProviderKind, Schedule, VmProviderConfig, validate_text,
};

/// A call `import` makes: the list its answer carries and the Kasm permission (`JWT_AUTHORIZATION`) the API
/// key needs for it, as the call's `@Authenticated(requested_actions=[...])` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportCall {
    /// The call.
    pub call: Call,
    /// The key of the list in its answer.
    pub list: &'static str,
    /// Kasm's permission, e.g. `AUTOSCALE_VIEW`.
    pub permission: &'static str,
    /// Kasm's description of that permission.
    pub permission_text: &'static str,
}

/// The calls `import` makes, in order (`get_schedules` once per autoscale config, with
/// `target_autoscale_config_id`).
pub const IMPORT_CALLS: [ImportCall; 5] = [
    ImportCall {
        call: Call::GetAutoscaleConfigs,
        list: "autoscale_configs",
        permission: "AUTOSCALE_VIEW",
        permission_text: "View auto scale configurations.",
    },
    ImportCall {
        call: Call::GetVmProviderConfigs,
        list: "vm_provider_configs",
        permission: "VM_PROVIDER_VIEW",
        permission_text: "View VM Provider configurations.",
    },
    ImportCall {
        call: Call::GetDnsProviderConfigs,
        list: "dns_provider_configs",
        permission: "DNS_PROVIDERS_VIEW",
        permission_text: "View DNS provider configurations.",
    },
    ImportCall {
        call: Call::GetServerPools,
        list: "server_pools",
        permission: "SERVER_POOLS_VIEW",
        permission_text: "View server pools.",
    },
    ImportCall {
        call: Call::GetSchedules,
        list: "schedules",
        permission: "AUTOSCALE_SCHEDULE_VIEW",
        permission_text: "View an auto scale schedule.",
    },
];

/// The import call named `name` (as [`Call::name`] spells it).
pub fn import_call(name: &str) -> Option<&'static ImportCall> {
    IMPORT_CALLS.iter().find(|c| c.call.name() == name)
}

/// The list `ic.list` of an answer to `ic.call`; a missing or mistyped list is an error naming the call.
pub fn answer_list(ic: &ImportCall, answer: &Json) -> Result<Vec<Json>, KasmError> {
    let parse = |message: String| KasmError::Parse { call: ic.call.name().into(), message };
    match answer.get(ic.list) {
        Some(Json::Array(items)) => {
            if let Some(i) = items.iter().position(|r| !r.is_object()) {
                return Err(parse(format!("record {i} of `{}` is not an object", ic.list)));
            }
            Ok(items.clone())
        }
        Some(_) => Err(parse(format!("`{}` is not a list", ic.list))),
        None => Err(parse(format!("the answer has no `{}` list", ic.list))),
    }
}

/// What a Kasm error on an import call means for the operator: a 401 is a permission the key lacks (named
/// as Kasm names it), a 403 a key Kasm refuses (wrong key or secret, or the Developer API not licensed).
pub fn explain(e: &KasmError) -> String {
    let (call, message) = match e {
        KasmError::Auth { call, message } | KasmError::Permission { call, message, .. } => (call, message),
        _ => return e.to_string(),
    };
    let permission = import_call(call).map(|c| format!("{} (\"{}\")", c.permission, c.permission_text));
    let lower = message.to_ascii_lowercase();
    // Kasm answers an expired key with 401 "Access has expired": a refused key too, not a permission.
    let refused = message.starts_with("HTTP 403")
        || lower.contains("access denied")
        || lower.contains("licensed")
        || lower.contains("expired");
    if refused {
        return format!(
            "Kasm refused the API key on {call} ({message}): the key or its secret is wrong, the key has expired, \
             or Kasm's Developer API is not licensed"
        );
    }
    match permission {
        Some(p) => format!(
            "Kasm answered {call} with {message}: the API key lacks the permission {p}; give it in the key's \
             Permissions tab (Settings → Developers)"
        ),
        None => format!("Kasm answered {call} with {message}: the API key lacks a permission this call needs"),
    }
}

/// Kasm's answers, as the lists of records they carry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KasmAnswers {
    /// `get_autoscale_configs`.
    pub autoscale_configs: Vec<Json>,
    /// `get_vm_provider_configs`.
    pub vm_provider_configs: Vec<Json>,
    /// `get_dns_provider_configs`.
    pub dns_provider_configs: Vec<Json>,
    /// `get_server_pools`.
    pub server_pools: Vec<Json>,
    /// `get_schedules`, of every autoscale config.
    pub schedules: Vec<Json>,
}

/// How the imported file reaches Kasm: its `settings.kasm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportTarget {
    /// The manager's base URL.
    pub url: String,
    /// The API key (not secret on its own).
    pub api_key: String,
    /// The environment variable holding the key's secret (`settings.kasm.api_key_secret: env:<it>`).
    pub api_key_secret_env: String,
    /// How the key is sent.
    pub auth_mode: KasmAuthMode,
    /// Whether the manager's certificate is verified.
    pub verify_tls: bool,
}

/// A secret the imported file refers to: set `var` before using the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVar {
    /// The environment variable, `KASM_IMPORT_<CONFIG>_<FIELD>`.
    pub var: String,
    /// The config it belongs to.
    pub config: String,
    /// Our field.
    pub field: String,
}

/// The imported config file.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The file: the configs, then the lists below as comments.
    pub yaml: String,
    /// The secrets to set, one environment variable each.
    pub secret_vars: Vec<SecretVar>,
    /// `<config>.<field>: <why>` for every Kasm field not imported.
    pub not_imported: Vec<String>,
    /// `<config>.<field>: <why>` for every placeholder to replace with a real value.
    pub fill_in: Vec<String>,
    /// Other things worth knowing (differences in meaning).
    pub notes: Vec<String>,
    /// What validation finds in the file (empty = `kasm-autoscale validate` accepts it).
    pub problems: Vec<Problem>,
}

/// The placeholder of a value Kasm does not have: it validates as a name, and says what it is.
pub const FILL_IN: &str = "CHANGE-ME";

/// The deployment id the file is given until the operator picks one.
pub const DEPLOYMENT_ID_PLACEHOLDER: &str = "kasm-import-CHANGE-ME";

/// Maps Kasm's answers to a config file of ours. `origin` names the file in validation problems. Fails only
/// when a record cannot be told apart (no name, no provider): an error naming the call and the record.
pub fn import(answers: &KasmAnswers, target: &ImportTarget, origin: &str) -> Result<Imported, KasmError> {
    let mut im = Importer::default();
    let providers = im.index_providers(&answers.vm_provider_configs)?;
    let dns = im.index_dns(&answers.dns_provider_configs)?;
    let autoscale = im.index_autoscale(&answers.autoscale_configs)?;
    let pools = pools(&answers.server_pools);

    let mut doc = Mapping::new();
    doc.insert("settings".into(), im.settings(target));
    let autoscale_out: Vec<Value> = autoscale.iter().map(|r| im.autoscale(r, &pools)).collect();
    let providers_out: Vec<Value> = providers.iter().map(|r| im.provider(r)).collect();
    let dns_out: Vec<Value> = dns.iter().map(|r| im.dns(r)).collect();
    let schedules_out: Vec<Value> = answers.schedules.iter().enumerate().map(|(i, s)| im.schedule(i, s)).collect();
    for (key, list) in [
        ("autoscale_configs", autoscale_out),
        ("vm_provider_configs", providers_out),
        ("dns_provider_configs", dns_out),
        ("schedules", schedules_out),
    ] {
        if !list.is_empty() {
            doc.insert(key.into(), Value::Sequence(list));
        }
    }
    let body = serde_yaml_ng::to_string(&Value::Mapping(doc))
        .map_err(|e| KasmError::Parse { call: "import".into(), message: format!("cannot write YAML: {e}") })?;
    let yaml = im.render(&target.url, &body);
    let problems = validate_text(&yaml, origin).1;
    Ok(Imported {
        yaml,
        secret_vars: im.secret_vars,
        not_imported: im.not_imported,
        fill_in: im.fill_in,
        notes: im.notes,
        problems,
    })
}

// ---------------------------------------------------------------------------------------------------------
// Field facts of our config structs, from their JSON Schema (so they follow the structs).

#[derive(Debug, Default)]
struct Shape {
    fields: BTreeSet<String>,
    required: BTreeSet<String>,
    secrets: BTreeSet<String>,
    strings: BTreeSet<String>,
}

fn shape<T: JsonSchema>() -> Shape {
    let schema = serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default();
    let mut s = Shape::default();
    if let Some(props) = schema.get("properties").and_then(Json::as_object) {
        for (name, p) in props {
            s.fields.insert(name.clone());
            if refers_to_secret(p) {
                s.secrets.insert(name.clone());
            }
            if p.get("type").and_then(Json::as_str) == Some("string") {
                s.strings.insert(name.clone());
            }
        }
    }
    if let Some(req) = schema.get("required").and_then(Json::as_array) {
        s.required.extend(req.iter().filter_map(Json::as_str).map(str::to_string));
    }
    s
}

fn refers_to_secret(v: &Json) -> bool {
    match v {
        Json::Object(m) => {
            m.get("$ref").and_then(Json::as_str).is_some_and(|r| r.ends_with("/SecretRef"))
                || m.values().any(refers_to_secret)
        }
        Json::Array(a) => a.iter().any(refers_to_secret),
        _ => false,
    }
}

fn provider_shape(kind: ProviderKind) -> Shape {
    match kind {
        ProviderKind::Aws => shape::<AwsConfig>(),
        ProviderKind::Azure => shape::<AzureConfig>(),
        ProviderKind::DigitalOcean => shape::<DigitalOceanConfig>(),
        ProviderKind::Gcp => shape::<GcpConfig>(),
        ProviderKind::Harvester => shape::<HarvesterConfig>(),
        ProviderKind::Oci => shape::<OciConfig>(),
        ProviderKind::Nutanix => shape::<NutanixConfig>(),
        ProviderKind::Proxmox => shape::<ProxmoxConfig>(),
        ProviderKind::Vsphere => shape::<VsphereConfig>(),
        ProviderKind::Openstack => shape::<OpenstackConfig>(),
        ProviderKind::Kubevirt => shape::<KubevirtConfig>(),
    }
}

fn dns_shape(kind: &str) -> Shape {
    match kind {
        "aws" => shape::<Route53DnsConfig>(),
        "azure" => shape::<AzureDnsConfig>(),
        "digital_ocean" => shape::<DigitalOceanDnsConfig>(),
        "gcp" => shape::<GcpDnsConfig>(),
        _ => shape::<OciDnsConfig>(),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Records.

/// Kasm's `is_sanitized`: a value of asterisks only is a masked secret.
fn is_masked(v: &Value) -> bool {
    v.as_str().is_some_and(|s| !s.trim().is_empty() && s.trim().chars().all(|c| c == '*'))
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Sequence(s) => s.is_empty(),
        Value::Mapping(m) => m.is_empty(),
        _ => false,
    }
}

fn text(v: Option<&Json>) -> Option<String> {
    match v? {
        Json::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn to_yaml(v: &Json) -> Mapping {
    match serde_yaml_ng::to_value(v) {
        Ok(Value::Mapping(m)) => m,
        _ => Mapping::new(),
    }
}

/// One provider (or DNS-provider) record, told apart.
#[derive(Debug)]
struct Record<K> {
    kind: K,
    name: String,
    fields: Mapping,
}

/// `KASM_IMPORT_<CONFIG>_<FIELD>`, upper case, anything but letters and digits `_`.
pub fn secret_var(config: &str, field: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
    };
    format!("KASM_IMPORT_{}_{}", clean(config), clean(field))
}

#[derive(Debug, Default)]
struct Importer {
    ids: KasmIds,
    names: BTreeSet<(String, String)>,
    secret_vars: Vec<SecretVar>,
    vars: BTreeSet<String>,
    not_imported: Vec<String>,
    fill_in: Vec<String>,
    notes: Vec<String>,
}

impl Importer {
    /// A name unique within `list` (our validation requires it; Kasm does not).
    fn unique(&mut self, list: &str, name: &str) -> String {
        let mut candidate = name.to_string();
        let mut n = 2;
        while !self.names.insert((list.to_string(), candidate.clone())) {
            candidate = format!("{name}-{n}");
            n += 1;
        }
        if candidate != name {
            self.notes.push(format!("{candidate}: renamed from `{name}`, a name another config in Kasm has too"));
        }
        candidate
    }

    fn var(&mut self, config: &str, field: &str) -> String {
        let base = secret_var(config, field);
        let mut var = base.clone();
        let mut n = 2;
        while !self.vars.insert(var.clone()) {
            var = format!("{base}_{n}");
            n += 1;
        }
        self.secret_vars.push(SecretVar { var: var.clone(), config: config.into(), field: field.into() });
        var
    }

    fn index_providers(&mut self, records: &[Json]) -> Result<Vec<Record<ProviderKind>>, KasmError> {
        let call = Call::GetVmProviderConfigs.name();
        let mut out = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let parse = |message: String| KasmError::Parse { call: call.into(), message };
            let Some(kind_name) = text(r.get("vm_provider_name")) else {
                return Err(parse(format!("record {i} has no vm_provider_name: its provider cannot be told")));
            };
            let name = text(r.get("vm_provider_config_name")).or_else(|| text(r.get("config_name")));
            let Some(name) = name else {
                return Err(parse(format!("record {i} ({kind_name}) has no config_name")));
            };
            let Some(kind) = ProviderKind::from_name(&kind_name) else {
                self.not_imported
                    .push(format!("{name}: a `{kind_name}` VM-provider config; kasm-autoscale has no such provider"));
                continue;
            };
            let name = self.unique("vm_provider_configs", &name);
            let id = text(r.get("vm_provider_config_id")).or_else(|| own_id(r, kind.kasm_columns()));
            if let Some(id) = id {
                self.ids.insert(Target::VmProvider(kind.as_str()), &id, &name);
            }
            out.push(Record { kind, name, fields: to_yaml(r) });
        }
        Ok(out)
    }

    fn index_dns(&mut self, records: &[Json]) -> Result<Vec<Record<&'static str>>, KasmError> {
        let call = Call::GetDnsProviderConfigs.name();
        let mut out = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let parse = |message: String| KasmError::Parse { call: call.into(), message };
            let Some(kind_name) = text(r.get("dns_provider_name")) else {
                return Err(parse(format!("record {i} has no dns_provider_name: its provider cannot be told")));
            };
            let name = text(r.get("dns_provider_config_name")).or_else(|| text(r.get("config_name")));
            let Some(name) = name else {
                return Err(parse(format!("record {i} ({kind_name}) has no config_name")));
            };
            let Some(kind) = DNS_PROVIDER_KINDS.iter().copied().find(|k| *k == kind_name) else {
                self.not_imported.push(format!(
                    "{name}: a `{kind_name}` DNS-provider config; kasm-autoscale has no such DNS provider"
                ));
                continue;
            };
            let name = self.unique("dns_provider_configs", &name);
            let columns = dns_kasm_columns(kind).unwrap_or_default();
            if let Some(id) = text(r.get("dns_provider_config_id")).or_else(|| own_id(r, columns)) {
                self.ids.insert(Target::DnsProvider(kind), &id, &name);
            }
            out.push(Record { kind, name, fields: to_yaml(r) });
        }
        Ok(out)
    }

    fn index_autoscale(&mut self, records: &[Json]) -> Result<Vec<Record<()>>, KasmError> {
        let mut out = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let Some(name) = text(r.get("autoscale_config_name")) else {
                return Err(KasmError::Parse {
                    call: Call::GetAutoscaleConfigs.name().into(),
                    message: format!("record {i} has no autoscale_config_name"),
                });
            };
            let name = self.unique("autoscale_configs", &name);
            if let Some(id) = text(r.get("autoscale_config_id")) {
                self.ids.insert(Target::Autoscale, &id, &name);
            }
            out.push(Record { kind: (), name, fields: to_yaml(r) });
        }
        Ok(out)
    }

    fn settings(&mut self, t: &ImportTarget) -> Value {
        self.fill_in.push(format!(
            "settings.deployment_id: `{DEPLOYMENT_ID_PLACEHOLDER}`; pick this installation's id (every VM is \
             tagged with it, and only VMs carrying it are ever deleted)"
        ));
        let kasm: Mapping = [
            ("url", Value::from(t.url.as_str())),
            ("api_key", Value::from(t.api_key.as_str())),
            ("api_key_secret", Value::from(format!("env:{}", t.api_key_secret_env))),
            ("auth_mode", Value::from(if t.auth_mode == KasmAuthMode::Basic { "basic" } else { "body" })),
            ("verify_tls", Value::from(t.verify_tls)),
        ]
        .into_iter()
        .map(|(k, v)| (Value::from(k), v))
        .collect();
        let s: Mapping = [("deployment_id", Value::from(DEPLOYMENT_ID_PLACEHOLDER)), ("kasm", Value::Mapping(kasm))]
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect();
        Value::Mapping(s)
    }

    /// Takes the fields of one record into ours: masked and secret fields become references, Kasm's names
    /// and units ours, fields without a place are listed. Returns the mapping (our names).
    fn take(&mut self, config: &str, mut m: Mapping, columns: &[KasmColumn], shape: &Shape) -> Mapping {
        let ours_of = |key: &str| -> Option<&'static str> {
            columns.iter().find(|c| c.kasm == key).and_then(|c| match c.maps_to {
                MapsTo::Field { ours, .. } => Some(ours),
                _ => None,
            })
        };
        // Secrets first, while the keys are still Kasm's.
        let keys: Vec<String> = m.keys().filter_map(Value::as_str).map(str::to_string).collect();
        for key in keys {
            let v = m.get(key.as_str()).cloned().unwrap_or(Value::Null);
            let ours = ours_of(&key).map(str::to_string).or_else(|| shape.fields.contains(&key).then(|| key.clone()));
            let secret_field = ours.as_ref().filter(|o| shape.secrets.contains(*o));
            match secret_field {
                Some(field) if !is_empty(&v) || shape.required.contains(field) => {
                    let var = self.var(config, field);
                    m.insert(Value::from(key.as_str()), Value::from(format!("env:{var}")));
                }
                Some(_) => {
                    m.remove(key.as_str());
                }
                None if is_masked(&v) => {
                    m.remove(key.as_str());
                    let why = columns
                        .iter()
                        .find_map(|c| match c.maps_to {
                            MapsTo::NoField { why, .. } if c.kasm == key => Some(why),
                            _ => None,
                        })
                        .unwrap_or("kasm-autoscale has no field for it");
                    self.not_imported.push(format!("{config}.{key}: a secret Kasm masks; {why}"));
                }
                None => {}
            }
        }
        let outcome = kasm_names::to_ours(&mut m, columns, &self.ids);
        for p in outcome.problems {
            self.not_imported.push(format!("{config}.{}: {}", p.field, p.message));
        }
        for d in outcome.dropped.into_iter().filter(|d| d.had_value) {
            self.not_imported.push(format!("{config}.{}: {}", d.kasm, d.why));
        }
        let unknown: Vec<String> =
            m.keys().filter_map(Value::as_str).filter(|k| !shape.fields.contains(*k)).map(str::to_string).collect();
        for k in unknown {
            m.remove(k.as_str());
            self.not_imported.push(format!("{config}.{k}: kasm-autoscale has no field for it"));
        }
        // Required fields Kasm has no value for.
        for field in &shape.required {
            if m.contains_key(field.as_str()) {
                continue;
            }
            if shape.secrets.contains(field) {
                let var = self.var(config, field);
                m.insert(Value::from(field.as_str()), Value::from(format!("env:{var}")));
            } else if shape.strings.contains(field) {
                m.insert(Value::from(field.as_str()), Value::from(FILL_IN));
                self.fill_in.push(format!("{config}.{field}: `{FILL_IN}`; Kasm has no value for it"));
            } else {
                self.fill_in.push(format!("{config}.{field}: missing; Kasm has no value for it"));
            }
        }
        m
    }

    fn provider(&mut self, r: &Record<ProviderKind>) -> Value {
        let mut m = r.fields.clone();
        for k in ["vm_provider_name", "vm_provider_display_name", "vm_provider_config_name", "vm_provider_config_id"] {
            m.remove(k);
        }
        m.remove("config_name");
        m.insert("name".into(), Value::from(r.name.as_str()));
        let m = self.take(&r.name, m, r.kind.kasm_columns(), &provider_shape(r.kind));
        let mut tagged = Mapping::new();
        tagged.insert("provider".into(), Value::from(r.kind.as_str()));
        tagged.extend(m);
        canonical::<VmProviderConfig>(tagged)
    }

    fn dns(&mut self, r: &Record<&'static str>) -> Value {
        let mut m = r.fields.clone();
        for k in
            ["dns_provider_name", "dns_provider_display_name", "dns_provider_config_name", "dns_provider_config_id"]
        {
            m.remove(k);
        }
        m.remove("config_name");
        m.insert("name".into(), Value::from(r.name.as_str()));
        let columns = dns_kasm_columns(r.kind).unwrap_or_default();
        let m = self.take(&r.name, m, columns, &dns_shape(r.kind));
        let mut tagged = Mapping::new();
        tagged.insert("provider".into(), Value::from(r.kind));
        tagged.extend(m);
        canonical::<DnsProviderConfig>(tagged)
    }

    fn autoscale(&mut self, r: &Record<()>, pools: &HashMap<String, (String, String)>) -> Value {
        let name = r.name.clone();
        let mut m = r.fields.clone();
        // The API's additions: the zone's name, the provider objects (also listed by their own calls).
        for k in
            ["zone_name", "vm_provider_config", "aws_config", "azure_config", "azure_dns_config", "openstack_config"]
        {
            m.remove(k);
        }
        m.insert("autoscale_config_name".into(), Value::from(name.as_str()));
        // The API names the provider configs by `vm_provider_config_id` / `dns_provider_config_id`, next to
        // some of the per-provider id columns; one reference is taken.
        for (api, ours, vm) in [
            ("vm_provider_config_id", "vm_provider_config", true),
            ("dns_provider_config_id", "dns_provider_config", false),
        ] {
            let Some(id) = m.remove(api).and_then(|v| v.as_str().map(str::to_string)).filter(|s| !s.is_empty()) else {
                continue;
            };
            let found = resolve_any(&self.ids, vm, &id);
            match found {
                Some(provider) => {
                    let columns = AutoscaleConfig::KASM_COLUMNS;
                    for c in columns {
                        if matches!(c.maps_to, MapsTo::Reference { ours: o, .. } if o == ours) {
                            m.remove(c.kasm);
                        }
                    }
                    m.insert(Value::from(ours), Value::from(provider));
                }
                None => self.not_imported.push(format!(
                    "{name}.{api}: `{id}` is not among the {} configs Kasm listed",
                    if vm { "VM-provider" } else { "DNS-provider" }
                )),
            }
        }
        let pool = m
            .get("server_pool_id")
            .and_then(Value::as_str)
            .map(kasm_names::norm_id)
            .and_then(|id| pools.get(&id).cloned());
        let given = m.get("autoscale_type").and_then(Value::as_str).map(str::to_string);
        match given.as_deref().and_then(autoscale_type) {
            Some(t) => {
                m.insert("autoscale_type".into(), Value::from(t));
            }
            None => {
                m.remove("autoscale_type");
                let what = match &given {
                    Some(g) => format!("Kasm's `{g}` is neither Docker Agent nor Server"),
                    None => "Kasm gave none".to_string(),
                };
                match pool.as_ref().and_then(|(_, t)| pool_type(t)) {
                    Some(t) => {
                        m.insert("autoscale_type".into(), Value::from(t));
                        self.notes
                            .push(format!("{name}.autoscale_type: {what}; `{t}` taken from its server pool's type"));
                    }
                    None => self.fill_in.push(format!("{name}.autoscale_type: {what}; set docker_agent or server")),
                }
            }
        }
        if let Some((pool_name, pool_t)) = &pool {
            let ours = m.get("autoscale_type").and_then(Value::as_str).map(str::to_string);
            if let (Some(ours), Some(expected)) = (ours, pool_type(pool_t))
                && ours != expected
            {
                self.notes.push(format!(
                    "{name}.autoscale_type: {ours}, but its server pool `{pool_name}` is a {pool_t} pool"
                ));
            }
        } else if let Some(id) = m.get("server_pool_id").and_then(Value::as_str) {
            self.notes.push(format!("{name}.server_pool_id: `{id}` is not among the server pools Kasm listed"));
        }
        let shape = shape::<AutoscaleConfig>();
        let m = self.take(&name, m, AutoscaleConfig::KASM_COLUMNS, &shape);
        canonical::<AutoscaleConfig>(m)
    }

    fn schedule(&mut self, i: usize, r: &Json) -> Value {
        // Labelled as validation labels it (by position; the schedules are written in this order).
        let label =
            match text(r.get("autoscale_config_id")).and_then(|id| self.ids.resolve(Target::Autoscale, &id).ok()) {
                Some(owner) => format!("schedules[{i}] ({owner})"),
                None => format!("schedules[{i}]"),
            };
        // Our schedule rule is Kasm's `Schedule.is_active` (start = end: from the start until midnight;
        // inclusive end; midnight crossing only into unlisted days), so the window is taken as it is.
        let m = self.take(&label, to_yaml(r), Schedule::KASM_COLUMNS, &shape::<Schedule>());
        canonical::<Schedule>(m)
    }

    fn render(&self, url: &str, body: &str) -> String {
        let mut s = String::new();
        s.push_str(&format!("# Imported from the Kasm manager at {url} by `kasm-autoscale import`.\n"));
        s.push_str("# Field names and units are kasm-autoscale's; secrets are references (listed at the end).\n");
        s.push_str("# Check it with `kasm-autoscale validate FILE` before use.\n\n");
        s.push_str(body);
        let mut section = |title: &str, lines: Vec<String>| {
            if lines.is_empty() {
                return;
            }
            s.push_str(&format!("\n# {title}\n"));
            for l in lines {
                s.push_str(&format!("#   {}\n", l.replace('\n', " ")));
            }
        };
        section(
            "Secrets: Kasm never returns them; set these environment variables (or change the references):",
            self.secret_vars.iter().map(|v| format!("{}  ({}.{})", v.var, v.config, v.field)).collect(),
        );
        section("Fill in (placeholders that validate but are not real values):", self.fill_in.clone());
        section(
            "Not imported (Kasm fields with no place in kasm-autoscale):",
            self.not_imported.iter().map(|l| format!("not imported: {l}")).collect(),
        );
        section("Notes:", self.notes.clone());
        s
    }
}

/// The name of the VM-provider (`vm`) or DNS-provider config with Kasm id `id`, of whatever kind.
fn resolve_any(ids: &KasmIds, vm: bool, id: &str) -> Option<String> {
    if vm {
        ProviderKind::ALL.iter().find_map(|k| ids.resolve(Target::VmProvider(k.as_str()), id).ok())
    } else {
        DNS_PROVIDER_KINDS.iter().find_map(|k| ids.resolve(Target::DnsProvider(k), id).ok())
    }
}

fn own_id(r: &Json, columns: &[KasmColumn]) -> Option<String> {
    columns.iter().find(|c| matches!(c.maps_to, MapsTo::OwnId { .. })).and_then(|c| text(r.get(c.kasm)))
}

/// `server_pool_id` (normalised) → (name, type) of the pools Kasm listed.
fn pools(records: &[Json]) -> HashMap<String, (String, String)> {
    records
        .iter()
        .filter_map(|p| {
            let id = text(p.get("server_pool_id"))?;
            let name = text(p.get("server_pool_name")).unwrap_or_else(|| id.clone());
            let t = text(p.get("server_pool_type")).unwrap_or_default();
            Some((kasm_names::norm_id(&id), (name, t)))
        })
        .collect()
}

/// Kasm's autoscale type (`Docker Agent`, `Server`; any case, spaces or underscores) as ours.
fn autoscale_type(kasm: &str) -> Option<&'static str> {
    match kasm.trim().to_ascii_lowercase().replace([' ', '-'], "_").as_str() {
        "docker_agent" => Some("docker_agent"),
        "server" | "server_pool" => Some("server"),
        _ => None,
    }
}

/// Kasm's server pool type (`SERVER_POOL_TYPE`: `Docker Agent`, `Server Pool`) as our autoscale type.
fn pool_type(kasm: &str) -> Option<&'static str> {
    match kasm.trim() {
        "Docker Agent" => Some("docker_agent"),
        "Server Pool" => Some("server"),
        _ => None,
    }
}

/// The entry as our typed config writes it (canonical names and values, `null`s left out), or as it is
/// when it does not parse (validation then says why).
fn canonical<T: serde::de::DeserializeOwned + serde::Serialize>(m: Mapping) -> Value {
    let Ok(typed) = serde_yaml_ng::from_value::<T>(Value::Mapping(m.clone())) else {
        return Value::Mapping(m);
    };
    match serde_yaml_ng::to_value(&typed) {
        Ok(Value::Mapping(out)) => Value::Mapping(out.into_iter().filter(|(_, v)| !v.is_null()).collect::<Mapping>()),
        _ => Value::Mapping(m),
    }
}

/// The records of each kind in the answers, by Kasm's names (for summaries).
pub fn counts(a: &KasmAnswers) -> BTreeMap<&'static str, usize> {
    BTreeMap::from([
        ("autoscale_configs", a.autoscale_configs.len()),
        ("vm_provider_configs", a.vm_provider_configs.len()),
        ("dns_provider_configs", a.dns_provider_configs.len()),
        ("server_pools", a.server_pools.len()),
        ("schedules", a.schedules.len()),
    ])
}

#[cfg(test)]
mod tests;
