//! VMware vSphere VM-provider config (fields from Kasm's documentation, "VMware vSphere Settings").

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::check::{Found, need};
use crate::config::kasm_names::{Accept, KasmColumn, KasmColumns, Unit, no_field, own_id, renamed, same, size};
use crate::config::provider::{Endpoint, ProviderConfigCommon};
use crate::config::secret::SecretRef;
use crate::model::{OsFamily, Resources};
use crate::script::{ScriptRules, WindowsScript};

fn port() -> u16 {
    443
}

/// VMware vSphere VM-provider settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VsphereConfig {
    /// A name to identify the config.
    pub name: String,
    /// IP or FQDN of the vCenter server.
    pub vsphere_vcenter_address: String,
    /// Management port of vCenter (typically 443).
    #[serde(default = "port")]
    pub vsphere_vcenter_port: u16,
    /// Username for vCenter.
    pub vsphere_vcenter_username: String,
    /// Password for vCenter (a secret reference).
    pub vsphere_vcenter_password: SecretRef,
    /// Name of the template VM cloned to make new VMs.
    pub vm_template_name: String,
    /// Most vSphere VMs to run regardless of the need for free capacity.
    pub max_instances: u32,
    /// The datacenter the clones are made in.
    pub datacenter_name: String,
    /// VM folder of the clones (default: the template's).
    #[serde(default)]
    pub vm_folder: Option<String>,
    /// Datastore of the clones (default: the template's).
    #[serde(default)]
    pub datastore_name: Option<String>,
    /// Cluster of the clones (default: the template's).
    #[serde(default)]
    pub cluster_name: Option<String>,
    /// Resource pool of the clones (default: the template's).
    #[serde(default)]
    pub resource_pool: Option<String>,
    /// Datastore cluster of the clones (default: the template's).
    #[serde(default)]
    pub datastore_cluster_name: Option<String>,
    /// Guest OS account the startup script runs as; it needs the privileges the script uses.
    pub guest_vm_username: String,
    /// Password of the guest account (a secret reference).
    pub guest_vm_password: SecretRef,
    /// CPUs of each new VM (independent of the template).
    pub number_of_guest_cpus: u32,
    /// Memory of each new VM in GiB (independent of the template).
    #[serde(alias = "amount_of_guest_memory")]
    pub amount_of_guest_memory_gib: u32,
    /// "What family of OS is installed in the VM": Linux or Windows; decides how the script is run.
    #[serde(default)]
    pub os_family: OsFamily,
    /// Run when a VM is created (bash on Linux, PowerShell on Windows, through VMware Tools); installs and
    /// configures the Kasm Agent (a template).
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

/// Kasm's `vsphere_vm_configs` columns; Kasm 1.15's API writes `vsphere_datastore`,
/// `vsphere_datastore_cluster_name` and `vsphere_memoryMB` (MiB) instead.
impl KasmColumns for VsphereConfig {
    const KASM_TABLE: &'static str = "vsphere_vm_configs";
    const KASM_COLUMNS: &'static [KasmColumn] = &[
        own_id("config_id"),
        renamed("config_name", "name"),
        same("max_instances"),
        same("vsphere_vcenter_address"),
        same("vsphere_vcenter_port"),
        same("vsphere_vcenter_username"),
        same("vsphere_vcenter_password"),
        renamed("vsphere_template_name", "vm_template_name"),
        renamed("vsphere_datacenter_name", "datacenter_name"),
        renamed("vsphere_vm_folder", "vm_folder"),
        renamed("vsphere_datastore_name", "datastore_name"),
        renamed("vsphere_datastore", "datastore_name"),
        renamed("vsphere_datastore_cluster_name", "datastore_cluster_name"),
        renamed("vsphere_cluster_name", "cluster_name"),
        renamed("vsphere_resource_pool", "resource_pool"),
        renamed("vsphere_os_username", "guest_vm_username"),
        renamed("vsphere_os_password", "guest_vm_password"),
        renamed("vsphere_cpus", "number_of_guest_cpus"),
        size("vsphere_memory_bytes", "amount_of_guest_memory_gib", Unit::Bytes, Unit::Gib, true),
        size("vsphere_memoryMB", "amount_of_guest_memory_gib", Unit::Mib, Unit::Gib, true),
        renamed("vsphere_installed_OS_type", "os_family"),
        same("startup_script"),
        no_field(
            "vsphere_use_datastore_cluster",
            "which datastore cluster it means is not known to kasm-autoscale; name it in `datastore_cluster_name`",
            Accept::Unset,
        ),
        no_field(
            "vsphere_clone_type",
            "kasm-autoscale's vSphere config clones the template and has no clone-type field",
            Accept::Unset,
        ),
        no_field("vsphere_vm_snapshot_name", "kasm-autoscale clones the template, not a snapshot", Accept::Unset),
        no_field("vsphere_vm_name", "kasm-autoscale names the VMs itself (by claim)", Accept::Unset),
        no_field(
            "vsphere_startup_script_method",
            "kasm-autoscale's vSphere config runs the startup script through VMware Tools and has no other method",
            Accept::Unset,
        ),
        no_field("vm_public_ssh_key", "kasm-autoscale's vSphere config has no SSH key field yet", Accept::Unset),
    ];
}

impl ProviderConfigCommon for VsphereConfig {
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
        self.os_family
    }
    fn vm_size(&self) -> Option<Resources> {
        Some(Resources::new(
            f64::from(self.number_of_guest_cpus),
            f64::from(self.amount_of_guest_memory_gib) * 1024.0,
            0.0,
        ))
    }
    fn script_rules(&self) -> ScriptRules {
        // vSphere: guest-operations file transfer; no documented limit we enforce; run as is.
        ScriptRules { provider: "vsphere", limit: None, windows: WindowsScript::AsIs, linux_cloud_init: false }
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

fn check_fields(f: &mut Found, c: &VsphereConfig) {
    need(f, c.vsphere_vcenter_port >= 1, "vsphere_vcenter_port", "must be a port in 1..=65535");
    need(f, c.number_of_guest_cpus >= 1, "number_of_guest_cpus", "must be at least 1");
    need(f, c.amount_of_guest_memory_gib >= 1, "amount_of_guest_memory_gib", "must be at least 1 GiB");
}
