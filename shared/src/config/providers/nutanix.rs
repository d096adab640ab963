//! Nutanix (Prism Central) VM-provider config (fields from Kasm's documentation, "Nutanix Settings").

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::check::{Found, need};
use crate::config::kasm_names::{KasmColumn, KasmColumns, Unit, own_id, renamed, same, size};
use crate::config::provider::{Endpoint, ProviderConfigCommon};
use crate::config::secret::SecretRef;
use crate::model::Resources;
use crate::script::{ScriptRules, WindowsScript};

fn port() -> u16 {
    9440
}
fn yes() -> bool {
    true
}

/// The Prism Central API version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NutanixApiVersion {
    /// v3 (recommended).
    #[default]
    V3,
    /// v4 (preview).
    V4,
}

/// Nutanix VM-provider settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NutanixConfig {
    /// A name to identify the config.
    pub name: String,
    /// Most autoscale VMs to run, regardless of other settings.
    pub max_instances: u32,
    /// IP or FQDN of the Prism Central server, e.g. `nutanix.example.com`.
    pub host: String,
    /// Port of the Prism Central server (usually 9440).
    #[serde(default = "port")]
    pub port: u16,
    /// The user kasm-autoscale signs in to Prism Central as.
    pub username: String,
    /// That user's password (a secret reference).
    pub password: SecretRef,
    /// Validate TLS certificates; turn off for self-signed certificates.
    #[serde(default = "yes")]
    pub verify_ssl: bool,
    /// The Prism Central API version: v3 (recommended) or v4 (preview).
    #[serde(default)]
    pub api_version: NutanixApiVersion,
    /// Name of the VM cloned to make new VMs.
    pub vm_candidate_name: String,
    /// CPU cores of each new VM.
    pub vm_cores: u32,
    /// Memory of each new VM in GiB.
    pub vm_memory: u32,
    /// Run when a VM is created; installs the Kasm Agent (Docker Agents) or the Kasm Desktop Service (Windows).
    /// Bash or cloud-config on Linux, PowerShell on Windows (a template).
    #[serde(default)]
    pub startup_script: String,
    /// Our extension (not a Kasm field): the API's base URL instead of the provider's default, for private
    /// clouds, sovereign regions and test servers (like `AWS_ENDPOINT_URL`).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Our extension (not a Kasm field): PEM certificates trusted for the API's TLS in addition to the
    /// built-in roots (a private CA).
    #[serde(default)]
    pub ca_bundle: Option<String>,
}

/// Kasm's `nutanix_vm_configs` columns.
impl KasmColumns for NutanixConfig {
    const KASM_TABLE: &'static str = "nutanix_vm_configs";
    const KASM_COLUMNS: &'static [KasmColumn] = &[
        own_id("config_id"),
        renamed("config_name", "name"),
        same("max_instances"),
        same("host"),
        same("port"),
        same("username"),
        same("password"),
        same("verify_ssl"),
        same("api_version"),
        renamed("vm_candidate", "vm_candidate_name"),
        renamed("cores", "vm_cores"),
        size("memory_bytes", "vm_memory", Unit::Bytes, Unit::Gib, true),
        same("startup_script"),
    ];
}

impl ProviderConfigCommon for NutanixConfig {
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
        Some(Resources::new(f64::from(self.vm_cores), f64::from(self.vm_memory) * 1024.0, 0.0))
    }
    fn script_rules(&self) -> ScriptRules {
        // Nutanix: guest customization (cloud-init / sysprep); no documented limit we enforce.
        ScriptRules { provider: "nutanix", limit: None, windows: WindowsScript::AsIs, linux_cloud_init: true }
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

fn check_fields(f: &mut Found, c: &NutanixConfig) {
    need(f, c.port >= 1, "port", "must be a port in 1..=65535");
    need(f, c.vm_cores >= 1, "vm_cores", "must be at least 1");
    need(f, c.vm_memory >= 1, "vm_memory", "must be at least 1 GiB");
}
