//! Harvester VM-provider config (fields from Kasm's documentation, "Harvester Settings").

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::kubevirt::{KubeInterfaceType, KubeManifest, KubeNetworkType};
use crate::config::check::{Found, is_blank, need};
use crate::config::kasm_names::{KasmColumn, KasmColumns, Unit, own_id, renamed, renamed_or_empty, same, size};
use crate::config::provider::{Endpoint, ProviderConfigCommon};
use crate::config::secret::SecretRef;
use crate::model::Resources;
use crate::script::{Limit, ScriptRules, WindowsScript};

/// Harvester VM-provider settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HarvesterConfig {
    /// A name to identify the config.
    pub name: String,
    /// Most autoscale VMs to run, regardless of other settings.
    pub max_instances: u32,
    /// Address of the Harvester instance from the kubeconfig, e.g. `https://harvester.example.com/k8s/clusters/local`.
    pub host: String,
    /// The Harvester CA certificate, base64 encoded, from the kubeconfig.
    pub ssl_certificate: String,
    /// The API token from the kubeconfig (a secret reference).
    pub api_token: SecretRef,
    /// The namespace the VMs are created in.
    pub vm_namespace: String,
    /// A public key given to the VMs; `{ssh_key}` in the startup script.
    #[serde(default)]
    pub vm_ssh_public_key: Option<String>,
    /// CPU cores of each VM.
    #[serde(alias = "vm_cores")]
    pub cores: u32,
    /// Memory of each VM in GiB.
    #[serde(alias = "vm_memory")]
    pub memory: u32,
    /// Name of the Harvester image (VirtualMachineImage) the VM disks are made from: `name` (in
    /// `vm_namespace`) or `namespace/name` (its object name, not its display name).
    pub disk_image: String,
    /// Disk size of each VM in GiB.
    pub disk_size: u32,
    /// Network type: pod or multus.
    #[serde(default)]
    pub network_type: KubeNetworkType,
    /// Interface type: masquerade or bridge.
    #[serde(default)]
    pub interface_type: KubeInterfaceType,
    /// Name of the network the VMs connect to (multus network type only): a NetworkAttachmentDefinition,
    /// `name` (in `vm_namespace`) or `namespace/name`.
    #[serde(default)]
    pub network_name: Option<String>,
    /// cloud-init, Bash or PowerShell script run after the VM is created, typically installing the Kasm Agent
    /// (a template; match the script to the OS).
    #[serde(default)]
    pub startup_script: String,
    /// "Configuration Override": an optional complete VirtualMachine manifest used to create the VMs.
    #[serde(default, alias = "config_override")]
    pub configuration_override: Option<KubeManifest>,
    /// Enable a TPM for the VMs.
    #[serde(default)]
    pub enable_tpm: bool,
    /// Enable the EFI boot loader.
    #[serde(default)]
    pub enable_efi_boot: bool,
    /// Enable Secure Boot (requires EFI boot).
    #[serde(default)]
    pub enable_secure_boot: bool,
    /// Our extension (not a Kasm field): the API's base URL instead of the provider's default, for private
    /// clouds, sovereign regions and test servers (like `AWS_ENDPOINT_URL`).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Our extension (not a Kasm field): PEM certificates trusted for the API's TLS in addition to the
    /// built-in roots (a private CA).
    #[serde(default)]
    pub ca_bundle: Option<String>,
}

/// Kasm's `harvester_vm_configs` columns.
impl KasmColumns for HarvesterConfig {
    const KASM_TABLE: &'static str = "harvester_vm_configs";
    const KASM_COLUMNS: &'static [KasmColumn] = &[
        own_id("config_id"),
        renamed("config_name", "name"),
        same("max_instances"),
        renamed("kube_host", "host"),
        renamed("kube_ssl_cert", "ssl_certificate"),
        renamed("kube_api_token", "api_token"),
        same("vm_namespace"),
        renamed("vm_public_ssh_key", "vm_ssh_public_key"),
        same("cores"),
        size("memory_bytes", "memory", Unit::Bytes, Unit::Gib, true),
        same("disk_image"),
        size("disk_size_bytes", "disk_size", Unit::Bytes, Unit::Gib, true),
        same("network_type"),
        same("interface_type"),
        same("network_name"),
        same("startup_script"),
        renamed_or_empty("config_override", "configuration_override"),
        same("enable_tpm"),
        same("enable_efi_boot"),
        same("enable_secure_boot"),
    ];
}

impl ProviderConfigCommon for HarvesterConfig {
    fn ssh_public_key(&self) -> Option<&str> {
        self.vm_ssh_public_key.as_deref()
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
        Some(Resources::new(f64::from(self.cores), f64::from(self.memory) * 1024.0, 0.0))
    }
    fn script_rules(&self) -> ScriptRules {
        // As on KubeVirt: the user data is a Secret's `userdata` key on a config drive, read by cloud-init
        // (Linux) or cloudbase-init (Windows, `#ps1_sysnative` first line). A Secret holds at most 1 MiB
        // (Kubernetes documentation, "Secrets"); base64 in `data` counts against it.
        ScriptRules {
            provider: "harvester",
            limit: Some(Limit::Base64(1024 * 1024)),
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

/// Whether `s` is a DNS-1123 label (a Kubernetes object name of this kind).
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn check_fields(f: &mut Found, c: &HarvesterConfig) {
    super::kubevirt::check_kube(f, &c.ssl_certificate, (c.enable_efi_boot, c.enable_secure_boot));
    need(
        f,
        c.network_type != KubeNetworkType::Multus || c.network_name.as_deref().is_some_and(|n| !is_blank(n)),
        "network_name",
        "is required with the multus network type",
    );
    need(f, !is_blank(&c.vm_namespace), "vm_namespace", "must not be empty");
    // A VirtualMachineImage: `name` (in vm_namespace) or `namespace/name`, each a DNS label.
    let image_ok = {
        let d = c.disk_image.trim();
        let parts: Vec<&str> = d.split('/').collect();
        parts.len() <= 2 && parts.iter().all(|p| is_dns_label(p))
    };
    need(
        f,
        c.configuration_override.is_some() || image_ok,
        "disk_image",
        "must name a Harvester VirtualMachineImage: `name` or `namespace/name` (lowercase letters, digits, `-`)",
    );
    for (k, v) in ["cores", "memory", "disk_size"].iter().zip([c.cores, c.memory, c.disk_size]) {
        need(f, v >= 1, k, "must be at least 1");
    }
    if let Some(m) = &c.configuration_override {
        f.extend(super::kubevirt::kube_manifest(&m.0, "configuration_override"));
    }
}
