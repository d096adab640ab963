//! Oracle Cloud (OCI) VM-provider config (fields from Kasm's documentation and OCI guide).

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::check::{Found, need};
use crate::config::did_you_mean::did_you_mean;
use crate::config::json_text::JsonText;
use crate::config::kasm_names::{
    Conv, KasmColumn, KasmColumns, Unit, converted, own_id, renamed, same, same_or_empty, size,
};
use crate::config::provider::{Endpoint, ProviderConfigCommon};
use crate::config::secret::SecretRef;
use crate::model::Resources;
use crate::script::{Limit, ScriptRules, WindowsScript};
use serde_json::{Map, Value};

fn ten() -> u32 {
    10
}

/// Oracle Cloud VM-provider settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OciConfig {
    /// A name to identify the config.
    pub name: String,
    /// OCID of the user that calls the OCI API, e.g. `ocid1.user.oc1..xyz` (Profile in the OCI console).
    #[serde(alias = "user_ocid")]
    pub oci_user_ocid: String,
    /// Fingerprint of the API user's public key, e.g. `xx:yy:zz:11:22:33`.
    #[serde(alias = "public_key_fingerprint")]
    pub oci_public_key_fingerprint: String,
    /// The API user's private key, PEM (a secret reference).
    #[serde(alias = "private_key")]
    pub oci_private_key: SecretRef,
    /// The OCI region, e.g. `us-ashburn-1`.
    #[serde(alias = "region")]
    pub oci_region: String,
    /// OCID of the tenancy, e.g. `ocid1.tenancy.oc1..xyz`.
    #[serde(alias = "tenancy_ocid")]
    pub oci_tenancy_ocid: String,
    /// OCID of the compartment the instances are placed in, e.g. `ocid1.compartment.oc1..xyz`.
    #[serde(alias = "compartment_ocid")]
    pub oci_compartment_ocid: String,
    /// Network security group OCIDs given to the instances: a list, or JSON text of one.
    #[serde(default, alias = "network_security_group_ocids")]
    pub oci_nsg_ocids: JsonText<Vec<String>>,
    /// Most OCI instances to run regardless of the need for free capacity.
    pub max_instances: u32,
    /// Availability domains the instances may be placed in: a list, or JSON text of one, e.g.
    /// `["BEol:US-ASHBURN-AD-1", "BEol:US-ASHBURN-AD-2"]` (tried in turn when one is out of capacity).
    #[serde(alias = "availability_domains")]
    pub oci_availability_domains: JsonText<Vec<String>>,
    /// OCID of the image, e.g. `ocid1.image.oc1.iad.xyz`.
    #[serde(alias = "image_ocid")]
    pub oci_image_ocid: String,
    /// The shape, e.g. `VM.Standard.E4.Flex`.
    #[serde(alias = "shape")]
    pub oci_shape: String,
    /// OCPUs of each instance; Flex shapes only.
    #[serde(default, alias = "flex_cpus")]
    pub oci_flex_cpus: Option<f64>,
    /// Baseline percentage of a core a burstable instance may use continuously (12.5, 50 or 100; 100 =
    /// not burstable).
    #[serde(default, alias = "burstable_base_cpu_utilization")]
    pub oci_baseline_ocpu_utilization: Option<f64>,
    /// Memory (GB) of each instance; Flex shapes only.
    #[serde(default, alias = "flex_memory_gb")]
    pub oci_flex_memory_gb: Option<f64>,
    /// Size (GB) of the boot volume.
    #[serde(alias = "boot_volume_gb")]
    pub oci_boot_volume_gb: u32,
    /// Volume Performance Units per GB of the boot volume: 10 to 120 in multiples of 10 (10 = Balanced).
    #[serde(default = "ten", alias = "boot_volume_vpus_per_gb")]
    pub oci_boot_volume_vpus_per_gb: u32,
    /// Custom freeform tags: a map, or JSON text of one, e.g. `{"foo":"bar"}`.
    #[serde(default, alias = "custom_tags")]
    pub oci_custom_tags: JsonText<IndexMap<String, String>>,
    /// OCID of the subnet the instances are placed in, e.g. `ocid1.subnet.oc1.iad.xyz`.
    #[serde(alias = "subnet_ocid")]
    pub oci_subnet_ocid: String,
    /// SSH public key inserted into the instances, e.g. `ssh-rsa XYABC`.
    #[serde(default, alias = "ssh_public_key")]
    pub oci_ssh_public_key: Option<String>,
    /// Run when an instance is created; installs and configures the Kasm Agent (a template).
    #[serde(default)]
    pub startup_script: String,
    /// Config override: a map (or JSON text) customising the launch request, e.g.
    /// `{"launch_instance_details": {"instance_options": {"OCI_MODEL_NAME": "InstanceOptions",
    /// "are_legacy_imds_endpoints_disabled": true}}}`; nested models name their type with `OCI_MODEL_NAME`.
    #[serde(default, alias = "config_override")]
    pub oci_config_override: Option<JsonText<serde_json::Map<String, serde_json::Value>>>,
    /// Our extension (not a Kasm field): the `compute` service limits one instance of this config counts
    /// against, by OCI limit name, with the amount one instance uses, e.g.
    /// `{"standard-e4-core-count": 2, "standard-e4-memory-count": 16}` (the names are listed in the
    /// Console under Governance → Limits, Quotas and Usage). Oracle documents no pairing of a shape with
    /// the limits that count it, so the operator names them; `preflight` checks each one's headroom
    /// (`GetResourceAvailability`). Empty: the headroom is not checked.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub service_limits: IndexMap<String, f64>,
    /// Our extension (not a Kasm field): the API's base URL instead of the provider's default, for private
    /// clouds, sovereign regions and test servers (like `AWS_ENDPOINT_URL`).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Our extension (not a Kasm field): PEM certificates trusted for the API's TLS in addition to the
    /// built-in roots (a private CA).
    #[serde(default)]
    pub ca_bundle: Option<String>,
}

/// Kasm's `oci_vm_configs` columns.
impl KasmColumns for OciConfig {
    const KASM_TABLE: &'static str = "oci_vm_configs";
    const KASM_COLUMNS: &'static [KasmColumn] = &[
        own_id("config_id"),
        renamed("config_name", "name"),
        same("oci_user_ocid"),
        renamed("oci_fingerprint", "oci_public_key_fingerprint"),
        same("oci_private_key"),
        same("oci_region"),
        same("oci_tenancy_ocid"),
        same("oci_compartment_ocid"),
        same_or_empty("oci_nsg_ocids"),
        same("max_instances"),
        same("oci_availability_domains"),
        same("oci_image_ocid"),
        same("oci_shape"),
        same("oci_flex_cpus"),
        converted("oci_baseline_ocpu_utilization", "oci_baseline_ocpu_utilization", Conv::Custom(baseline_percent)),
        size("oci_flex_memory_bytes", "oci_flex_memory_gb", Unit::Bytes, Unit::Gib, false),
        size("oci_boot_volume_bytes", "oci_boot_volume_gb", Unit::Bytes, Unit::Gib, true),
        renamed("oci_storage_vpus_per_gb", "oci_boot_volume_vpus_per_gb"),
        same_or_empty("oci_custom_tags"),
        same("oci_subnet_ocid"),
        same("oci_ssh_public_key"),
        same("startup_script"),
        same_or_empty("oci_config_override"),
    ];
}

