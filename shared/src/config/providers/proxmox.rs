//! Proxmox VE VM-provider config (fields from Kasm's documentation, "Proxmox Settings").

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::check::{Found, need};
use crate::config::kasm_names::{KasmColumn, KasmColumns, Unit, own_id, renamed, same, size};
use crate::config::provider::{Endpoint, ProviderConfigCommon, VmProviderConfig};
use crate::config::secret::SecretRef;
use crate::model::{OsFamily, Resources};
use crate::script::{ScriptRules, WindowsScript};

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
    /// Our extension (not a Kasm field): PEM certificates trusted for the API's TLS in addition to the
    /// built-in roots (a private CA).
    #[serde(default)]
    pub ca_bundle: Option<String>,
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
    fn script_rules(&self) -> ScriptRules {
        // Proxmox: the guest agent's file-write (the provider checks its own 60 KiB bound); run as is.
        ScriptRules { provider: "proxmox", limit: None, windows: WindowsScript::AsIs, linux_cloud_init: false }
    }
    fn endpoint(&self) -> Endpoint<'_> {
        Endpoint { url: self.endpoint_url.as_deref(), ca_bundle: self.ca_bundle.as_deref() }
    }
    fn check(&self) -> Found {
        let mut f = Found::new();
        check_fields(&mut f, self);
        f
    }
    /// Each config owns its VMID range: two configs on the same host must not overlap.
    fn conflicts_with(&self, other: &VmProviderConfig) -> Option<(String, String)> {
        let VmProviderConfig::Proxmox(b) = other else { return None };
        (self.host == b.host
            && self.vmid_range_lower <= b.vmid_range_upper
            && b.vmid_range_lower <= self.vmid_range_upper)
            .then(|| ("vmid_range_lower".into(), format!("VMID range overlaps that of `{}` on the same host", b.name)))
    }
}

fn check_fields(f: &mut Found, c: &ProxmoxConfig) {
    let (lo, hi) = (c.vmid_range_lower, c.vmid_range_upper);
    need(f, (100..=999_999_999).contains(&lo), "vmid_range_lower", "must be a VMID in 100..=999999999");
    need(f, (100..=999_999_999).contains(&hi), "vmid_range_upper", "must be a VMID in 100..=999999999");
    if lo > hi {
        f.push(("vmid_range_upper".into(), format!("must not be below vmid_range_lower ({lo})")));
    } else if u64::from(hi - lo) + 1 < u64::from(c.max_instances) {
        f.push((
            "vmid_range_upper".into(),
            format!("the range holds {} VMIDs, fewer than max_instances ({})", hi - lo + 1, c.max_instances),
        ));
    }
    if c.storage_pool_name.is_some() && !c.full_clone {
        f.push((
            "storage_pool_name".into(),
            "requires full_clone (linked clones stay on the template's storage)".into(),
        ));
    }
    need(f, c.username.contains('@'), "username", "must include the realm, e.g. KasmUser@pve");
    need(
        f,
        !c.token_name.contains('!'),
        "token_name",
        "must be the token's name only (kasm_token, not KasmUser@pve!kasm_token)",
    );
    let path = &c.startup_script_path;
    let windows_abs = path.len() >= 3 && path.as_bytes()[1] == b':' && matches!(path.as_bytes()[2], b'\\' | b'/');
    need(
        f,
        path.starts_with('/') || windows_abs,
        "startup_script_path",
        "must be an absolute path, e.g. /tmp or C:\\windows\\temp",
    );
    need(f, c.vm_cores >= 1, "vm_cores", "must be at least 1");
    need(f, c.vm_memory >= 1, "vm_memory", "must be at least 1 GiB");
    if c.installed_os_type == OsFamily::Windows && path.starts_with('/') {
        f.push(("startup_script_path".into(), "is a Unix path but installed_os_type is windows".into()));
    }
}
