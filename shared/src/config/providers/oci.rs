//! Oracle Cloud (OCI) VM-provider config (fields from Kasm's documentation and OCI guide).

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::json_text::JsonText;
use crate::config::kasm_names::{
    Conv, KasmColumn, KasmColumns, Unit, converted, own_id, renamed, same, same_or_empty, size,
};
use crate::config::provider::ProviderConfigCommon;
use crate::config::secret::SecretRef;
use crate::model::Resources;

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
}
