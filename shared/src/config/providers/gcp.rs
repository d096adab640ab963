//! Google Cloud (GCP) VM-provider config (fields from Kasm's documentation, "Google Cloud (GCP) Settings").

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::check::{Found, is_blank, need, serde_name};
use crate::config::did_you_mean::did_you_mean;
use crate::config::json_text::JsonText;
use crate::config::kasm_names::{KasmColumn, KasmColumns, Unit, own_id, renamed, same, same_or_empty, size};
use crate::config::provider::{Endpoint, ProviderConfigCommon};
use crate::config::secret::SecretRef;
use crate::model::{OsFamily, Resources};
use crate::script::{Limit, ScriptRules, WindowsScript};
use serde_json::{Map, Value};

/// The kind of startup script; it decides the GCP metadata key the script is stored under.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GcpStartupScriptType {
    /// A Bash script for Linux (`startup-script`).
    #[default]
    Bash,
    /// A PowerShell script for Windows (`windows-startup-script-ps1`).
    Powershell,
    /// A cmd script for Windows (`windows-startup-script-cmd`).
    Cmd,
    /// A batch file for Windows (`windows-startup-script-bat`).
    Bat,
}

impl GcpStartupScriptType {
    /// The metadata key GCP runs the script from.
    pub fn metadata_key(self) -> &'static str {
        match self {
            GcpStartupScriptType::Bash => "startup-script",
            GcpStartupScriptType::Powershell => "windows-startup-script-ps1",
            GcpStartupScriptType::Cmd => "windows-startup-script-cmd",
            GcpStartupScriptType::Bat => "windows-startup-script-bat",
        }
    }

    /// The metadata key for `script` of this type: [`GcpStartupScriptType::metadata_key`], or for a
    /// Windows script whose first line holds the marker `sysprep-specialize` (e.g. `# sysprep-specialize`)
    /// the matching `sysprep-specialize-script-*` key, which GCP runs once during Windows setup.
    pub fn metadata_key_for(self, script: &str) -> &'static str {
        let sysprep = crate::script::first_line(script).to_ascii_lowercase().contains("sysprep-specialize");
        match (self, sysprep) {
            (GcpStartupScriptType::Powershell, true) => "sysprep-specialize-script-ps1",
            (GcpStartupScriptType::Cmd, true) => "sysprep-specialize-script-cmd",
            (GcpStartupScriptType::Bat, true) => "sysprep-specialize-script-bat",
            _ => self.metadata_key(),
        }
    }

    /// The OS family the script type runs on.
    pub fn os(self) -> OsFamily {
        match self {
            GcpStartupScriptType::Bash => OsFamily::Linux,
            _ => OsFamily::Windows,
        }
    }
}

/// One instance metadata item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GcpMetadataItem {
    /// Metadata key, e.g. `ssh-keys`.
    pub key: String,
    /// Metadata value.
    pub value: String,
}

/// The service account attached to the instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GcpServiceAccount {
    /// Service account email.
    pub email: String,
    /// OAuth scopes, e.g. `https://www.googleapis.com/auth/cloud-platform`.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// One kind of guest accelerator (GPU) attached to the instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GcpGuestAccelerator {
    /// Accelerator type URL, e.g. `projects/<project>/zones/<zone>/acceleratorTypes/nvidia-tesla-t4`.
    pub accelerator_type: String,
    /// How many of them.
    pub accelerator_count: u32,
}

