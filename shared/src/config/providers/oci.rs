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

fn check_fields(f: &mut Found, c: &OciConfig) {
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
}

/// Attributes of OCI's LaunchInstanceDetails (Python SDK names, as Kasm applies them).
pub const OCI_LAUNCH_INSTANCE_DETAILS: &[&str] = &[
    "agent_config",
    "availability_config",
    "availability_domain",
    "capacity_reservation_id",
    "cluster_placement_group_id",
    "compartment_id",
    "compute_cluster_id",
    "create_vnic_details",
    "dedicated_vm_host_id",
    "defined_tags",
    "display_name",
    "extended_metadata",
    "fault_domain",
    "freeform_tags",
    "hostname_label",
    "image_id",
    "instance_options",
    "ipxe_script",
    "is_pv_encryption_in_transit_enabled",
    "launch_options",
    "launch_volume_attachments",
    "licensing_configs",
    "metadata",
    "platform_config",
    "preemptible_instance_config",
    "security_attributes",
    "shape",
    "shape_config",
    "source_details",
    "subnet_id",
];

const OCI_MANAGED: &[(&str, &str)] = &[
    ("display_name", "it is the claim's deterministic name"),
    ("freeform_tags", "the ownership tags must stay; use oci_custom_tags"),
    ("metadata", "it carries user_data (startup_script) and ssh_authorized_keys (oci_ssh_public_key)"),
    ("availability_domain", "domains are tried in turn from oci_availability_domains"),
];

/// OCI: `{"launch_instance_details": {<LaunchInstanceDetails attribute>: ...}}`; nested models may name
/// their type with `OCI_MODEL_NAME`.
/// Checks the override `field` (see the module docs of `config::providers`).
pub fn check_override(o: &Map<String, Value>, field: &str) -> Found {
    let mut f = Found::new();
    for (k, v) in o {
        if k != "launch_instance_details" {
            let hint = did_you_mean(k, ["launch_instance_details"].into_iter());
            f.push((
                format!("{field}.{k}"),
                format!("unknown block{hint} (only `launch_instance_details` is applied)"),
            ));
            continue;
        }
        let Some(d) = v.as_object() else {
            f.push((format!("{field}.{k}"), "must be an object of LaunchInstanceDetails attributes".into()));
            continue;
        };
        for (key, val) in d {
            let path = format!("{field}.launch_instance_details.{key}");
            if let Some((_, why)) = OCI_MANAGED.iter().find(|(m, _)| m == key) {
                f.push((path, format!("cannot be overridden: {why}")));
            } else if !OCI_LAUNCH_INSTANCE_DETAILS.contains(&key.as_str()) {
                let hint = did_you_mean(key, OCI_LAUNCH_INSTANCE_DETAILS.iter().copied());
                f.push((path, format!("not an OCI LaunchInstanceDetails attribute{hint}")));
            } else if let Some(m) = val.as_object().and_then(|m| m.get("OCI_MODEL_NAME"))
                && !m.as_str().is_some_and(|s| s.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
            {
                f.push((
                    format!("{path}.OCI_MODEL_NAME"),
                    "must be an OCI model class name, e.g. InstanceOptions".into(),
                ));
            }
        }
    }
    f
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
    fn oci_takes_launch_instance_details_attributes() {
        let ok = obj(
            json!({"launch_instance_details": {"instance_options": {"OCI_MODEL_NAME": "InstanceOptions", "are_legacy_imds_endpoints_disabled": true}}}),
        );
        assert!(check_override(&ok, "o").is_empty());
        let bad = obj(json!({
            "launch_details": {},
            "launch_instance_details": {"instance_option": {}, "display_name": "x", "agent_config": {"OCI_MODEL_NAME": 3}}
        }));
        assert_eq!(
            fields(&check_override(&bad, "o")),
            [
                "o.launch_details",
                "o.launch_instance_details.instance_option",
                "o.launch_instance_details.display_name",
                "o.launch_instance_details.agent_config.OCI_MODEL_NAME"
            ]
        );
    }
}
