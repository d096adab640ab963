//! Azure VM-provider config (fields from Kasm's documentation, "Azure VM Settings").

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::json_text::JsonText;
use crate::config::kasm_names::{
    Accept, KasmColumn, KasmColumns, Unit, no_field, own_id, renamed, same, same_or_empty, size,
};
use crate::config::provider::ProviderConfigCommon;
use crate::config::secret::SecretRef;
use crate::model::{OsFamily, Resources};

/// The Azure cloud (authority) to authenticate against. Kasm writes the names in capitals (`AZURE_PUBLIC_CLOUD`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AzureAuthority {
    /// Azure Public Cloud (login.microsoftonline.com).
    #[default]
    #[serde(alias = "AZURE_PUBLIC_CLOUD")]
    AzurePublicCloud,
    /// Azure Government.
    #[serde(alias = "AZURE_GOVERNMENT")]
    AzureGovernment,
    /// Azure China (21Vianet).
    #[serde(alias = "AZURE_CHINA")]
    AzureChina,
    /// Azure Germany.
    #[serde(alias = "AZURE_GERMANY")]
    AzureGermany,
}

/// The OS image of the VMs: a marketplace image (`publisher`/`offer`/`sku`/`version`) or an image by `id`
/// (e.g. a gallery image).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum AzureImageReference {
    /// An image by resource id.
    Id {
        /// The image's resource id, e.g. `/subscriptions/.../galleries/g/images/ubuntu-custom`.
        id: String,
    },
    /// A marketplace image.
    Marketplace {
        /// Image publisher, e.g. `canonical`.
        publisher: String,
        /// Image offer, e.g. `0001-com-ubuntu-server-focal`.
        offer: String,
        /// Image SKU, e.g. `20_04-lts-gen2`.
        sku: String,
        /// Image version, e.g. `latest`.
        version: String,
    },
}

/// Azure VM-provider settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    /// A name to identify the config.
    pub name: String,
    /// The Subscription ID of the Azure account (Azure portal → Subscriptions), a UUID.
    #[serde(alias = "subscription_id")]
    pub azure_subscription_id: String,
    /// The Resource Group the VMs (and/or DNS zone) belong to, e.g. `dev`.
    #[serde(alias = "resource_group")]
    pub azure_resource_group: String,
    /// The Tenant ID of the Azure account (Azure Active Directory), a UUID.
    #[serde(alias = "tenant_id")]
    pub azure_tenant_id: String,
    /// The Client ID of the app registered in Azure Active Directory, a UUID.
    #[serde(alias = "client_id")]
    pub azure_client_id: String,
    /// The Client Secret created with the registered app (a secret reference).
    #[serde(alias = "client_secret")]
    pub azure_client_secret: SecretRef,
    /// Which Azure authority (cloud) to use.
    #[serde(default)]
    pub azure_authority: AzureAuthority,
    /// The Azure region where the VMs are created, e.g. `eastus`.
    #[serde(alias = "region")]
    pub azure_region: String,
    /// Most Azure VMs to run regardless of the need for more resources.
    pub max_instances: u32,
    /// The VM size, e.g. `Standard_D2s_v3`.
    #[serde(alias = "vm_size")]
    pub azure_vm_size: String,
    /// The OS disk type, e.g. `Premium_LRS`.
    #[serde(alias = "os_disk_type")]
    pub azure_os_disk_type: String,
    /// Size (GB) of the OS (boot) disk.
    #[serde(alias = "os_disk_size_gb")]
    pub azure_os_disk_size_gb: u32,
    /// The OS image reference: an object, or JSON text of one (e.g. `{"publisher":"canonical",
    /// "offer":"0001-com-ubuntu-server-focal","sku":"20_04-lts-gen2","version":"latest"}` or `{"id":"/subscriptions/..."}`).
    #[serde(alias = "os_image_reference")]
    pub azure_image_reference: JsonText<AzureImageReference>,
    /// "Image is Windows": the image is a Windows VM.
    #[serde(default, alias = "image_is_windows")]
    pub azure_image_is_windows: bool,
    /// Resource id of the network security group attached to the VM.
    #[serde(default, alias = "network_security_group")]
    pub azure_network_sg: Option<String>,
    /// Resource id of the subnet the VM is attached to.
    #[serde(alias = "subnet")]
    pub azure_subnet: String,
    /// Give the VM a public IP. Without one the subnet needs a standard load balancer, a NAT Gateway or a
    /// user-defined route; with one, the subnet must not have a NAT Gateway.
    #[serde(default, alias = "assign_public_ip")]
    pub azure_public_ip: bool,
    /// Custom tags for the VMs: a map, or JSON text of one, e.g. `{"foo":"bar"}`.
    #[serde(default, alias = "tags")]
    pub azure_tags: JsonText<IndexMap<String, String>>,
    /// The login username of the new VM, e.g. `testuser`.
    #[serde(alias = "os_username")]
    pub azure_os_username: String,
    /// The login password of the new VM (a secret reference). Password authentication over SSH is off by default.
    #[serde(default, alias = "os_password")]
    pub azure_os_password: Option<SecretRef>,
    /// The SSH public key installed for the user, e.g. `ssh-rsa AAAA...`.
    #[serde(default, alias = "ssh_public_key")]
    pub azure_ssh_public_key: Option<String>,
    /// "Agent Startup Script": run when a VM is created; installs and configures the Kasm Agent (a template).
    #[serde(default, alias = "agent_startup_script")]
    pub startup_script: String,
    /// Config override: keys update the emitted VM JSON (as shown by "JSON View" in the Azure console); a
    /// top-level key (`{"location":"eastus"}`), dot notation for nested items
    /// (`{"hardware_profile.vm_size":"Standard_D4s_v3"}`) and indices for existing array elements
    /// (`os_profile.linux_configuration.ssh.public_keys.0.path`). A map or JSON text.
    #[serde(default, alias = "config_override")]
    pub azure_config_override: Option<JsonText<serde_json::Map<String, serde_json::Value>>>,
}