/// Google Cloud VM-provider settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GcpConfig {
    /// A name to identify the config.
    pub name: String,
    /// The JSON credentials of the service account used to talk to GCP (a secret reference to the key file).
    #[serde(alias = "credentials")]
    pub gcp_credentials: SecretRef,
    /// Most GCP compute instances to run regardless of the need for more resources.
    pub max_instances: u32,
    /// The Google Cloud project ID, e.g. `pensive-voice-547511`.
    #[serde(alias = "project_id")]
    pub gcp_project: String,
    /// The region of the new instances, e.g. `us-east4`.
    #[serde(alias = "region")]
    pub gcp_region: String,
    /// The zone of the new instances, e.g. `us-east4-b`.
    #[serde(alias = "zone")]
    pub gcp_zone: String,
    /// The machine type, e.g. `e2-standard-2`.
    #[serde(alias = "machine_type")]
    pub gcp_machine_type: String,
    /// The image of the new instances, e.g. `projects/ubuntu-os-cloud/global/images/ubuntu-2004-focal-v20211212`.
    #[serde(alias = "machine_image")]
    pub gcp_image: String,
    /// Size (GB) of the boot disk.
    #[serde(alias = "boot_volume_gb")]
    pub gcp_boot_volume_gb: u32,
    /// The boot disk type, e.g. `pd-ssd`, `pd-standard`.
    #[serde(alias = "disk_type")]
    pub gcp_disk_type: String,
    /// Optional path of a Customer Managed Encryption Key, e.g.
    /// `projects/p/locations/global/keyRings/r/cryptoKeys/k`.
    #[serde(default, alias = "customer_managed_encryption_key")]
    pub gcp_cmek: Option<String>,
    /// The network path, e.g. `projects/p/global/networks/default`.
    #[serde(alias = "network")]
    pub gcp_network: String,
    /// The subnetwork path, e.g. `projects/p/regions/us-east4/subnetworks/default`.
    #[serde(alias = "sub_network")]
    pub gcp_subnetwork: String,
    /// Give the new instances a public IP.
    #[serde(default, alias = "public_ip")]
    pub gcp_public_ip: bool,
    /// Network tags: a list, or JSON text of one, e.g. `["https-server"]`.
    #[serde(default, alias = "network_tags")]
    pub gcp_network_tags: JsonText<Vec<String>>,
    /// Custom labels: a map, or JSON text of one, e.g. `{"foo": "bar"}`.
    #[serde(default, alias = "custom_labels")]
    pub gcp_custom_labels: JsonText<IndexMap<String, String>>,
    /// Metadata items: a list, or JSON text of one, e.g. `[{"key": "ssh-keys", "value": "user1:ssh-rsa ..."}]`.
    #[serde(default, alias = "metadata")]
    pub gcp_metadata: JsonText<Vec<GcpMetadataItem>>,
    /// The service account attached to the instances: an object, or JSON text of one, e.g.
    /// `{"email": "sa@example.com", "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}`.
    #[serde(default, alias = "service_account")]
    pub gcp_service_account: Option<JsonText<GcpServiceAccount>>,
    /// Guest accelerators (GPUs): a list, or JSON text of one, e.g.
    /// `[{"acceleratorType": "projects/p/zones/z/acceleratorTypes/nvidia-tesla-t4", "acceleratorCount": 1}]`.
    #[serde(default, alias = "guest_accelerators")]
    pub gcp_guest_accelerators: JsonText<Vec<GcpGuestAccelerator>>,
    /// Config override: a map (or JSON text) merged into the instances.insert request; anything but
    /// `name` and `labels` may be overridden, e.g. `{"shieldedInstanceConfig": {"enableSecureBoot": true}}`.
    #[serde(default, alias = "config_override")]
    pub gcp_config_override: Option<JsonText<serde_json::Map<String, serde_json::Value>>>,
    /// "VM Installed OS Type": the OS family on the VM (linux or windows).
    #[serde(default, alias = "vm_installed_os_type")]
    pub gcp_vm_installed_os_type: OsFamily,
    /// "Startup Script Type": decides the metadata key of the startup script.
    #[serde(default, alias = "startup_script_type")]
    pub gcp_startup_script_type: GcpStartupScriptType,
    /// Run when an instance is created; installs and configures the Kasm Agent. Bash on Linux, PowerShell
    /// on Windows (a template).
    #[serde(default)]
    pub startup_script: String,
    /// Our extension (not a Kasm field): the regional quota metrics one instance of this config counts
    /// against besides `CPUS`, by the metric's name in Compute Engine's `Quota.metric` enum, with the
    /// amount one instance uses, e.g. `{"N2_CPUS": 4, "NVIDIA_T4_GPUS": 1, "INSTANCES": 1}` (`gcloud
    /// compute regions describe <region>` lists them). The discovery document describes only `CPUS`
    /// ("Guest CPUs") and Google documents no pairing of a machine family or accelerator type with its
    /// metric, so the operator names them; `preflight` checks each one's headroom in `gcp_region`
    /// (`regions.get`). Empty: only `CPUS` is checked.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub gcp_quota_metrics: IndexMap<String, f64>,
    /// Our extension (not a Kasm field): the API's base URL instead of the provider's default, for private
    /// clouds, sovereign regions and test servers (like `AWS_ENDPOINT_URL`).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Our extension (not a Kasm field): the Cloud Resource Manager API's base URL instead of
    /// `https://cloudresourcemanager.googleapis.com`, for test servers and private endpoints. Only
    /// `preflight` calls it (`projects.testIamPermissions`, the permission check).
    #[serde(default)]
    pub resource_manager_url: Option<String>,
    /// Our extension (not a Kasm field): PEM certificates trusted for the API's TLS in addition to the
    /// built-in roots (a private CA).
    #[serde(default)]
    pub ca_bundle: Option<String>,
}

