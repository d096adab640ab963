//! KubeVirt VM-provider config (fields from Kasm's documentation, "KubeVirt Settings").

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::json_text::YamlText;
use crate::config::kasm_names::{KasmColumn, KasmColumns, Unit, own_id, renamed, renamed_or_empty, same, size};
use crate::config::provider::ProviderConfigCommon;
use crate::config::secret::SecretRef;
use crate::model::Resources;

/// How the VM's interface is connected (KubeVirt interface binding).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KubeInterfaceType {
    /// NAT behind the pod's address.
    #[default]
    Masquerade,
    /// Bridged onto the network.
    Bridge,
}

/// The network the VM joins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KubeNetworkType {
    /// The pod network.
    #[default]
    Pod,
    /// A Multus network (named by the network name field).
    Multus,
}

/// A complete VirtualMachine manifest (YAML text or a native mapping).
pub type KubeManifest = YamlText<serde_json::Map<String, serde_json::Value>>;

/// KubeVirt VM-provider settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubevirtConfig {
    /// A name to identify the config.
    pub name: String,
    /// Most KubeVirt VMs to run regardless of the need for more resources.
    pub max_instances: u32,
    /// Address of the Kubernetes API, e.g. `https://kubevirt.domain:5000`.
    #[serde(alias = "kubernetes_host")]
    pub host: String,
    /// The cluster's CA certificate: a PEM file, base64 encoded (as `certificate-authority-data` in a kubeconfig).
    #[serde(alias = "kubernetes_ssl_certificate")]
    pub ssl_certificate: String,
    /// The bearer token for the Kubernetes API (a secret reference).
    #[serde(alias = "kubernetes_api_token")]
    pub api_token: SecretRef,
    /// The namespace the VMs are created in. Do not change it while the provider is in use (its VMs would be
    /// orphaned); create a new provider instead.
    pub vm_namespace: String,
    /// The SSH public key given to the VM (`{ssh_key}` in the startup script).
    #[serde(default)]
    pub vm_ssh_public_key: Option<String>,
    /// CPU cores of each VM.
    pub vm_cores: u32,
    /// Memory of each VM in GiB.
    pub vm_memory: u32,
    /// Disk size of each VM in GiB.
    pub vm_disk_size: u32,
    /// Name of the source PVC holding a cloud-ready disk image, cloned for each VM's disk.
    pub vm_disk_source: String,
    /// Interface type: masquerade or bridge.
    #[serde(default)]
    pub vm_interface_type: KubeInterfaceType,
    /// Name of the network interface; for a Multus network, the name of that network.
    pub vm_network_name: String,
    /// Network type: pod or multus.
    #[serde(default)]
    pub vm_network_type: KubeNetworkType,
    /// Run when a VM is created; installs and configures the Kasm Agent (bash on Linux, PowerShell on Windows;
    /// a template).
    #[serde(default, alias = "vm_startup_script")]
    pub startup_script: String,
    /// "Configuration Override": a complete VirtualMachine manifest used instead of the fields above. Its name,
    /// namespace and labels are replaced, `runStrategy` is set to Always, a config-drive disk is appended and
    /// `$KASM_NAME` is replaced by the VM's unique name (use it for PVC / DataVolume names).
    #[serde(default, alias = "config_override")]
    pub configuration_override: Option<KubeManifest>,
    /// Enable a TPM for the VM.
    #[serde(default)]
    pub enable_tpm: bool,
    /// Enable the EFI boot loader.
    #[serde(default)]
    pub enable_efi_boot: bool,
    /// Enable Secure Boot (requires EFI boot).
    #[serde(default)]
    pub enable_secure_boot: bool,
}

/// Kasm's `kubevirt_vm_configs` columns.
impl KasmColumns for KubevirtConfig {
    const KASM_TABLE: &'static str = "kubevirt_vm_configs";
    const KASM_COLUMNS: &'static [KasmColumn] = &[
        own_id("config_id"),
        renamed("config_name", "name"),
        same("max_instances"),
        renamed("kube_host", "host"),
        renamed("kube_ssl_cert", "ssl_certificate"),
        renamed("kube_api_token", "api_token"),
        same("vm_namespace"),
        renamed("vm_public_ssh_key", "vm_ssh_public_key"),
        renamed("cores", "vm_cores"),
        size("memory_bytes", "vm_memory", Unit::Bytes, Unit::Gib, true),
        size("disk_size_bytes", "vm_disk_size", Unit::Bytes, Unit::Gib, true),
        renamed("disk_source", "vm_disk_source"),
        renamed("interface_type", "vm_interface_type"),
        renamed("network_name", "vm_network_name"),
        renamed("network_type", "vm_network_type"),
        same("startup_script"),
        renamed_or_empty("config_override", "configuration_override"),
        same("enable_tpm"),
        same("enable_efi_boot"),
        same("enable_secure_boot"),
    ];
}

impl ProviderConfigCommon for KubevirtConfig {
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
        Some(Resources::new(f64::from(self.vm_cores), f64::from(self.vm_memory) * 1024.0, 0.0))
    }
}