/// Kasm's `azure_configs` columns.
impl KasmColumns for AzureConfig {
    const KASM_TABLE: &'static str = "azure_configs";
    const KASM_COLUMNS: &'static [KasmColumn] = &[
        own_id("azure_config_id"),
        renamed("config_name", "name"),
        same("azure_subscription_id"),
        same("azure_resource_group"),
        same("azure_tenant_id"),
        same("azure_client_id"),
        same("azure_client_secret"),
        same("azure_authority"),
        same("azure_region"),
        same("max_instances"),
        same("azure_vm_size"),
        same("azure_os_disk_type"),
        size("azure_os_disk_size_bytes", "azure_os_disk_size_gb", Unit::Bytes, Unit::Gib, true),
        same("azure_image_reference"),
        renamed("azure_is_windows", "azure_image_is_windows"),
        same("azure_network_sg"),
        same("azure_subnet"),
        same("azure_public_ip"),
        same("azure_tags"),
        same("azure_os_username"),
        same("azure_os_password"),
        same("azure_ssh_public_key"),
        same("startup_script"),
        same_or_empty("azure_config_override"),
        no_field(
            "plan_name",
            "no marketplace-plan field in kasm-autoscale yet; set the plan through `azure_config_override`",
            Accept::Unset,
        ),
        no_field(
            "plan_product",
            "no marketplace-plan field in kasm-autoscale yet; set the plan through `azure_config_override`",
            Accept::Unset,
        ),
        no_field(
            "plan_publisher",
            "no marketplace-plan field in kasm-autoscale yet; set the plan through `azure_config_override`",
            Accept::Unset,
        ),
        no_field(
            "security_type",
            "no security-profile field in kasm-autoscale yet; set it through `azure_config_override`",
            Accept::Unset,
        ),
        no_field(
            "secure_boot_enabled",
            "no security-profile field in kasm-autoscale yet; set it through `azure_config_override`",
            Accept::Unset,
        ),
        no_field(
            "tpm_enabled",
            "no security-profile field in kasm-autoscale yet; set it through `azure_config_override`",
            Accept::Unset,
        ),
    ];
}

impl ProviderConfigCommon for AzureConfig {
    fn ssh_public_key(&self) -> Option<&str> {
        self.azure_ssh_public_key.as_deref()
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
    fn os(&self) -> OsFamily {
        if self.azure_image_is_windows { OsFamily::Windows } else { OsFamily::Linux }
    }
    fn vm_size(&self) -> Option<Resources> {
        super::sizes::azure(&self.azure_vm_size)
    }
}