/// Kasm's `gcp_vm_configs` columns. Kasm stores `{}` / `[]` for unset JSON columns; they mean "not set".
impl KasmColumns for GcpConfig {
    const KASM_TABLE: &'static str = "gcp_vm_configs";
    const KASM_COLUMNS: &'static [KasmColumn] = &[
        own_id("config_id"),
        renamed("config_name", "name"),
        same("gcp_credentials"),
        same("max_instances"),
        same("gcp_project"),
        same("gcp_region"),
        same("gcp_zone"),
        same("gcp_machine_type"),
        same("gcp_image"),
        size("gcp_boot_volume_bytes", "gcp_boot_volume_gb", Unit::Bytes, Unit::Gib, true),
        same("gcp_disk_type"),
        same("gcp_cmek"),
        same("gcp_network"),
        same("gcp_subnetwork"),
        same("gcp_public_ip"),
        same_or_empty("gcp_network_tags"),
        same_or_empty("gcp_custom_labels"),
        same_or_empty("gcp_metadata"),
        same_or_empty("gcp_service_account"),
        same_or_empty("gcp_guest_accelerators"),
        same_or_empty("gcp_config_override"),
        renamed("vm_installed_os_type", "gcp_vm_installed_os_type"),
        renamed("startup_script_type", "gcp_startup_script_type"),
        same("startup_script"),
    ];
}

