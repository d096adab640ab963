//! Proxmox VE VM-provider config (fields from Kasm's documentation, "Proxmox Settings").

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::kasm_names::{KasmColumn, KasmColumns, Unit, own_id, renamed, same, size};
use crate::config::provider::ProviderConfigCommon;
use crate::config::secret::SecretRef;
use crate::model::{OsFamily, Resources};

fn yes() -> bool {
    true
}

/// Proxmox VE VM-provider settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxmoxConfig {
    /// A name to identify the config.
    pub name: String,
    /// Most autoscale VMs to run, regardless of other settings.
    pub max_instances: u32,
    /// Host name or IP and port of the Proxmox API, e.g. `192.168.100.40:8006`.
    pub host: String,
    /// The autoscale user including its realm, e.g. `KasmUser@pve`.
    pub username: String,
    /// The API token's name alone, e.g. `kasm_token` (not `KasmUser@pve!kasm_token`).
    pub token_name: String,
    /// The API token's secret value (a secret reference).
    pub token_value: SecretRef,
    /// Verify TLS certificates; turn off for self-signed certificates.
    #[serde(default = "yes")]
    pub verify_ssl: bool,
    /// First VMID this config may use; must not overlap another Proxmox config's range.
    pub vmid_range_lower: u32,
    /// Last VMID this config may use; must not overlap another Proxmox config's range.
    pub vmid_range_upper: u32,
    /// Make full clones (slower to create, faster to run) instead of linked clones.
    #[serde(default)]
    pub full_clone: bool,
    /// Name of the VM template cloned to make new VMs.
    pub template_name: String,
    /// The node holding the template.
    pub cluster_node_name: String,
    /// The resource pool new VMs are put in.
    #[serde(default)]
    pub resource_pool_name: Option<String>,
    /// Optional storage pool for the clones; needs `full_clone`.
    #[serde(default)]
    pub storage_pool_name: Option<String>,
    /// Optional node the VMs are created on (default: the cluster node).
    #[serde(default)]
    pub target_node_name: Option<String>,
    /// CPU cores of each VM.
    pub vm_cores: u32,
    /// Memory of each VM in GiB.
    pub vm_memory: u32,
    /// "Installed OS Type": Linux or Windows.
    #[serde(default)]
    pub installed_os_type: OsFamily,
    /// Absolute directory the startup script is uploaded to and run from, e.g. `/tmp` or `C:\windows\temp`;
    /// it must exist in the template.
    pub startup_script_path: String,
    /// Bash (Linux) or PowerShell (Windows) script run after the VM is created, typically installing the
    /// Kasm Agent (a template).
    #[serde(default)]
    pub startup_script: String,
    /// Our extension (not a Kasm field): the API's base URL instead of `https://{host}`, e.g. a
    /// TLS-terminating proxy, or a test server (`http://127.0.0.1:8006`). `/api2/json` is appended.
    #[serde(default)]
    pub endpoint_url: Option<String>,
}

/// Kasm's `proxmox_vm_configs` columns.
impl KasmColumns for ProxmoxConfig {
    const KASM_TABLE: &'static str = "proxmox_vm_configs";
    const KASM_COLUMNS: &'static [KasmColumn] = &[
        own_id("config_id"),
        renamed("config_name", "name"),
        same("max_instances"),
        same("host"),
        same("username"),
        same("token_name"),
        same("token_value"),
        same("verify_ssl"),
        same("vmid_range_lower"),
        same("vmid_range_upper"),
        same("full_clone"),
        same("template_name"),
        same("cluster_node_name"),
        same("resource_pool_name"),
        same("storage_pool_name"),
        same("target_node_name"),
        renamed("cores", "vm_cores"),
        size("memory_bytes", "vm_memory", Unit::Bytes, Unit::Gib, true),
        same("installed_os_type"),
        same("startup_script_path"),
        same("startup_script"),
    ];
}

impl ProviderConfigCommon for ProxmoxConfig {
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
        self.installed_os_type
    }
    fn vm_size(&self) -> Option<Resources> {
        Some(Resources::new(f64::from(self.vm_cores), f64::from(self.vm_memory) * 1024.0, 0.0))
    }
}