/// Kasm keeps the baseline OCPU utilization as text: a percentage (`"50"`), or OCI's own enum name
/// (`BASELINE_1_8`, `BASELINE_1_2`, `BASELINE_1_1`: an eighth, half, all of a core). Ours is the percentage.
fn baseline_percent(v: &serde_yaml_ng::Value) -> Result<serde_yaml_ng::Value, String> {
    use serde_yaml_ng::Value;
    let Some(s) = v.as_str() else { return Ok(v.clone()) };
    let pct = match s.trim() {
        "BASELINE_1_8" => 12.5,
        "BASELINE_1_2" => 50.0,
        "BASELINE_1_1" => 100.0,
        t => t.parse::<f64>().map_err(|_| {
            "expected a percentage (12.5, 50 or 100) or BASELINE_1_8, BASELINE_1_2, BASELINE_1_1".to_string()
        })?,
    };
    Ok(Value::Number(pct.into()))
}

impl OciConfig {
    /// A Flex shape takes its OCPUs and memory from the config.
    pub fn is_flex(&self) -> bool {
        self.oci_shape.ends_with(".Flex")
    }

    /// vCPUs per OCPU: Arm (Ampere A1/A2) shapes have one, x86 shapes two.
    pub fn vcpus_per_ocpu(&self) -> f64 {
        if self.oci_shape.contains(".A1.") || self.oci_shape.contains(".A2.") { 1.0 } else { 2.0 }
    }

    /// The config override as LaunchInstanceDetails wire JSON (camelCase, `OCI_MODEL_NAME` resolved), to
    /// merge over the launch request; empty without an override. Errors name the override's key.
    pub fn launch_override(&self) -> Result<Map<String, Value>, Found> {
        match &self.oci_config_override {
            Some(o) => override_to_wire(&o.0, "oci_config_override"),
            None => Ok(Map::new()),
        }
    }
}

impl ProviderConfigCommon for OciConfig {
    fn ssh_public_key(&self) -> Option<&str> {
        self.oci_ssh_public_key.as_deref()
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn max_instances(&self) -> u32 {
        self.max_instances
    }
    fn startup_script(&self) -> &str {
        &self.startup_script
    }
    fn vm_size(&self) -> Option<Resources> {
        // Agents report vCPUs as cores, so OCPUs are converted.
        match (self.is_flex(), self.oci_flex_cpus, self.oci_flex_memory_gb) {
            (true, Some(ocpus), Some(gb)) => Some(Resources::new(ocpus * self.vcpus_per_ocpu(), gb * 1024.0, 0.0)),
            _ => None,
        }
    }
    fn script_rules(&self) -> ScriptRules {
        // OCI: `metadata` + `extendedMetadata` together at most 32,000 bytes; `user_data` is stored
        // base64-encoded there, so its encoded size is the bound we can check. Windows: cloudbase-init.
        ScriptRules {
            provider: "oci",
            limit: Some(Limit::Base64(32_000)),
            windows: WindowsScript::CloudbaseInit,
            linux_cloud_init: true,
        }
    }
    fn endpoint(&self) -> Endpoint<'_> {
        Endpoint { url: self.endpoint_url.as_deref(), ca_bundle: self.ca_bundle.as_deref() }
    }
    fn check(&self) -> Found {
        let mut f = Found::new();
        check_fields(&mut f, self);
        f
    }
}