impl ProviderConfigCommon for GcpConfig {
    fn name(&self) -> &str {
        &self.name
    }
    fn max_instances(&self) -> u32 {
        self.max_instances
    }
    fn startup_script(&self) -> &str {
        &self.startup_script
    }
    fn os(&self) -> OsFamily {
        self.gcp_vm_installed_os_type
    }
    fn vm_size(&self) -> Option<Resources> {
        let gpus: u32 = self.gcp_guest_accelerators.iter().map(|a| a.accelerator_count).sum();
        super::sizes::gcp(&self.gcp_machine_type).map(|r| Resources { gpus: f64::from(gpus), ..r })
    }
    fn script_rules(&self) -> ScriptRules {
        // GCP: a metadata value holds at most 256 KB (larger scripts need `startup-script-url`); the guest
        // environment runs the metadata key `GcpConfig::metadata_key` names, not cloud-init.
        ScriptRules {
            provider: "gcp",
            limit: Some(Limit::Raw(256 * 1024)),
            windows: WindowsScript::AsIs,
            linux_cloud_init: false,
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

impl GcpConfig {
    /// The largest metadata value GCP accepts (262144 bytes: `Metadata.items.value`).
    pub const METADATA_VALUE_MAX: usize = METADATA_VALUE_MAX;
    /// The largest metadata total of an instance (512 KB: `Metadata.items`).
    pub const METADATA_TOTAL_MAX: usize = METADATA_TOTAL_MAX;

    /// The instance-metadata key the startup script goes under.
    ///
    /// Linux: `startup-script`. Windows: `windows-startup-script-cmd` when the first line looks like batch
    /// (`@echo off`, `rem …`, `:: …`), else `windows-startup-script-ps1`; when the first line contains the
    /// marker `sysprep-specialize` (e.g. `# sysprep-specialize`), the `sysprep-specialize-script-ps1`/`-cmd`
    /// key instead, which GCP runs once, during Windows setup, before the first boot completes.
    pub fn metadata_key(os: OsFamily, script: &str) -> &'static str {
        if os == OsFamily::Linux {
            return "startup-script";
        }
        let first = crate::script::first_line(script).to_ascii_lowercase();
        let cmd = first.starts_with('@')
            || first.starts_with("::")
            || first == "rem"
            || first.starts_with("rem ")
            || first.starts_with("echo off");
        match (first.contains("sysprep-specialize"), cmd) {
            (true, true) => "sysprep-specialize-script-cmd",
            (true, false) => "sysprep-specialize-script-ps1",
            (false, true) => "windows-startup-script-cmd",
            (false, false) => "windows-startup-script-ps1",
        }
    }
}

fn gcp_name_ok(s: &str, allow_empty: bool) -> bool {
    (allow_empty && s.is_empty())
        || (s.len() <= 63
            && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'))
}

/// The largest value of one metadata entry GCP accepts (262144 bytes, 256 KiB: the discovery
/// document's `Metadata.items.value`).
pub const METADATA_VALUE_MAX: usize = 256 * 1024;
/// The largest total of all metadata keys and values of an instance (512 KB: the discovery document's
/// `Metadata.items`).
pub const METADATA_TOTAL_MAX: usize = 512 * 1024;
/// The most labels a resource may carry (64; Compute Engine documentation, "labels" requirements).
pub const LABELS_MAX: usize = 64;
/// How many labels kasm-autoscale puts on each instance (deployment, config, claim).
pub const OWN_LABELS: usize = 3;

/// Whether `key` is a metadata key the startup script goes under (set by kasm-autoscale).
pub fn is_script_key(key: &str) -> bool {
    key.starts_with("startup-script")
        || key.starts_with("windows-startup-script")
        || key.starts_with("sysprep-specialize-script")
}

/// The region part of a zone name (`us-east4-b` → `us-east4`).
fn zone_region(zone: &str) -> &str {
    zone.rsplit_once('-').map_or(zone, |(r, _)| r)
}

fn check_fields(f: &mut Found, c: &GcpConfig) {
    need(f, c.gcp_boot_volume_gb >= 10, "gcp_boot_volume_gb", "must be at least 10 GB");
    if let Some(u) = c.resource_manager_url.as_deref() {
        need(f, crate::config::check::is_http_url(u), "resource_manager_url", "must be an http(s) URL");
    }
    for (field, v) in [
        ("gcp_project", &c.gcp_project),
        ("gcp_region", &c.gcp_region),
        ("gcp_zone", &c.gcp_zone),
        ("gcp_machine_type", &c.gcp_machine_type),
        ("gcp_image", &c.gcp_image),
        ("gcp_disk_type", &c.gcp_disk_type),
        ("gcp_network", &c.gcp_network),
        ("gcp_subnetwork", &c.gcp_subnetwork),
    ] {
        need(f, !is_blank(v), field, "must be set");
        need(f, v.trim() == v.as_str(), field, "must not start or end with whitespace");
    }
    if !is_blank(&c.gcp_zone) && !is_blank(&c.gcp_region) {
        need(
            f,
            zone_region(&c.gcp_zone) == c.gcp_region,
            "gcp_zone",
            format!("`{}` is not a zone of gcp_region `{}` (e.g. `{}-b`)", c.gcp_zone, c.gcp_region, c.gcp_region),
        );
    }
    if let Some((_, rest)) = c.gcp_subnetwork.split_once("/regions/") {
        let region = rest.split('/').next().unwrap_or_default();
        need(
            f,
            region == c.gcp_region,
            "gcp_subnetwork",
            format!("is in region `{region}`, not gcp_region `{}`", c.gcp_region),
        );
    }
    if let Some(k) = &c.gcp_cmek {
        need(
            f,
            k.is_empty() || (k.starts_with("projects/") && k.contains("/keyRings/") && k.contains("/cryptoKeys/")),
            "gcp_cmek",
            "must be a key path `projects/<p>/locations/<l>/keyRings/<r>/cryptoKeys/<k>`",
        );
    }
    if let Some(sa) = &c.gcp_service_account {
        need(f, !is_blank(&sa.email), "gcp_service_account.email", "must be set");
    }
    need(
        f,
        c.gcp_custom_labels.len() + OWN_LABELS <= LABELS_MAX,
        "gcp_custom_labels",
        format!("at most {} custom labels (GCP allows {LABELS_MAX}; {OWN_LABELS} are ours)", LABELS_MAX - OWN_LABELS),
    );
    for k in c.gcp_custom_labels.keys() {
        need(
            f,
            !k.starts_with("kasm-autoscale-") && !k.starts_with("kasm_autoscale_"),
            "gcp_custom_labels",
            format!("label key `{k}`: `kasm_autoscale_` keys are kasm-autoscale's ownership labels"),
        );
    }
    let mut total = 0usize;
    let mut seen = std::collections::BTreeSet::new();
    for (i, m) in c.gcp_metadata.iter().enumerate() {
        total += m.key.len() + m.value.len();
        need(
            f,
            m.value.len() <= METADATA_VALUE_MAX,
            &format!("gcp_metadata[{i}].value"),
            format!("is {} bytes; a GCP metadata value holds at most {METADATA_VALUE_MAX}", m.value.len()),
        );
        need(f, seen.insert(m.key.as_str()), &format!("gcp_metadata[{i}].key"), format!("`{}` is set twice", m.key));
        let key_ok = !m.key.is_empty()
            && m.key.len() <= 128
            && m.key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        need(
            f,
            key_ok,
            &format!("gcp_metadata[{i}].key"),
            "must be 1-128 letters, digits, `-` or `_` (`Metadata.items.key`'s pattern)",
        );
    }
    // The startup script goes in the same metadata: what is left for it.
    need(
        f,
        total + c.startup_script.len() <= METADATA_TOTAL_MAX,
        "gcp_metadata",
        format!(
            "gcp_metadata ({total} bytes) and startup_script ({} bytes) exceed GCP's {METADATA_TOTAL_MAX} bytes of metadata per instance",
            c.startup_script.len()
        ),
    );
    if !c.gcp_guest_accelerators.is_empty()
        && let Some(o) = &c.gcp_config_override
        && let Some(m) = o.0.get("scheduling").and_then(|s| s.get("onHostMaintenance")).and_then(Value::as_str)
    {
        need(
            f,
            m == "TERMINATE",
            "gcp_config_override.scheduling.onHostMaintenance",
            format!("`{m}`: GCP requires TERMINATE on instances with guest accelerators (GPUs)"),
        );
    }
    if c.gcp_startup_script_type.os() != c.gcp_vm_installed_os_type {
        f.push((
            "gcp_startup_script_type".into(),
            format!(
                "{} scripts do not run on {} VMs (gcp_vm_installed_os_type)",
                serde_name(&c.gcp_startup_script_type),
                serde_name(&c.gcp_vm_installed_os_type)
            ),
        ));
    }
    for (k, v) in c.gcp_custom_labels.iter() {
        need(
            f,
            gcp_name_ok(k, false),
            "gcp_custom_labels",
            format!("label key `{k}` must be 1-63 lowercase letters, digits, `-`, `_`, starting with a letter"),
        );
        let v_ok =
            v.len() <= 63 && v.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        need(
            f,
            v_ok,
            "gcp_custom_labels",
            format!("label `{k}`: value must be at most 63 lowercase letters, digits, `-`, `_`"),
        );
    }
    for (i, t) in c.gcp_network_tags.iter().enumerate() {
        let ok = gcp_name_ok(t, false) && !t.contains('_') && !t.ends_with('-');
        need(
            f,
            ok,
            &format!("gcp_network_tags[{i}]"),
            format!("`{t}` must be 1-63 lowercase letters, digits or `-`, starting with a letter"),
        );
    }
    for (i, m) in c.gcp_metadata.iter().enumerate() {
        let ours = is_script_key(&m.key);
        need(
            f,
            !ours,
            &format!("gcp_metadata[{i}].key"),
            format!("`{}` is set by kasm-autoscale from startup_script", m.key),
        );
    }
    for (i, a) in c.gcp_guest_accelerators.iter().enumerate() {
        need(
            f,
            !is_blank(&a.accelerator_type),
            &format!("gcp_guest_accelerators[{i}].acceleratorType"),
            "must be set (e.g. `nvidia-tesla-t4` or its full acceleratorTypes path)",
        );
        need(
            f,
            a.accelerator_count >= 1,
            &format!("gcp_guest_accelerators[{i}].acceleratorCount"),
            "must be at least 1",
        );
    }
    if let Some(o) = &c.gcp_config_override {
        f.extend(check_override(&o.0, "gcp_config_override"));
    }
    for (name, amount) in &c.gcp_quota_metrics {
        // Every name of the discovery document's `Quota.metric` enum is upper-case letters, digits and `_`.
        let named = !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        need(
            f,
            named,
            &format!("gcp_quota_metrics.{name}"),
            "must be a Compute Engine quota metric name such as `N2_CPUS` (upper-case letters, digits, `_`)",
        );
        need(
            f,
            amount.is_finite() && *amount > 0.0,
            &format!("gcp_quota_metrics.{name}"),
            format!("must be the positive amount of `{name}` one instance uses, not {amount}"),
        );
    }
}

/// Fields of the Compute Engine Instance resource that can be set on insert.
pub const GCP_INSTANCE_FIELDS: &[&str] = &[
    "advancedMachineFeatures",
    "canIpForward",
    "confidentialInstanceConfig",
    "deletionProtection",
    "description",
    "disks",
    "displayDevice",
    "guestAccelerators",
    "hostname",
    "instanceEncryptionKey",
    "keyRevocationActionType",
    "labels",
    "machineType",
    "metadata",
    "minCpuPlatform",
    "name",
    "networkInterfaces",
    "networkPerformanceConfig",
    "params",
    "privateIpv6GoogleAccess",
    "reservationAffinity",
    "resourcePolicies",
    "scheduling",
    "serviceAccounts",
    "shieldedInstanceConfig",
    "shieldedInstanceIntegrityPolicy",
    "sourceMachineImage",
    "sourceMachineImageEncryptionKey",
    "tags",
];

/// GCP: any Instance field but `name` and `labels` (Kasm's documented rule).
/// Checks the override `field` (see the module docs of `config::providers`).
pub fn check_override(o: &Map<String, Value>, field: &str) -> Found {
    let mut f = Found::new();
    for key in o.keys() {
        let path = format!("{field}.{key}");
        if key == "name" || key == "labels" {
            f.push((
                path,
                "cannot be overridden (name and labels are set by kasm-autoscale; use gcp_custom_labels)".into(),
            ));
        } else if !GCP_INSTANCE_FIELDS.contains(&key.as_str()) {
            let hint = did_you_mean(key, GCP_INSTANCE_FIELDS.iter().copied());
            f.push((path, format!("not a field of the Compute Engine Instance resource{hint}")));
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
    fn metadata_key_by_os_and_script_type() {
        let key = GcpConfig::metadata_key;
        assert_eq!(key(OsFamily::Linux, "#!/bin/bash"), "startup-script");
        assert_eq!(key(OsFamily::Windows, "Write-Host hi"), "windows-startup-script-ps1");
        assert_eq!(key(OsFamily::Windows, "\n@echo off\necho hi"), "windows-startup-script-cmd");
        assert_eq!(key(OsFamily::Windows, "REM install\necho hi"), "windows-startup-script-cmd");
        assert_eq!(key(OsFamily::Windows, "# sysprep-specialize\nx"), "sysprep-specialize-script-ps1");
        assert_eq!(key(OsFamily::Windows, "rem sysprep-specialize\nx"), "sysprep-specialize-script-cmd");
        assert_eq!(key(OsFamily::Windows, "Write-Host\n# sysprep-specialize"), "windows-startup-script-ps1");
    }

    #[test]
    fn gcp_may_change_anything_but_name_and_labels() {
        let ok =
            obj(json!({"shieldedInstanceConfig": {"enableSecureBoot": true}, "scheduling": {"preemptible": true}}));
        assert!(check_override(&ok, "o").is_empty());
        let found = check_override(&obj(json!({"name": "x", "labels": {}, "shieldedInstanceConfg": {}})), "o");
        assert_eq!(fields(&found), ["o.name", "o.labels", "o.shieldedInstanceConfg"]);
        assert!(found[2].1.contains("did you mean `shieldedInstanceConfig`"));
    }
}

#[cfg(test)]
mod check_tests {
    use super::*;

    fn base() -> GcpConfig {
        serde_yaml_ng::from_str(
            r#"
name: g
gcp_credentials: env:GCP_CREDS
max_instances: 2
gcp_project: pensive-voice-547511
gcp_region: us-east4
gcp_zone: us-east4-b
gcp_machine_type: e2-standard-2
gcp_image: projects/ubuntu-os-cloud/global/images/ubuntu-2204-jammy-v20240319
gcp_boot_volume_gb: 50
gcp_disk_type: pd-ssd
gcp_network: projects/pensive-voice-547511/global/networks/default
gcp_subnetwork: projects/pensive-voice-547511/regions/us-east4/subnetworks/default
"#,
        )
        .expect("config")
    }

    fn fields(c: &GcpConfig) -> Vec<String> {
        c.check().into_iter().map(|(f, _)| f).collect()
    }

    #[test]
    fn a_plain_config_passes() {
        assert!(base().check().is_empty(), "{:?}", base().check());
    }

    #[test]
    fn zone_subnetwork_and_cmek_must_agree_with_the_region() {
        let mut c = base();
        c.gcp_zone = "us-west1-a".into();
        c.gcp_subnetwork = "projects/p/regions/us-west1/subnetworks/default".into();
        c.gcp_cmek = Some("my-key".into());
        assert_eq!(fields(&c), ["gcp_zone", "gcp_subnetwork", "gcp_cmek"]);
        let mut c = base();
        c.gcp_machine_type = String::new();
        assert_eq!(fields(&c), ["gcp_machine_type"]);
    }

    #[test]
    fn metadata_is_limited_and_script_keys_are_ours() {
        let mut c = base();
        c.gcp_metadata = JsonText(vec![
            GcpMetadataItem { key: "big".into(), value: "x".repeat(METADATA_VALUE_MAX + 1) },
            GcpMetadataItem { key: "sysprep-specialize-script-ps1".into(), value: "x".into() },
            GcpMetadataItem { key: "big".into(), value: "y".repeat(METADATA_VALUE_MAX) },
        ]);
        let f = fields(&c);
        assert!(f.contains(&"gcp_metadata[0].value".to_string()), "{f:?}");
        assert!(f.contains(&"gcp_metadata[1].key".to_string()), "{f:?}");
        assert!(f.contains(&"gcp_metadata[2].key".to_string()), "{f:?}");
        assert!(f.contains(&"gcp_metadata".to_string()), "total over 512 KB: {f:?}");
    }

    #[test]
    fn gpus_need_terminate_on_host_maintenance_and_our_label_keys_are_reserved() {
        let mut c = base();
        c.gcp_guest_accelerators =
            JsonText(vec![GcpGuestAccelerator { accelerator_type: "nvidia-tesla-t4".into(), accelerator_count: 1 }]);
        c.gcp_config_override = Some(JsonText(
            serde_json::json!({"scheduling": {"onHostMaintenance": "MIGRATE"}}).as_object().unwrap().clone(),
        ));
        c.gcp_custom_labels = JsonText([("kasm-autoscale-claim".to_string(), "x".to_string())].into_iter().collect());
        assert_eq!(fields(&c), ["gcp_custom_labels", "gcp_config_override.scheduling.onHostMaintenance"]);
    }

    #[test]
    fn quota_metrics_need_metric_names_and_positive_amounts() {
        let mut c: GcpConfig = serde_yaml_ng::from_str(&format!(
            "{}gcp_quota_metrics: {{N2_CPUS: 2, NVIDIA_T4_GPUS: 1, INSTANCES: 1}}\n",
            serde_yaml_ng::to_string(&base()).unwrap()
        ))
        .expect("config");
        assert_eq!(c.gcp_quota_metrics.get("N2_CPUS"), Some(&2.0));
        assert!(c.check().is_empty(), "{:?}", c.check());
        c.gcp_quota_metrics =
            [("n2_cpus", 2.0), ("", 1.0), ("GPUS", 0.0), ("CPUS", f64::NAN)].map(|(k, v)| (k.to_string(), v)).into();
        assert_eq!(
            fields(&c),
            ["gcp_quota_metrics.n2_cpus", "gcp_quota_metrics.", "gcp_quota_metrics.GPUS", "gcp_quota_metrics.CPUS"]
        );
        assert!(c.check()[0].1.contains("quota metric name"), "{:?}", c.check());
        assert!(c.check()[2].1.contains("positive amount of `GPUS`"), "{:?}", c.check());
    }

    #[test]
    fn the_script_key_follows_the_script_type_and_the_sysprep_marker() {
        use GcpStartupScriptType as T;
        assert_eq!(T::Bash.metadata_key_for("#!/bin/bash"), "startup-script");
        assert_eq!(T::Powershell.metadata_key_for("Write-Host hi"), "windows-startup-script-ps1");
        assert_eq!(T::Bat.metadata_key_for("@echo off"), "windows-startup-script-bat");
        assert_eq!(T::Powershell.metadata_key_for("# sysprep-specialize\nx"), "sysprep-specialize-script-ps1");
        assert_eq!(T::Cmd.metadata_key_for("rem sysprep-specialize"), "sysprep-specialize-script-cmd");
        assert_eq!(T::Bash.metadata_key_for("# sysprep-specialize"), "startup-script");
    }
}
