//! Azure VM-provider config (fields from Kasm's documentation, "Azure VM Settings").

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::check::{Found, need};
use crate::config::did_you_mean::did_you_mean;
use crate::config::json_text::JsonText;
use crate::config::kasm_names::{
    Accept, KasmColumn, KasmColumns, Unit, no_field, own_id, renamed, same, same_or_empty, size,
};
use crate::config::provider::{Endpoint, ProviderConfigCommon};
use crate::config::secret::SecretRef;
use crate::model::{OsFamily, Resources};
use crate::script::{Limit, ScriptRules, WindowsScript};
use serde_json::{Map, Value};

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
    /// Our extension (not a Kasm field): the API's base URL instead of the provider's default, for private
    /// clouds, sovereign regions and test servers (like `AWS_ENDPOINT_URL`).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Our extension (not a Kasm field): PEM certificates trusted for the API's TLS in addition to the
    /// built-in roots (a private CA).
    #[serde(default)]
    pub ca_bundle: Option<String>,
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
    fn script_rules(&self) -> ScriptRules {
        // Azure custom data: "The size can't exceed 64 KB" (Azure docs); the API rejects more than 87,380
        // base64 characters, i.e. 65,535 raw bytes. Not run on Windows: saved to %SYSTEMDRIVE%\AzureData\CustomData.bin.
        ScriptRules {
            provider: "azure",
            limit: Some(Limit::Base64(87_380)),
            windows: WindowsScript::SavedNotRun("C:\\AzureData\\CustomData.bin"),
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

fn check_fields(f: &mut Found, c: &AzureConfig) {
    need(f, c.azure_os_disk_size_gb >= 1, "azure_os_disk_size_gb", "must be at least 1 GB");
    if c.azure_image_is_windows {
        need(f, c.azure_os_password.is_some(), "azure_os_password", "is required for Windows images");
    } else {
        need(
            f,
            c.azure_os_password.is_some() || c.azure_ssh_public_key.is_some(),
            "azure_ssh_public_key",
            "a Linux VM needs azure_ssh_public_key or azure_os_password",
        );
    }
    if let Some(o) = &c.azure_config_override {
        f.extend(check_override(&o.0, "azure_config_override"));
    }
}

/// Top-level keys of the VM JSON Kasm emits for Azure (snake_case, as the Azure SDK names them), with the
/// known keys below the profiles (`None` = anything below is passed through).
const AZURE_KEYS: &[(&str, Option<&[&str]>)] = &[
    ("location", None),
    ("tags", None),
    ("plan", None),
    ("identity", None),
    ("zones", None),
    ("extended_location", None),
    ("hardware_profile", Some(&["vm_size", "vm_size_properties"])),
    ("scheduled_events_profile", None),
    (
        "storage_profile",
        Some(&["image_reference", "os_disk", "data_disks", "disk_controller_type", "align_regional_disks_to_vm_zone"]),
    ),
    ("additional_capabilities", None),
    (
        "os_profile",
        Some(&[
            "computer_name",
            "admin_username",
            "admin_password",
            "custom_data",
            "windows_configuration",
            "linux_configuration",
            "secrets",
            "allow_extension_operations",
            "require_guest_provision_signal",
        ]),
    ),
    ("network_profile", Some(&["network_interfaces", "network_api_version", "network_interface_configurations"])),
    (
        "security_profile",
        Some(&["uefi_settings", "encryption_at_host", "security_type", "encryption_identity", "proxy_agent_settings"]),
    ),
    ("diagnostics_profile", Some(&["boot_diagnostics"])),
    ("availability_set", None),
    ("virtual_machine_scale_set", None),
    ("proximity_placement_group", None),
    ("priority", None),
    ("eviction_policy", None),
    ("billing_profile", None),
    ("host", None),
    ("host_group", None),
    ("license_type", None),
    ("extensions_time_budget", None),
    ("platform_fault_domain", None),
    ("user_data", None),
    ("capacity_reservation", None),
    ("application_profile", None),
];

/// Azure: dot-notation keys (`hardware_profile.vm_size`, `...public_keys.0.path`) onto the emitted VM JSON.
/// Checks the override `field` (see the module docs of `config::providers`).
pub fn check_override(o: &Map<String, Value>, field: &str) -> Found {
    let mut f = Found::new();
    for (key, v) in o {
        let path = format!("{field}.{key}");
        let segs: Vec<&str> = key.split('.').collect();
        if segs.iter().any(|s| s.is_empty()) {
            f.push((path, "empty segment in dot-notation key".into()));
            continue;
        }
        let top = segs[0];
        let Some((_, below)) = AZURE_KEYS.iter().find(|(k, _)| *k == top) else {
            let why = match top {
                "name" | "id" | "type" => " (set by kasm-autoscale / Azure)".to_string(),
                _ => did_you_mean(top, AZURE_KEYS.iter().map(|(k, _)| *k)),
            };
            f.push((path, format!("`{top}` is not a key of the Azure VM JSON{why}")));
            continue;
        };
        if top == "tags" && segs.len() == 1 {
            f.push((path, "would replace the ownership tags; use azure_tags or `tags.<key>`".into()));
            continue;
        }
        if key == "os_profile.custom_data" {
            f.push((path, "cannot be overridden: it is rendered from startup_script".into()));
            continue;
        }
        if let (Some(below), Some(second)) = (below, segs.get(1))
            && !below.contains(second)
        {
            let hint = did_you_mean(second, below.iter().copied());
            f.push((path, format!("`{second}` is not a key of `{top}`{hint}")));
            continue;
        }
        if segs.len() == 1 && below.is_some() && !v.is_object() {
            f.push((path, format!("`{top}` is an object; set it to an object or use dot notation")));
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
    fn azure_keys_must_start_at_the_emitted_vm_json() {
        let ok = obj(json!({
            "location": "eastus",
            "hardware_profile.vm_size": "Standard_D4s_v3",
            "os_profile.linux_configuration.ssh.public_keys.0.path": "/home/ubuntu/.ssh/authorized_keys",
            "tags.team": "vdi",
            "storage_profile": {"os_disk": {}}
        }));
        assert_eq!(check_override(&ok, "o"), Found::new());
        let bad = obj(json!({
            "hardwareProfile.vmSize": "x",
            "hardware_profile.vmsize": "x",
            "name": "x",
            "tags": {"a": "b"},
            "os_profile.custom_data": "x",
            "location..x": 1,
            "os_profile": "x"
        }));
        let found = check_override(&bad, "o");
        assert_eq!(
            fields(&found),
            [
                "o.hardwareProfile.vmSize",
                "o.hardware_profile.vmsize",
                "o.name",
                "o.tags",
                "o.os_profile.custom_data",
                "o.location..x",
                "o.os_profile"
            ]
        );
        assert!(found[1].1.contains("did you mean `vm_size`"), "{found:?}");
    }
}