/// Whether `s` looks like an OCID of `kind` (`ocid1.<kind>.<realm>.[region].<unique id>`, Oracle's
/// "Resource Identifiers" format).
fn is_ocid(s: &str, kind: &str) -> bool {
    let mut parts = s.trim().split('.');
    parts.next() == Some("ocid1")
        && parts.next() == Some(kind)
        && s.trim().split('.').count() >= 5
        && s.trim().chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Whether `s` is an API key fingerprint: 16 colon-separated hex bytes (the MD5 of the public key, as
/// the OCI console shows it).
pub fn is_fingerprint(s: &str) -> bool {
    let parts: Vec<&str> = s.trim().split(':').collect();
    parts.len() == 16 && parts.iter().all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn check_ocid(f: &mut Found, value: &str, field: &str, kinds: &[&str]) {
    if !kinds.iter().any(|k| is_ocid(value, k)) {
        let want: Vec<String> = kinds.iter().map(|k| format!("ocid1.{k}.…")).collect();
        f.push((
            field.to_string(),
            format!("`{}` is not an OCID of the expected kind ({})", value.trim(), want.join(" or ")),
        ));
    }
}

impl crate::config::OciDnsConfig {
    /// The provider rules `validate` applies to an OCI DNS-provider config, by field: the key's OCIDs,
    /// fingerprint and region as on the VM-provider config, and the zone as a DNS name or an OCID.
    pub fn check(&self) -> Found {
        check_dns_fields(self)
    }
}

fn check_dns_fields(c: &crate::config::OciDnsConfig) -> Found {
    let mut f = Found::new();
    check_ocid(&mut f, &c.oci_user_ocid, "oci_user_ocid", &["user"]);
    check_ocid(&mut f, &c.oci_tenancy_ocid, "oci_tenancy_ocid", &["tenancy"]);
    check_ocid(&mut f, &c.oci_compartment_ocid, "oci_compartment_ocid", &["compartment", "tenancy"]);
    need(
        &mut f,
        is_fingerprint(&c.oci_public_key_fingerprint),
        "oci_public_key_fingerprint",
        "must be the API key's fingerprint: 16 colon-separated hex bytes, e.g. 12:34:…:ef",
    );
    let region = c.oci_region.trim();
    need(
        &mut f,
        !region.is_empty() && region.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-'),
        "oci_region",
        "must be an OCI region identifier, e.g. us-ashburn-1",
    );
    let zone = c.zone_name_or_id.trim();
    if zone.starts_with("ocid1.") {
        need(
            &mut f,
            zone.split('.').count() >= 5
                && zone.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '_')),
            "zone_name_or_id",
            format!("`{zone}` is not an OCID"),
        );
    } else if let Err(e) = crate::dns::check_name(&crate::dns::normalize_name(zone)) {
        f.push(("zone_name_or_id".into(), format!("must be the zone's name or OCID: {e}")));
    }
    f
}

fn check_fields(f: &mut Found, c: &OciConfig) {
    check_ocid(f, &c.oci_user_ocid, "oci_user_ocid", &["user"]);
    check_ocid(f, &c.oci_tenancy_ocid, "oci_tenancy_ocid", &["tenancy"]);
    // The root compartment's OCID is the tenancy's.
    check_ocid(f, &c.oci_compartment_ocid, "oci_compartment_ocid", &["compartment", "tenancy"]);
    check_ocid(f, &c.oci_image_ocid, "oci_image_ocid", &["image"]);
    check_ocid(f, &c.oci_subnet_ocid, "oci_subnet_ocid", &["subnet"]);
    for (i, nsg) in c.oci_nsg_ocids.iter().enumerate() {
        check_ocid(f, nsg, &format!("oci_nsg_ocids[{i}]"), &["networksecuritygroup"]);
    }
    need(
        f,
        is_fingerprint(&c.oci_public_key_fingerprint),
        "oci_public_key_fingerprint",
        "must be the API key's fingerprint: 16 colon-separated hex bytes, e.g. 12:34:…:ef",
    );
    let region = c.oci_region.trim();
    need(
        f,
        !region.is_empty() && region.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-'),
        "oci_region",
        "must be an OCI region identifier, e.g. us-ashburn-1",
    );
    for (i, ad) in c.oci_availability_domains.iter().enumerate() {
        need(f, !ad.trim().is_empty(), &format!("oci_availability_domains[{i}]"), "must not be empty");
    }
    need(f, !c.oci_shape.trim().is_empty(), "oci_shape", "must name a shape, e.g. VM.Standard.E4.Flex");
    need(
        f,
        !c.oci_availability_domains.is_empty(),
        "oci_availability_domains",
        "must list at least one availability domain",
    );
    if c.is_flex() {
        need(f, c.oci_flex_cpus.is_some(), "oci_flex_cpus", format!("is required for the Flex shape {}", c.oci_shape));
        need(
            f,
            c.oci_flex_memory_gb.is_some(),
            "oci_flex_memory_gb",
            format!("is required for the Flex shape {}", c.oci_shape),
        );
    } else {
        need(
            f,
            c.oci_flex_cpus.is_none(),
            "oci_flex_cpus",
            format!("only applies to Flex shapes, not {}", c.oci_shape),
        );
        need(
            f,
            c.oci_flex_memory_gb.is_none(),
            "oci_flex_memory_gb",
            format!("only applies to Flex shapes, not {}", c.oci_shape),
        );
    }
    if let Some(v) = c.oci_flex_cpus {
        need(f, v.is_finite() && v >= 1.0, "oci_flex_cpus", "must be at least 1 OCPU");
    }
    if let Some(v) = c.oci_flex_memory_gb {
        need(f, v.is_finite() && v >= 1.0, "oci_flex_memory_gb", "must be at least 1 GB");
    }
    if let Some(b) = c.oci_baseline_ocpu_utilization {
        need(f, [12.5, 50.0, 100.0].contains(&b), "oci_baseline_ocpu_utilization", "must be 12.5, 50 or 100 (percent)");
    }
    let vpus = c.oci_boot_volume_vpus_per_gb;
    need(
        f,
        (10..=120).contains(&vpus) && vpus.is_multiple_of(10),
        "oci_boot_volume_vpus_per_gb",
        "must be 10 to 120 in multiples of 10",
    );
    need(f, c.oci_boot_volume_gb >= 50, "oci_boot_volume_gb", "must be at least 50 GB (OCI's minimum boot volume)");
    if let Some(o) = &c.oci_config_override {
        f.extend(check_override(&o.0, "oci_config_override"));
    }
    for (name, amount) in &c.service_limits {
        if name.trim().is_empty() {
            f.push(("service_limits".into(), "a limit name must not be empty".into()));
            continue;
        }
        need(
            f,
            amount.is_finite() && *amount > 0.0,
            &format!("service_limits.{name}"),
            format!("must be the positive amount of `{name}` one instance uses, not {amount}"),
        );
    }
}

const OCI_MANAGED: &[(&str, &str)] = &[
    ("display_name", "it is the claim's deterministic name"),
    ("freeform_tags", "the ownership tags must stay; use oci_custom_tags"),
    ("metadata", "it carries user_data (startup_script) and ssh_authorized_keys (oci_ssh_public_key)"),
    ("availability_domain", "domains are tried in turn from oci_availability_domains"),
    ("compartment_id", "it is oci_compartment_ocid"),
];

/// The key Kasm's override form names a nested model's class with (the Python SDK's model name).
pub const OCI_MODEL_NAME: &str = "OCI_MODEL_NAME";

/// The type of one SDK model field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Str,
    Int,
    Float,
    Bool,
    /// `dict(str, ...)`: passed through as given.
    Map,
    /// `list[str]` and other lists of scalars.
    List,
    /// A nested model.
    Model(&'static str),
    /// A list of a model.
    ListOf(&'static str),
}

/// One model of Oracle's Python SDK: its fields as (Python attribute, wire name, type), its parent for
/// polymorphic subtypes, and the discriminator (wire property, value -> subtype) of a polymorphic base.
struct Model {
    name: &'static str,
    base: Option<&'static str>,
    discriminator: Option<(&'static str, &'static [(&'static str, &'static str)])>,
    fields: &'static [(&'static str, &'static str, Ty)],
}

fn model(name: &str) -> Option<&'static Model> {
    OCI_MODELS.iter().find(|m| m.name == name)
}

/// Whether `sub` is `base` or one of its subtypes.
fn is_a(sub: &Model, base: &str) -> bool {
    sub.name == base || sub.base.is_some_and(|b| b == base || model(b).is_some_and(|m| is_a(m, base)))
}

/// OCI: `{"launch_instance_details": {<LaunchInstanceDetails attribute>: ...}}` in the Python SDK's
/// snake_case names, nested models naming their class with `OCI_MODEL_NAME` (Kasm's form).
/// Checks the override `field` (see the module docs of `config::providers`): every attribute must exist
/// in its SDK model, a model name must be the field's model or one of its subtypes, scalar types must
/// match, and the attributes we set ourselves are refused.
pub fn check_override(o: &Map<String, Value>, field: &str) -> Found {
    match override_to_wire(o, field) {
        Ok(_) => Found::new(),
        Err(f) => f,
    }
}

/// The override `o` as LaunchInstanceDetails wire JSON (camelCase names, `OCI_MODEL_NAME` dropped, a
/// polymorphic model's discriminator set from its class), or every problem as `(field path, message)`.
pub fn override_to_wire(o: &Map<String, Value>, field: &str) -> Result<Map<String, Value>, Found> {
    let mut f = Found::new();
    let mut out = Map::new();
    for (k, v) in o {
        if k != "launch_instance_details" {
            let hint = did_you_mean(k, ["launch_instance_details"].into_iter());
            f.push((
                format!("{field}.{k}"),
                format!("unknown block{hint} (only `launch_instance_details` is applied)"),
            ));
            continue;
        }
        let path = format!("{field}.{k}");
        let Some(d) = v.as_object() else {
            f.push((path, "must be an object of LaunchInstanceDetails attributes".into()));
            continue;
        };
        for key in d.keys() {
            if let Some((_, why)) = OCI_MANAGED.iter().find(|(m, _)| m == key) {
                f.push((format!("{path}.{key}"), format!("cannot be overridden: {why}")));
            }
        }
        let d: Map<String, Value> = d
            .iter()
            .filter(|(k, _)| !OCI_MANAGED.iter().any(|(m, _)| m == k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(w) = model_to_wire(&Value::Object(d), "LaunchInstanceDetails", &path, &mut f) {
            out = w.as_object().cloned().unwrap_or_default();
        }
    }
    if f.is_empty() { Ok(out) } else { Err(f) }
}

fn model_to_wire(v: &Value, expected: &str, path: &str, f: &mut Found) -> Option<Value> {
    let Some(obj) = v.as_object() else {
        f.push((path.to_string(), format!("must be an object (the OCI model {expected})")));
        return None;
    };
    let mut m = model(expected)?;
    if let Some(name) = obj.get(OCI_MODEL_NAME) {
        let Some(name) = name.as_str() else {
            f.push((
                format!("{path}.{OCI_MODEL_NAME}"),
                "must be an OCI model class name, e.g. InstanceOptions".into(),
            ));
            return None;
        };
        match model(name) {
            Some(sub) if is_a(sub, expected) => m = sub,
            _ => {
                let subs: Vec<&str> = OCI_MODELS.iter().filter(|s| is_a(s, expected)).map(|s| s.name).collect();
                f.push((
                    format!("{path}.{OCI_MODEL_NAME}"),
                    format!("`{name}` is not the OCI model {expected} (expected one of: {})", subs.join(", ")),
                ));
                return None;
            }
        }
    } else if let Some((prop, mapping)) = m.discriminator {
        // No class named: the discriminator's value (snake_case or wire name) picks the subtype.
        let snake = m.fields.iter().find(|(_, w, _)| *w == prop).map(|(s, _, _)| *s).unwrap_or(prop);
        if let Some(val) = obj.get(snake).or_else(|| obj.get(prop)).and_then(Value::as_str) {
            match mapping.iter().find(|(k, _)| *k == val).and_then(|(_, s)| model(s)) {
                Some(sub) => m = sub,
                None => {
                    let allowed: Vec<&str> = mapping.iter().map(|(k, _)| *k).collect();
                    f.push((format!("{path}.{snake}"), format!("must be one of: {}", allowed.join(", "))));
                    return None;
                }
            }
        }
    }
    let mut out = Map::new();
    // A subtype's discriminator value, when its base has one: OCI picks the subtype by it.
    if let Some(base) = m.base.and_then(model)
        && let Some((prop, mapping)) = base.discriminator
        && let Some((val, _)) = mapping.iter().find(|(_, s)| *s == m.name)
    {
        out.insert(prop.to_string(), Value::String((*val).to_string()));
    }
    for (key, val) in obj {
        if key == OCI_MODEL_NAME {
            continue;
        }
        let p = format!("{path}.{key}");
        let Some((_, wire, ty)) = m.fields.iter().find(|(s, w, _)| s == key || w == key) else {
            let hint = did_you_mean(key, m.fields.iter().map(|(s, _, _)| *s));
            f.push((p, format!("not an attribute of the OCI model {}{hint}", m.name)));
            continue;
        };
        if let Some(w) = value_to_wire(val, *ty, &p, f) {
            out.insert((*wire).to_string(), w);
        }
    }
    Some(Value::Object(out))
}

fn value_to_wire(v: &Value, ty: Ty, path: &str, f: &mut Found) -> Option<Value> {
    let ok = match ty {
        Ty::Str => v.is_string(),
        Ty::Int => v.is_i64() || v.is_u64(),
        Ty::Float => v.is_number(),
        Ty::Bool => v.is_boolean(),
        Ty::Map => v.is_object(),
        Ty::List => v.is_array(),
        Ty::Model(name) => return model_to_wire(v, name, path, f),
        Ty::ListOf(name) => {
            let Some(items) = v.as_array() else {
                f.push((path.to_string(), format!("must be a list of the OCI model {name}")));
                return None;
            };
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                out.push(model_to_wire(item, name, &format!("{path}[{i}]"), f)?);
            }
            return Some(Value::Array(out));
        }
    };
    if ok {
        Some(v.clone())
    } else {
        let want = match ty {
            Ty::Str => "a string",
            Ty::Int => "an integer",
            Ty::Float => "a number",
            Ty::Bool => "true or false",
            Ty::Map => "an object",
            _ => "a list",
        };
        f.push((path.to_string(), format!("must be {want}")));
        None
    }
}

// Generated from Oracle's Python SDK models (oci 2.189.0, package oci.core): the models reachable from
// LaunchInstanceDetails, each field as (Python attribute, wire name, type). Do not edit by hand.
const OCI_MODELS: &[Model] = &[
    Model {
        name: "AmdMilanBmGpuLaunchInstancePlatformConfig",
        base: Some("LaunchInstancePlatformConfig"),
        discriminator: None,
        fields: &[
            ("are_virtual_instructions_enabled", "areVirtualInstructionsEnabled", Ty::Bool),
            ("config_map", "configMap", Ty::Map),
            ("is_access_control_service_enabled", "isAccessControlServiceEnabled", Ty::Bool),
            ("is_input_output_memory_management_unit_enabled", "isInputOutputMemoryManagementUnitEnabled", Ty::Bool),
            ("is_measured_boot_enabled", "isMeasuredBootEnabled", Ty::Bool),
            ("is_memory_encryption_enabled", "isMemoryEncryptionEnabled", Ty::Bool),
            ("is_secure_boot_enabled", "isSecureBootEnabled", Ty::Bool),
            ("is_symmetric_multi_threading_enabled", "isSymmetricMultiThreadingEnabled", Ty::Bool),
            ("is_trusted_platform_module_enabled", "isTrustedPlatformModuleEnabled", Ty::Bool),
            ("numa_nodes_per_socket", "numaNodesPerSocket", Ty::Str),
            ("type", "type", Ty::Str),
        ],
    },
    Model {
        name: "AmdMilanBmLaunchInstancePlatformConfig",
        base: Some("LaunchInstancePlatformConfig"),
        discriminator: None,
        fields: &[
            ("are_virtual_instructions_enabled", "areVirtualInstructionsEnabled", Ty::Bool),
            ("config_map", "configMap", Ty::Map),
            ("is_access_control_service_enabled", "isAccessControlServiceEnabled", Ty::Bool),
            ("is_input_output_memory_management_unit_enabled", "isInputOutputMemoryManagementUnitEnabled", Ty::Bool),
            ("is_measured_boot_enabled", "isMeasuredBootEnabled", Ty::Bool),
            ("is_memory_encryption_enabled", "isMemoryEncryptionEnabled", Ty::Bool),
            ("is_secure_boot_enabled", "isSecureBootEnabled", Ty::Bool),
            ("is_symmetric_multi_threading_enabled", "isSymmetricMultiThreadingEnabled", Ty::Bool),
            ("is_trusted_platform_module_enabled", "isTrustedPlatformModuleEnabled", Ty::Bool),
            ("numa_nodes_per_socket", "numaNodesPerSocket", Ty::Str),
            ("percentage_of_cores_enabled", "percentageOfCoresEnabled", Ty::Int),
            ("type", "type", Ty::Str),
        ],
    },
    Model {
        name: "AmdRomeBmGpuLaunchInstancePlatformConfig",
        base: Some("LaunchInstancePlatformConfig"),
        discriminator: None,
        fields: &[
            ("are_virtual_instructions_enabled", "areVirtualInstructionsEnabled", Ty::Bool),
            ("config_map", "configMap", Ty::Map),
            ("is_access_control_service_enabled", "isAccessControlServiceEnabled", Ty::Bool),
            ("is_input_output_memory_management_unit_enabled", "isInputOutputMemoryManagementUnitEnabled", Ty::Bool),
            ("is_measured_boot_enabled", "isMeasuredBootEnabled", Ty::Bool),
            ("is_memory_encryption_enabled", "isMemoryEncryptionEnabled", Ty::Bool),
            ("is_secure_boot_enabled", "isSecureBootEnabled", Ty::Bool),
            ("is_symmetric_multi_threading_enabled", "isSymmetricMultiThreadingEnabled", Ty::Bool),
            ("is_trusted_platform_module_enabled", "isTrustedPlatformModuleEnabled", Ty::Bool),
            ("numa_nodes_per_socket", "numaNodesPerSocket", Ty::Str),
            ("type", "type", Ty::Str),
        ],
    },
    Model {
        name: "AmdRomeBmLaunchInstancePlatformConfig",
        base: Some("LaunchInstancePlatformConfig"),
        discriminator: None,
        fields: &[
            ("are_virtual_instructions_enabled", "areVirtualInstructionsEnabled", Ty::Bool),
            ("config_map", "configMap", Ty::Map),
            ("is_access_control_service_enabled", "isAccessControlServiceEnabled", Ty::Bool),
            ("is_input_output_memory_management_unit_enabled", "isInputOutputMemoryManagementUnitEnabled", Ty::Bool),
            ("is_measured_boot_enabled", "isMeasuredBootEnabled", Ty::Bool),
            ("is_memory_encryption_enabled", "isMemoryEncryptionEnabled", Ty::Bool),
            ("is_secure_boot_enabled", "isSecureBootEnabled", Ty::Bool),
            ("is_symmetric_multi_threading_enabled", "isSymmetricMultiThreadingEnabled", Ty::Bool),
            ("is_trusted_platform_module_enabled", "isTrustedPlatformModuleEnabled", Ty::Bool),
            ("numa_nodes_per_socket", "numaNodesPerSocket", Ty::Str),
            ("percentage_of_cores_enabled", "percentageOfCoresEnabled", Ty::Int),
            ("type", "type", Ty::Str),
        ],
    },
    Model {
        name: "AmdVmLaunchInstancePlatformConfig",
        base: Some("LaunchInstancePlatformConfig"),
        discriminator: None,
        fields: &[
            ("is_measured_boot_enabled", "isMeasuredBootEnabled", Ty::Bool),
            ("is_memory_encryption_enabled", "isMemoryEncryptionEnabled", Ty::Bool),
            ("is_secure_boot_enabled", "isSecureBootEnabled", Ty::Bool),
            ("is_symmetric_multi_threading_enabled", "isSymmetricMultiThreadingEnabled", Ty::Bool),
            ("is_trusted_platform_module_enabled", "isTrustedPlatformModuleEnabled", Ty::Bool),
            ("type", "type", Ty::Str),
        ],
    },
    Model {
        name: "ComputeBareMetalHostPlacementConstraintDetails",
        base: Some("PlacementConstraintDetails"),
        discriminator: None,
        fields: &[("compute_bare_metal_host_id", "computeBareMetalHostId", Ty::Str), ("type", "type", Ty::Str)],
    },
    Model {
        name: "ComputeClusterPlacementConstraintDetails",
        base: Some("PlacementConstraintDetails"),
        discriminator: None,
        fields: &[
            ("hpc_island_id", "hpcIslandId", Ty::Str),
            ("logical_placement_constraint", "logicalPlacementConstraint", Ty::Str),
            ("target_memory_fabric_ids", "targetMemoryFabricIds", Ty::List),
            ("target_network_block_ids", "targetNetworkBlockIds", Ty::List),
            ("type", "type", Ty::Str),
        ],
    },
    Model {
        name: "CreateVnicDetails",
        base: None,
        discriminator: None,
        fields: &[
            ("assign_ipv6_ip", "assignIpv6Ip", Ty::Bool),
            ("assign_private_dns_record", "assignPrivateDnsRecord", Ty::Bool),
            ("assign_public_ip", "assignPublicIp", Ty::Bool),
            ("defined_tags", "definedTags", Ty::Map),
            ("display_name", "displayName", Ty::Str),
            ("freeform_tags", "freeformTags", Ty::Map),
            ("hostname_label", "hostnameLabel", Ty::Str),
            (
                "ipv6_address_ipv6_subnet_cidr_pair_details",
                "ipv6AddressIpv6SubnetCidrPairDetails",
                Ty::ListOf("Ipv6AddressIpv6SubnetCidrPairDetails"),
            ),
            ("nsg_ids", "nsgIds", Ty::List),
            ("private_ip", "privateIp", Ty::Str),
            ("private_ip_id", "privateIpId", Ty::Str),
            ("security_attributes", "securityAttributes", Ty::Map),
            ("skip_source_dest_check", "skipSourceDestCheck", Ty::Bool),
            ("subnet_cidr", "subnetCidr", Ty::Str),
            ("subnet_id", "subnetId", Ty::Str),
            ("vlan_id", "vlanId", Ty::Str),
        ],
    },
    Model {
        name: "GenericBmLaunchInstancePlatformConfig",
        base: Some("LaunchInstancePlatformConfig"),
        discriminator: None,
        fields: &[
            ("are_virtual_instructions_enabled", "areVirtualInstructionsEnabled", Ty::Bool),
            ("config_map", "configMap", Ty::Map),
            ("is_access_control_service_enabled", "isAccessControlServiceEnabled", Ty::Bool),
            ("is_input_output_memory_management_unit_enabled", "isInputOutputMemoryManagementUnitEnabled", Ty::Bool),
            ("is_measured_boot_enabled", "isMeasuredBootEnabled", Ty::Bool),
            ("is_memory_encryption_enabled", "isMemoryEncryptionEnabled", Ty::Bool),
            ("is_secure_boot_enabled", "isSecureBootEnabled", Ty::Bool),
            ("is_symmetric_multi_threading_enabled", "isSymmetricMultiThreadingEnabled", Ty::Bool),
            ("is_trusted_platform_module_enabled", "isTrustedPlatformModuleEnabled", Ty::Bool),
            ("numa_nodes_per_socket", "numaNodesPerSocket", Ty::Str),
            ("percentage_of_cores_enabled", "percentageOfCoresEnabled", Ty::Int),
            ("type", "type", Ty::Str),
        ],
    },
    Model {
        name: "HostGroupPlacementConstraintDetails",
        base: Some("PlacementConstraintDetails"),
        discriminator: None,
        fields: &[("compute_host_group_id", "computeHostGroupId", Ty::Str), ("type", "type", Ty::Str)],
    },
    Model {
        name: "InstanceAgentPluginConfigDetails",
        base: None,
        discriminator: None,
        fields: &[("desired_state", "desiredState", Ty::Str), ("name", "name", Ty::Str)],
    },
    Model {
        name: "InstanceOptions",
        base: None,
        discriminator: None,
        fields: &[("are_legacy_imds_endpoints_disabled", "areLegacyImdsEndpointsDisabled", Ty::Bool)],
    },
    Model {
        name: "InstanceSourceDetails",
        base: None,
        discriminator: Some((
            "sourceType",
            &[("bootVolume", "InstanceSourceViaBootVolumeDetails"), ("image", "InstanceSourceViaImageDetails")],
        )),
        fields: &[("source_type", "sourceType", Ty::Str)],
    },
    Model {
        name: "InstanceSourceImageFilterDetails",
        base: None,
        discriminator: None,
        fields: &[
            ("compartment_id", "compartmentId", Ty::Str),
            ("defined_tags_filter", "definedTagsFilter", Ty::Map),
            ("operating_system", "operatingSystem", Ty::Str),
            ("operating_system_version", "operatingSystemVersion", Ty::Str),
        ],
    },
    Model {
        name: "InstanceSourceViaBootVolumeDetails",
        base: Some("InstanceSourceDetails"),
        discriminator: None,
        fields: &[("boot_volume_id", "bootVolumeId", Ty::Str), ("source_type", "sourceType", Ty::Str)],
    },
    Model {
        name: "InstanceSourceViaImageDetails",
        base: Some("InstanceSourceDetails"),
        discriminator: None,
        fields: &[
            ("boot_volume_size_in_gbs", "bootVolumeSizeInGBs", Ty::Int),
            ("boot_volume_vpus_per_gb", "bootVolumeVpusPerGB", Ty::Int),
            ("image_id", "imageId", Ty::Str),
            (
                "instance_source_image_filter_details",
                "instanceSourceImageFilterDetails",
                Ty::Model("InstanceSourceImageFilterDetails"),
            ),
            ("kms_key_id", "kmsKeyId", Ty::Str),
            ("source_type", "sourceType", Ty::Str),
        ],
    },
    Model {
        name: "IntelIcelakeBmLaunchInstancePlatformConfig",
        base: Some("LaunchInstancePlatformConfig"),
        discriminator: None,
        fields: &[
            ("config_map", "configMap", Ty::Map),
            ("is_input_output_memory_management_unit_enabled", "isInputOutputMemoryManagementUnitEnabled", Ty::Bool),
            ("is_measured_boot_enabled", "isMeasuredBootEnabled", Ty::Bool),
            ("is_memory_encryption_enabled", "isMemoryEncryptionEnabled", Ty::Bool),
            ("is_secure_boot_enabled", "isSecureBootEnabled", Ty::Bool),
            ("is_symmetric_multi_threading_enabled", "isSymmetricMultiThreadingEnabled", Ty::Bool),
            ("is_trusted_platform_module_enabled", "isTrustedPlatformModuleEnabled", Ty::Bool),
            ("numa_nodes_per_socket", "numaNodesPerSocket", Ty::Str),
            ("percentage_of_cores_enabled", "percentageOfCoresEnabled", Ty::Int),
            ("type", "type", Ty::Str),
        ],
    },
    Model {
        name: "IntelSkylakeBmLaunchInstancePlatformConfig",
        base: Some("LaunchInstancePlatformConfig"),
        discriminator: None,
        fields: &[
            ("config_map", "configMap", Ty::Map),
            ("is_input_output_memory_management_unit_enabled", "isInputOutputMemoryManagementUnitEnabled", Ty::Bool),
            ("is_measured_boot_enabled", "isMeasuredBootEnabled", Ty::Bool),
            ("is_memory_encryption_enabled", "isMemoryEncryptionEnabled", Ty::Bool),
            ("is_secure_boot_enabled", "isSecureBootEnabled", Ty::Bool),
            ("is_symmetric_multi_threading_enabled", "isSymmetricMultiThreadingEnabled", Ty::Bool),
            ("is_trusted_platform_module_enabled", "isTrustedPlatformModuleEnabled", Ty::Bool),
            ("numa_nodes_per_socket", "numaNodesPerSocket", Ty::Str),
            ("percentage_of_cores_enabled", "percentageOfCoresEnabled", Ty::Int),
            ("type", "type", Ty::Str),
        ],
    },
    Model {
        name: "IntelVmLaunchInstancePlatformConfig",
        base: Some("LaunchInstancePlatformConfig"),
        discriminator: None,
        fields: &[
            ("is_measured_boot_enabled", "isMeasuredBootEnabled", Ty::Bool),
            ("is_memory_encryption_enabled", "isMemoryEncryptionEnabled", Ty::Bool),
            ("is_secure_boot_enabled", "isSecureBootEnabled", Ty::Bool),
            ("is_symmetric_multi_threading_enabled", "isSymmetricMultiThreadingEnabled", Ty::Bool),
            ("is_trusted_platform_module_enabled", "isTrustedPlatformModuleEnabled", Ty::Bool),
            ("type", "type", Ty::Str),
        ],
    },
    Model {
        name: "Ipv6AddressIpv6SubnetCidrPairDetails",
        base: None,
        discriminator: None,
        fields: &[
            ("ipv6_address", "ipv6Address", Ty::Str),
            ("ipv6_id", "ipv6Id", Ty::Str),
            ("ipv6_subnet_cidr", "ipv6SubnetCidr", Ty::Str),
        ],
    },
    Model {
        name: "LaunchAttachIScsiVolumeDetails",
        base: Some("LaunchAttachVolumeDetails"),
        discriminator: None,
        fields: &[
            ("device", "device", Ty::Str),
            ("display_name", "displayName", Ty::Str),
            ("encryption_in_transit_type", "encryptionInTransitType", Ty::Str),
            ("is_agent_auto_iscsi_login_enabled", "isAgentAutoIscsiLoginEnabled", Ty::Bool),
            ("is_read_only", "isReadOnly", Ty::Bool),
            ("is_shareable", "isShareable", Ty::Bool),
            ("launch_create_volume_details", "launchCreateVolumeDetails", Ty::Model("LaunchCreateVolumeDetails")),
            ("type", "type", Ty::Str),
            ("use_chap", "useChap", Ty::Bool),
            ("volume_id", "volumeId", Ty::Str),
        ],
    },
    Model {
        name: "LaunchAttachNvmeVolumeDetails",
        base: Some("LaunchAttachVolumeDetails"),
        discriminator: None,
        fields: &[
            ("device", "device", Ty::Str),
            ("display_name", "displayName", Ty::Str),
            ("is_read_only", "isReadOnly", Ty::Bool),
            ("is_shareable", "isShareable", Ty::Bool),
            ("launch_create_volume_details", "launchCreateVolumeDetails", Ty::Model("LaunchCreateVolumeDetails")),
            ("type", "type", Ty::Str),
            ("volume_id", "volumeId", Ty::Str),
        ],
    },
    Model {
        name: "LaunchAttachParavirtualizedVolumeDetails",
        base: Some("LaunchAttachVolumeDetails"),
        discriminator: None,
        fields: &[
            ("device", "device", Ty::Str),
            ("display_name", "displayName", Ty::Str),
            ("is_pv_encryption_in_transit_enabled", "isPvEncryptionInTransitEnabled", Ty::Bool),
            ("is_read_only", "isReadOnly", Ty::Bool),
            ("is_shareable", "isShareable", Ty::Bool),
            ("launch_create_volume_details", "launchCreateVolumeDetails", Ty::Model("LaunchCreateVolumeDetails")),
            ("type", "type", Ty::Str),
            ("volume_id", "volumeId", Ty::Str),
        ],
    },
    Model {
        name: "LaunchAttachVolumeDetails",
        base: None,
        discriminator: Some((
            "type",
            &[
                ("iscsi", "LaunchAttachIScsiVolumeDetails"),
                ("nvme", "LaunchAttachNvmeVolumeDetails"),
                ("paravirtualized", "LaunchAttachParavirtualizedVolumeDetails"),
            ],
        )),
        fields: &[
            ("device", "device", Ty::Str),
            ("display_name", "displayName", Ty::Str),
            ("is_read_only", "isReadOnly", Ty::Bool),
            ("is_shareable", "isShareable", Ty::Bool),
            ("launch_create_volume_details", "launchCreateVolumeDetails", Ty::Model("LaunchCreateVolumeDetails")),
            ("type", "type", Ty::Str),
            ("volume_id", "volumeId", Ty::Str),
        ],
    },
    Model {
        name: "LaunchCreateVolumeDetails",
        base: None,
        discriminator: Some(("volumeCreationType", &[("ATTRIBUTES", "LaunchCreateVolumeFromAttributes")])),
        fields: &[("volume_creation_type", "volumeCreationType", Ty::Str)],
    },
    Model {
        name: "LaunchCreateVolumeFromAttributes",
        base: Some("LaunchCreateVolumeDetails"),
        discriminator: None,
        fields: &[
            ("compartment_id", "compartmentId", Ty::Str),
            ("display_name", "displayName", Ty::Str),
            ("kms_key_id", "kmsKeyId", Ty::Str),
            ("size_in_gbs", "sizeInGBs", Ty::Int),
            ("volume_creation_type", "volumeCreationType", Ty::Str),
            ("vpus_per_gb", "vpusPerGB", Ty::Int),
        ],
    },
    Model {
        name: "LaunchInstanceAgentConfigDetails",
        base: None,
        discriminator: None,
        fields: &[
            ("are_all_plugins_disabled", "areAllPluginsDisabled", Ty::Bool),
            ("is_management_disabled", "isManagementDisabled", Ty::Bool),
            ("is_monitoring_disabled", "isMonitoringDisabled", Ty::Bool),
            ("plugins_config", "pluginsConfig", Ty::ListOf("InstanceAgentPluginConfigDetails")),
        ],
    },
    Model {
        name: "LaunchInstanceAvailabilityConfigDetails",
        base: None,
        discriminator: None,
        fields: &[
            ("is_live_migration_preferred", "isLiveMigrationPreferred", Ty::Bool),
            ("recovery_action", "recoveryAction", Ty::Str),
        ],
    },
    Model {
        name: "LaunchInstanceDetails",
        base: None,
        discriminator: None,
        fields: &[
            ("agent_config", "agentConfig", Ty::Model("LaunchInstanceAgentConfigDetails")),
            ("availability_config", "availabilityConfig", Ty::Model("LaunchInstanceAvailabilityConfigDetails")),
            ("availability_domain", "availabilityDomain", Ty::Str),
            ("capacity_reservation_id", "capacityReservationId", Ty::Str),
            ("cluster_placement_group_id", "clusterPlacementGroupId", Ty::Str),
            ("compartment_id", "compartmentId", Ty::Str),
            ("compute_cluster_id", "computeClusterId", Ty::Str),
            ("create_vnic_details", "createVnicDetails", Ty::Model("CreateVnicDetails")),
            ("dedicated_vm_host_id", "dedicatedVmHostId", Ty::Str),
            ("defined_tags", "definedTags", Ty::Map),
            ("display_name", "displayName", Ty::Str),
            ("extended_metadata", "extendedMetadata", Ty::Map),
            ("fault_domain", "faultDomain", Ty::Str),
            ("freeform_tags", "freeformTags", Ty::Map),
            ("hostname_label", "hostnameLabel", Ty::Str),
            ("image_id", "imageId", Ty::Str),
            ("instance_configuration_id", "instanceConfigurationId", Ty::Str),
            ("instance_options", "instanceOptions", Ty::Model("InstanceOptions")),
            ("ipxe_script", "ipxeScript", Ty::Str),
            ("is_ai_enterprise_enabled", "isAIEnterpriseEnabled", Ty::Bool),
            ("is_pv_encryption_in_transit_enabled", "isPvEncryptionInTransitEnabled", Ty::Bool),
            ("launch_options", "launchOptions", Ty::Model("LaunchOptions")),
            ("launch_volume_attachments", "launchVolumeAttachments", Ty::ListOf("LaunchAttachVolumeDetails")),
            ("licensing_configs", "licensingConfigs", Ty::ListOf("LaunchInstanceLicensingConfig")),
            ("metadata", "metadata", Ty::Map),
            ("placement_constraint_details", "placementConstraintDetails", Ty::Model("PlacementConstraintDetails")),
            ("platform_config", "platformConfig", Ty::Model("LaunchInstancePlatformConfig")),
            ("preemptible_instance_config", "preemptibleInstanceConfig", Ty::Model("PreemptibleInstanceConfigDetails")),
            ("security_attributes", "securityAttributes", Ty::Map),
            ("shape", "shape", Ty::Str),
            ("shape_config", "shapeConfig", Ty::Model("LaunchInstanceShapeConfigDetails")),
            ("source_details", "sourceDetails", Ty::Model("InstanceSourceDetails")),
            ("subnet_id", "subnetId", Ty::Str),
        ],
    },
    Model {
        name: "LaunchInstanceLicensingConfig",
        base: None,
        discriminator: Some(("type", &[("WINDOWS", "LaunchInstanceWindowsLicensingConfig")])),
        fields: &[("license_type", "licenseType", Ty::Str), ("type", "type", Ty::Str)],
    },
    Model {
        name: "LaunchInstancePlatformConfig",
        base: None,
        discriminator: Some((
            "type",
            &[
                ("AMD_MILAN_BM", "AmdMilanBmLaunchInstancePlatformConfig"),
                ("AMD_MILAN_BM_GPU", "AmdMilanBmGpuLaunchInstancePlatformConfig"),
                ("AMD_ROME_BM", "AmdRomeBmLaunchInstancePlatformConfig"),
                ("AMD_ROME_BM_GPU", "AmdRomeBmGpuLaunchInstancePlatformConfig"),
                ("AMD_VM", "AmdVmLaunchInstancePlatformConfig"),
                ("GENERIC_BM", "GenericBmLaunchInstancePlatformConfig"),
                ("INTEL_ICELAKE_BM", "IntelIcelakeBmLaunchInstancePlatformConfig"),
                ("INTEL_SKYLAKE_BM", "IntelSkylakeBmLaunchInstancePlatformConfig"),
                ("INTEL_VM", "IntelVmLaunchInstancePlatformConfig"),
            ],
        )),
        fields: &[
            ("is_measured_boot_enabled", "isMeasuredBootEnabled", Ty::Bool),
            ("is_memory_encryption_enabled", "isMemoryEncryptionEnabled", Ty::Bool),
            ("is_secure_boot_enabled", "isSecureBootEnabled", Ty::Bool),
            ("is_trusted_platform_module_enabled", "isTrustedPlatformModuleEnabled", Ty::Bool),
            ("type", "type", Ty::Str),
        ],
    },
    Model {
        name: "LaunchInstanceShapeConfigDetails",
        base: None,
        discriminator: None,
        fields: &[
            ("baseline_ocpu_utilization", "baselineOcpuUtilization", Ty::Str),
            ("local_volume_size_in_gbs", "localVolumeSizeInGBs", Ty::Int),
            ("memory_in_gbs", "memoryInGBs", Ty::Float),
            ("nvmes", "nvmes", Ty::Int),
            ("ocpus", "ocpus", Ty::Float),
            ("resource_management", "resourceManagement", Ty::Str),
            ("vcpus", "vcpus", Ty::Int),
        ],
    },
    Model {
        name: "LaunchInstanceWindowsLicensingConfig",
        base: Some("LaunchInstanceLicensingConfig"),
        discriminator: None,
        fields: &[("license_type", "licenseType", Ty::Str), ("type", "type", Ty::Str)],
    },
    Model {
        name: "LaunchOptions",
        base: None,
        discriminator: None,
        fields: &[
            ("boot_volume_type", "bootVolumeType", Ty::Str),
            ("firmware", "firmware", Ty::Str),
            ("is_consistent_volume_naming_enabled", "isConsistentVolumeNamingEnabled", Ty::Bool),
            ("is_encryption_in_transit_enabled", "isEncryptionInTransitEnabled", Ty::Bool),
            ("is_pv_encryption_in_transit_enabled", "isPvEncryptionInTransitEnabled", Ty::Bool),
            ("network_type", "networkType", Ty::Str),
            ("remote_data_volume_type", "remoteDataVolumeType", Ty::Str),
        ],
    },
    Model {
        name: "PlacementConstraintDetails",
        base: None,
        discriminator: Some((
            "type",
            &[
                ("COMPUTE_BARE_METAL_HOST", "ComputeBareMetalHostPlacementConstraintDetails"),
                ("COMPUTE_CLUSTER", "ComputeClusterPlacementConstraintDetails"),
                ("HOST_GROUP", "HostGroupPlacementConstraintDetails"),
            ],
        )),
        fields: &[("type", "type", Ty::Str)],
    },
    Model {
        name: "PreemptibleInstanceConfigDetails",
        base: None,
        discriminator: None,
        fields: &[("preemption_action", "preemptionAction", Ty::Model("PreemptionAction"))],
    },
    Model {
        name: "PreemptionAction",
        base: None,
        discriminator: Some(("type", &[("TERMINATE", "TerminatePreemptionAction")])),
        fields: &[("type", "type", Ty::Str)],
    },
    Model {
        name: "TerminatePreemptionAction",
        base: Some("PreemptionAction"),
        discriminator: None,
        fields: &[("preserve_boot_volume", "preserveBootVolume", Ty::Bool), ("type", "type", Ty::Str)],
    },
];

/// A valid OCI config for unit tests (a 2-OCPU, 16 GB `VM.Standard.E4.Flex`; the key from
/// `env:OCI_KEY_FOR_TEST`, never set, so it is never read).
#[cfg(test)]
pub(crate) fn test_config() -> OciConfig {
    serde_yaml_ng::from_str(
        r#"
name: oci
oci_user_ocid: ocid1.user.oc1..aaaaexample
oci_public_key_fingerprint: "12:34:56:78:9a:bc:de:f0:12:34:56:78:9a:bc:de:f0"
oci_private_key: env:OCI_KEY_FOR_TEST
oci_region: us-ashburn-1
oci_tenancy_ocid: ocid1.tenancy.oc1..aaaaexample
oci_compartment_ocid: ocid1.compartment.oc1..aaaaexample
max_instances: 2
oci_availability_domains: ["BEol:US-ASHBURN-AD-1"]
oci_image_ocid: ocid1.image.oc1.iad.aaaaexample
oci_shape: VM.Standard.E4.Flex
oci_flex_cpus: 2
oci_flex_memory_gb: 16
oci_boot_volume_gb: 50
oci_subnet_ocid: ocid1.subnet.oc1.iad.aaaaexample
"#,
    )
    .expect("the OCI test config")
}

#[cfg(test)]
mod override_tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn fields(found: &Found) -> Vec<&str> {
        found.iter().map(|(f, _)| f.as_str()).collect()
    }

    #[test]
    fn the_seeds_two_examples_validate_and_map_to_wire_names() {
        let imds = obj(json!({"launch_instance_details": {"instance_options": {
            "OCI_MODEL_NAME": "InstanceOptions", "are_legacy_imds_endpoints_disabled": true}}}));
        assert!(check_override(&imds, "o").is_empty());
        assert_eq!(
            Value::Object(override_to_wire(&imds, "o").unwrap()),
            json!({"instanceOptions": {"areLegacyImdsEndpointsDisabled": true}})
        );
        let plugins = obj(json!({"launch_instance_details": {"agent_config": {
            "OCI_MODEL_NAME": "LaunchInstanceAgentConfigDetails",
            "is_monitoring_disabled": false, "is_management_disabled": false, "are_all_plugins_disabled": false,
            "plugins_config": [{"OCI_MODEL_NAME": "InstanceAgentPluginConfigDetails",
                "name": "Vulnerability Scanning", "desired_state": "ENABLED"}]}}}));
        assert_eq!(
            Value::Object(override_to_wire(&plugins, "o").unwrap()),
            json!({"agentConfig": {"isMonitoringDisabled": false, "isManagementDisabled": false,
                "areAllPluginsDisabled": false,
                "pluginsConfig": [{"name": "Vulnerability Scanning", "desiredState": "ENABLED"}]}})
        );
    }

    #[test]
    fn a_subtype_sets_its_discriminator_and_a_discriminator_picks_the_subtype() {
        let by_class = obj(json!({"launch_instance_details": {"platform_config": {
            "OCI_MODEL_NAME": "AmdVmLaunchInstancePlatformConfig", "is_secure_boot_enabled": true}}}));
        assert_eq!(
            Value::Object(override_to_wire(&by_class, "o").unwrap()),
            json!({"platformConfig": {"type": "AMD_VM", "isSecureBootEnabled": true}})
        );
        let by_value = obj(json!({"launch_instance_details": {"source_details": {
            "source_type": "image", "kms_key_id": "ocid1.key.oc1.iad.x"}}}));
        assert_eq!(
            Value::Object(override_to_wire(&by_value, "o").unwrap()),
            json!({"sourceDetails": {"sourceType": "image", "kmsKeyId": "ocid1.key.oc1.iad.x"}})
        );
    }

    #[test]
    fn unknown_attributes_models_and_types_are_named() {
        let bad = obj(json!({
            "launch_details": {},
            "launch_instance_details": {
                "instance_option": {},
                "display_name": "x",
                "agent_config": {"OCI_MODEL_NAME": 3},
                "instance_options": {"OCI_MODEL_NAME": "LaunchOptions"},
                "launch_options": {"OCI_MODEL_NAME": "LaunchOptions", "boot_volume_typ": "PARAVIRTUALIZED"},
                "is_pv_encryption_in_transit_enabled": "yes",
                "shape_config": {"ocpus": 2, "memory_in_gbs": 16}
            }
        }));
        assert_eq!(
            fields(&check_override(&bad, "o")),
            [
                "o.launch_details",
                "o.launch_instance_details.display_name",
                "o.launch_instance_details.instance_option",
                "o.launch_instance_details.agent_config.OCI_MODEL_NAME",
                "o.launch_instance_details.instance_options.OCI_MODEL_NAME",
                "o.launch_instance_details.launch_options.boot_volume_typ",
                "o.launch_instance_details.is_pv_encryption_in_transit_enabled",
            ]
        );
    }

    #[test]
    fn oci_dns_configs_are_checked_by_field() {
        let good: crate::config::OciDnsConfig = serde_yaml_ng::from_str(
            r#"
name: oci-dns
oci_user_ocid: ocid1.user.oc1..aaaaexample
oci_public_key_fingerprint: "12:34:56:78:9a:bc:de:f0:12:34:56:78:9a:bc:de:f0"
oci_private_key: env:K
oci_region: us-ashburn-1
oci_tenancy_ocid: ocid1.tenancy.oc1..aaaaexample
oci_compartment_ocid: ocid1.compartment.oc1..aaaaexample
zone_name_or_id: kasm.example.com
"#,
        )
        .unwrap();
        assert!(good.check().is_empty(), "{:?}", good.check());
        let by_ocid =
            crate::config::OciDnsConfig { zone_name_or_id: "ocid1.dns-zone.oc1..aaaaexample".into(), ..good.clone() };
        assert!(by_ocid.check().is_empty(), "{:?}", by_ocid.check());
        let bad = crate::config::OciDnsConfig {
            oci_user_ocid: "ocid1.tenancy.oc1..x".into(),
            oci_public_key_fingerprint: "12:34".into(),
            oci_region: "US East".into(),
            zone_name_or_id: "kasm example.com".into(),
            ..good.clone()
        };
        let fields: Vec<String> = bad.check().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["oci_user_ocid", "oci_public_key_fingerprint", "oci_region", "zone_name_or_id"]);
        let odd = crate::config::OciDnsConfig { zone_name_or_id: "ocid1.x".into(), ..good };
        assert_eq!(odd.check()[0].0, "zone_name_or_id");
    }

    #[test]
    fn service_limits_need_names_and_positive_amounts() {
        let mut good = test_config();
        good.service_limits = serde_yaml_ng::from_str("{standard-e4-core-count: 2, standard-e4-memory-count: 16.5}")
            .expect("service_limits");
        assert!(good.check().is_empty(), "{:?}", good.check());
        assert_eq!(good.service_limits.get("standard-e4-memory-count"), Some(&16.5));
        let none = OciConfig { service_limits: IndexMap::new(), ..good.clone() };
        assert!(none.check().is_empty(), "{:?}", none.check());
        let bad = OciConfig {
            service_limits: [
                (" ".to_string(), 1.0),
                ("standard-e4-core-count".to_string(), 0.0),
                ("standard-e4-memory-count".to_string(), -16.0),
                ("vm-standard2-1-count".to_string(), f64::NAN),
            ]
            .into_iter()
            .collect(),
            ..good
        };
        let found = bad.check();
        assert_eq!(
            fields(&found),
            [
                "service_limits",
                "service_limits.standard-e4-core-count",
                "service_limits.standard-e4-memory-count",
                "service_limits.vm-standard2-1-count"
            ],
            "{found:?}"
        );
        assert!(found[1].1.contains("positive amount of `standard-e4-core-count`"), "{found:?}");
    }

    #[test]
    fn ocids_fingerprint_and_region_are_checked_by_field() {
        assert!(is_ocid("ocid1.user.oc1..aaaaexample", "user"));
        assert!(is_ocid("ocid1.image.oc1.iad.aaaaexample", "image"));
        assert!(!is_ocid("ocid1.user.oc1..aaaaexample", "tenancy"));
        assert!(!is_ocid("user-123", "user"));
        assert!(is_fingerprint("20:3b:97:13:55:1c:5b:0d:d3:37:d8:50:4e:c5:3a:34"));
        assert!(!is_fingerprint("20:3b:97"));
        assert!(!is_fingerprint("zz:3b:97:13:55:1c:5b:0d:d3:37:d8:50:4e:c5:3a:34"));
    }
}
