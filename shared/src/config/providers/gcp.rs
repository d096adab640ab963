//! Google Cloud (GCP) VM-provider config (fields from Kasm's documentation, "Google Cloud (GCP) Settings").

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::json_text::JsonText;
use crate::config::kasm_names::{KasmColumn, KasmColumns, Unit, own_id, renamed, same, same_or_empty, size};
use crate::config::provider::ProviderConfigCommon;
use crate::config::secret::SecretRef;
use crate::model::{OsFamily, Resources};

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
}
