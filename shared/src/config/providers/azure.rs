//! Azure VM-provider config (fields from Kasm's documentation, "Azure VM Settings").

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::check::{Found, need};
use crate::config::did_you_mean::did_you_mean;
use crate::config::json_text::JsonText;
use crate::config::kasm_names::{KasmColumn, KasmColumns, Unit, own_id, renamed, same, same_or_empty, size};
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
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
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

/// The two forms of [`AzureImageReference`], read one at a time: serde's untagged enums report only
/// "did not match any variant", never which field of which form is wrong (issue 21).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageById {
    id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MarketplaceImage {
    publisher: String,
    offer: String,
    sku: String,
    version: String,
}

/// What an image reference is, for its errors.
const IMAGE_FORMS: &str =
    "{publisher, offer, sku, version} (a marketplace image) or {id} (an image by resource id), with no other keys";

impl<'de> Deserialize<'de> for AzureImageReference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let v = serde_json::Value::deserialize(d)?;
        let fail = |path: &serde_path_to_error::Path, inner: &serde_json::Error| {
            // "missing field `sku`" would read as a missing config field; say which form needs it.
            let said = inner.to_string();
            let said = match said.strip_prefix("missing field ") {
                Some(f) => format!("needs {f}"),
                None => said,
            };
            D::Error::custom(crate::config::json_text::at(path, format!("{said}; expected {IMAGE_FORMS}")))
        };
        if !v.is_object() {
            return Err(D::Error::custom(format!("expected {IMAGE_FORMS}")));
        }
        if v.get("id").is_some() {
            let f: ImageById = serde_path_to_error::deserialize(&v).map_err(|e| fail(e.path(), e.inner()))?;
            Ok(AzureImageReference::Id { id: f.id })
        } else {
            let f: MarketplaceImage = serde_path_to_error::deserialize(&v).map_err(|e| fail(e.path(), e.inner()))?;
            Ok(AzureImageReference::Marketplace {
                publisher: f.publisher,
                offer: f.offer,
                sku: f.sku,
                version: f.version,
            })
        }
    }
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
    /// Marketplace plan name (Kasm's `plan_name`): images sold with a plan (e.g. third-party marketplace images)
    /// need the plan's name, product and publisher; set all three or none.
    #[serde(default)]
    pub plan_name: Option<String>,
    /// Marketplace plan product (Kasm's `plan_product`), e.g. the image's offer.
    #[serde(default)]
    pub plan_product: Option<String>,
    /// Marketplace plan publisher (Kasm's `plan_publisher`).
    #[serde(default)]
    pub plan_publisher: Option<String>,
    /// Security type of the VM (Kasm's `security_type`): `TrustedLaunch` or `ConfidentialVM` (the API's
    /// `securityProfile.securityType`); unset = a standard VM.
    #[serde(default)]
    pub security_type: Option<String>,
    /// Secure boot (Kasm's `secure_boot_enabled`; `securityProfile.uefiSettings.secureBootEnabled`); needs
    /// `security_type`.
    #[serde(default)]
    pub secure_boot_enabled: bool,
    /// Virtual TPM (Kasm's `tpm_enabled`; `securityProfile.uefiSettings.vTpmEnabled`); needs `security_type`.
    #[serde(default)]
    pub tpm_enabled: bool,
    /// Our extension (not a Kasm field): the Azure Resource Manager base URL instead of the authority's
    /// own (`https://management.azure.com` for the public cloud), for Azure Stack Hub and test servers.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Our extension (not a Kasm field): the Microsoft Entra ID (login) base URL instead of the
    /// authority's own (`https://login.microsoftonline.com` for the public cloud), for test servers.
    #[serde(default)]
    pub authority_url: Option<String>,
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
        same_or_empty("plan_name"),
        same_or_empty("plan_product"),
        same_or_empty("plan_publisher"),
        same_or_empty("security_type"),
        same("secure_boot_enabled"),
        same("tpm_enabled"),
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
        // base64 characters, i.e. 65,535 raw bytes. Windows saves custom data to
        // %SYSTEMDRIVE%\AzureData\CustomData.bin without running it; the provider runs that file as
        // PowerShell with the Custom Script Extension (see `providers::azure`), so the script is passed as is.
        ScriptRules {
            provider: "azure",
            limit: Some(Limit::Base64(87_380)),
            windows: WindowsScript::AsIs,
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

impl AzureConfig {
    /// Applies `azure_config_override` (Kasm's snake_case dot-notation keys) to the VM body `vm` in the
    /// REST API's names; an error names the key (e.g. an array index the body does not have).
    pub fn apply_override(&self, vm: &mut Value) -> Result<(), String> {
        match &self.azure_config_override {
            Some(o) => apply_override(vm, &o.0),
            None => Ok(()),
        }
    }
}

/// The security types the API takes (`SecurityTypes`, virtualMachine.json 2024-07-01).
pub const SECURITY_TYPES: [&str; 2] = ["TrustedLaunch", "ConfidentialVM"];

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s.trim()).is_ok()
}

/// Whether `id` is an ARM resource id of `kind` (`.../providers/Microsoft.Network/<kind>/<name>`, or
/// `.../virtualNetworks/<vnet>/subnets/<name>` for `subnets`).
pub fn is_resource_id(id: &str, kind: &str) -> bool {
    let segs: Vec<&str> = id.trim().trim_start_matches('/').split('/').collect();
    let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let shape = match kind {
        "subnets" => lower.len() == 10 && lower[6] == "virtualnetworks" && lower[8] == "subnets",
        _ => lower.len() == 8 && lower[6] == kind.to_ascii_lowercase(),
    };
    shape
        && lower[0] == "subscriptions"
        && lower[2] == "resourcegroups"
        && lower[4] == "providers"
        && lower[5] == "microsoft.network"
        && segs.iter().all(|s| !s.is_empty())
}

fn check_fields(f: &mut Found, c: &AzureConfig) {
    for (field, v) in [
        ("azure_subscription_id", &c.azure_subscription_id),
        ("azure_tenant_id", &c.azure_tenant_id),
        ("azure_client_id", &c.azure_client_id),
    ] {
        need(f, is_uuid(v), field, "must be a UUID (Azure portal: the app registration's overview)");
    }
    need(f, !c.azure_resource_group.trim().is_empty(), "azure_resource_group", "must not be empty");
    need(f, !c.azure_region.trim().is_empty(), "azure_region", "must not be empty, e.g. `eastus`");
    need(f, !c.azure_vm_size.trim().is_empty(), "azure_vm_size", "must not be empty, e.g. `Standard_D2s_v5`");
    need(f, !c.azure_os_disk_type.trim().is_empty(), "azure_os_disk_type", "must not be empty, e.g. `Premium_LRS`");
    need(f, c.azure_os_disk_size_gb >= 1, "azure_os_disk_size_gb", "must be at least 1 GB");
    need(
        f,
        is_resource_id(&c.azure_subnet, "subnets"),
        "azure_subnet",
        "must be a subnet's resource id: /subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Network/virtualNetworks/<vnet>/subnets/<name>",
    );
    if let Some(nsg) = c.azure_network_sg.as_deref().filter(|s| !s.trim().is_empty()) {
        need(
            f,
            is_resource_id(nsg, "networkSecurityGroups"),
            "azure_network_sg",
            "must be a network security group's resource id: /subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Network/networkSecurityGroups/<name>",
        );
    }
    let user = c.azure_os_username.trim();
    // adminUsername: "Max-length (Linux): 64 characters; Max-length (Windows): 20 characters" and
    // "This value cannot end in '.'" (virtualMachine.json, OSProfile.adminUsername).
    let max = if c.azure_image_is_windows { 20 } else { 64 };
    need(
        f,
        !user.is_empty() && user.len() <= max && !user.ends_with('.'),
        "azure_os_username",
        format!("must be 1 to {max} characters and not end in '.'"),
    );
    if c.azure_image_is_windows {
        need(f, c.azure_os_password.is_some(), "azure_os_password", "is required for Windows images");
    } else {
        need(
            f,
            c.azure_os_password.is_some() || c.azure_ssh_public_key.as_deref().is_some_and(|k| !k.trim().is_empty()),
            "azure_ssh_public_key",
            "a Linux VM needs azure_ssh_public_key or azure_os_password",
        );
    }
    let plan = [&c.plan_name, &c.plan_product, &c.plan_publisher];
    let set = plan.iter().filter(|p| p.as_deref().is_some_and(|v| !v.trim().is_empty())).count();
    need(
        f,
        set == 0 || set == 3,
        "plan_name",
        "plan_name, plan_product and plan_publisher go together: set all three or none",
    );
    if let Some(t) = c.security_type.as_deref().filter(|t| !t.trim().is_empty()) {
        need(
            f,
            SECURITY_TYPES.contains(&t),
            "security_type",
            format!("must be one of {} (the API's securityProfile.securityType)", SECURITY_TYPES.join(", ")),
        );
    } else {
        need(f, !c.secure_boot_enabled, "secure_boot_enabled", "needs security_type (e.g. TrustedLaunch)");
        need(f, !c.tpm_enabled, "tpm_enabled", "needs security_type (e.g. TrustedLaunch)");
    }
    if let Some(u) = c.authority_url.as_deref() {
        need(f, crate::config::check::is_http_url(u), "authority_url", "must be an http(s) URL");
    }
    for (k, v) in c.azure_tags.0.iter() {
        // Tag names: at most 512 characters, none of `<>%&\?/`; values at most 256 (Azure docs, "Tag
        // resources": limits).
        let bad_key = k.is_empty() || k.len() > 512 || k.chars().any(|ch| "<>%&\\?/".contains(ch));
        need(f, !bad_key, &format!("azure_tags.{k}"), "a tag name is 1 to 512 characters without < > % & \\ ? /");
        need(f, v.len() <= 256, &format!("azure_tags.{k}"), "a tag value is at most 256 characters");
        need(
            f,
            !k.to_ascii_lowercase().starts_with("kasm-autoscale-"),
            &format!("azure_tags.{k}"),
            "tags starting with kasm-autoscale- are our ownership tags",
        );
    }
    if let Some(o) = &c.azure_config_override {
        f.extend(check_override(&o.0, "azure_config_override"));
    }
}

/// One level of the VM JSON that overrides may reach, in Kasm's names (the Azure Python SDK's snake_case
/// attribute names) with the REST API's names beside them (virtualMachine.json / computeRPCommon.json,
/// 2024-07-01, the SDK's `_attribute_map`s).
#[derive(Debug)]
enum Node {
    /// A value (string, number, bool, or an object/array set whole).
    Leaf,
    /// An object whose keys are taken as given (tags).
    Keys,
    /// An object whose keys below are not listed here: snake_case segments are turned to camelCase.
    Free,
    /// An object with these keys: (Kasm's name, the API's path below this object, what is below).
    Obj(&'static [(&'static str, &'static str, Node)]),
    /// An array (indices select existing elements) of this.
    Arr(&'static Node),
}

use Node::{Arr, Free, Keys, Leaf, Obj};

const SUB_RESOURCE: Node = Obj(&[("id", "id", Leaf)]);

/// The emitted VM JSON: the SDK's `VirtualMachine`, whose `properties` the SDK flattens.
const VM: Node = Obj(&[
    ("location", "location", Leaf),
    ("tags", "tags", Keys),
    (
        "plan",
        "plan",
        Obj(&[
            ("name", "name", Leaf),
            ("publisher", "publisher", Leaf),
            ("product", "product", Leaf),
            ("promotion_code", "promotionCode", Leaf),
        ]),
    ),
    ("identity", "identity", Free),
    ("zones", "zones", Leaf),
    ("extended_location", "extendedLocation", Free),
    (
        "hardware_profile",
        "properties.hardwareProfile",
        Obj(&[
            ("vm_size", "vmSize", Leaf),
            (
                "vm_size_properties",
                "vmSizeProperties",
                Obj(&[("v_cpus_available", "vCPUsAvailable", Leaf), ("v_cpus_per_core", "vCPUsPerCore", Leaf)]),
            ),
        ]),
    ),
    ("scheduled_events_policy", "properties.scheduledEventsPolicy", Free),
    ("scheduled_events_profile", "properties.scheduledEventsProfile", Free),
    (
        "storage_profile",
        "properties.storageProfile",
        Obj(&[
            (
                "image_reference",
                "imageReference",
                Obj(&[
                    ("id", "id", Leaf),
                    ("publisher", "publisher", Leaf),
                    ("offer", "offer", Leaf),
                    ("sku", "sku", Leaf),
                    ("version", "version", Leaf),
                    ("shared_gallery_image_id", "sharedGalleryImageId", Leaf),
                    ("community_gallery_image_id", "communityGalleryImageId", Leaf),
                ]),
            ),
            (
                "os_disk",
                "osDisk",
                Obj(&[
                    ("os_type", "osType", Leaf),
                    ("encryption_settings", "encryptionSettings", Free),
                    ("name", "name", Leaf),
                    ("vhd", "vhd", Free),
                    ("image", "image", Free),
                    ("caching", "caching", Leaf),
                    ("write_accelerator_enabled", "writeAcceleratorEnabled", Leaf),
                    ("diff_disk_settings", "diffDiskSettings", Free),
                    ("create_option", "createOption", Leaf),
                    ("disk_size_gb", "diskSizeGB", Leaf),
                    (
                        "managed_disk",
                        "managedDisk",
                        Obj(&[
                            ("id", "id", Leaf),
                            ("storage_account_type", "storageAccountType", Leaf),
                            ("disk_encryption_set", "diskEncryptionSet", SUB_RESOURCE),
                            ("security_profile", "securityProfile", Free),
                        ]),
                    ),
                    ("delete_option", "deleteOption", Leaf),
                ]),
            ),
            ("data_disks", "dataDisks", Leaf),
            ("disk_controller_type", "diskControllerType", Leaf),
        ]),
    ),
    (
        "additional_capabilities",
        "properties.additionalCapabilities",
        Obj(&[("ultra_ssd_enabled", "ultraSSDEnabled", Leaf), ("hibernation_enabled", "hibernationEnabled", Leaf)]),
    ),
    (
        "os_profile",
        "properties.osProfile",
        Obj(&[
            ("computer_name", "computerName", Leaf),
            ("admin_username", "adminUsername", Leaf),
            ("admin_password", "adminPassword", Leaf),
            ("custom_data", "customData", Leaf),
            (
                "windows_configuration",
                "windowsConfiguration",
                Obj(&[
                    ("provision_vm_agent", "provisionVMAgent", Leaf),
                    ("enable_automatic_updates", "enableAutomaticUpdates", Leaf),
                    ("time_zone", "timeZone", Leaf),
                    ("additional_unattend_content", "additionalUnattendContent", Leaf),
                    ("patch_settings", "patchSettings", Free),
                    ("win_rm", "winRM", Free),
                    ("enable_vm_agent_platform_updates", "enableVMAgentPlatformUpdates", Leaf),
                ]),
            ),
            (
                "linux_configuration",
                "linuxConfiguration",
                Obj(&[
                    ("disable_password_authentication", "disablePasswordAuthentication", Leaf),
                    (
                        "ssh",
                        "ssh",
                        Obj(&[(
                            "public_keys",
                            "publicKeys",
                            Arr(&Obj(&[("path", "path", Leaf), ("key_data", "keyData", Leaf)])),
                        )]),
                    ),
                    ("provision_vm_agent", "provisionVMAgent", Leaf),
                    ("patch_settings", "patchSettings", Free),
                    ("enable_vm_agent_platform_updates", "enableVMAgentPlatformUpdates", Leaf),
                ]),
            ),
            ("secrets", "secrets", Leaf),
            ("allow_extension_operations", "allowExtensionOperations", Leaf),
            ("require_guest_provision_signal", "requireGuestProvisionSignal", Leaf),
        ]),
    ),
    (
        "network_profile",
        "properties.networkProfile",
        Obj(&[
            (
                "network_interfaces",
                "networkInterfaces",
                Arr(&Obj(&[
                    ("id", "id", Leaf),
                    // NetworkInterfaceReference flattens its `properties` in the SDK.
                    ("primary", "properties.primary", Leaf),
                    ("delete_option", "properties.deleteOption", Leaf),
                ])),
            ),
            ("network_api_version", "networkApiVersion", Leaf),
            ("network_interface_configurations", "networkInterfaceConfigurations", Leaf),
        ]),
    ),
    (
        "security_profile",
        "properties.securityProfile",
        Obj(&[
            (
                "uefi_settings",
                "uefiSettings",
                Obj(&[("secure_boot_enabled", "secureBootEnabled", Leaf), ("v_tpm_enabled", "vTpmEnabled", Leaf)]),
            ),
            ("encryption_at_host", "encryptionAtHost", Leaf),
            ("security_type", "securityType", Leaf),
            ("encryption_identity", "encryptionIdentity", Free),
            ("proxy_agent_settings", "proxyAgentSettings", Free),
        ]),
    ),
    (
        "diagnostics_profile",
        "properties.diagnosticsProfile",
        Obj(&[(
            "boot_diagnostics",
            "bootDiagnostics",
            Obj(&[("enabled", "enabled", Leaf), ("storage_uri", "storageUri", Leaf)]),
        )]),
    ),
    ("availability_set", "properties.availabilitySet", SUB_RESOURCE),
    ("virtual_machine_scale_set", "properties.virtualMachineScaleSet", SUB_RESOURCE),
    ("proximity_placement_group", "properties.proximityPlacementGroup", SUB_RESOURCE),
    ("priority", "properties.priority", Leaf),
    ("eviction_policy", "properties.evictionPolicy", Leaf),
    ("billing_profile", "properties.billingProfile", Obj(&[("max_price", "maxPrice", Leaf)])),
    ("host", "properties.host", SUB_RESOURCE),
    ("host_group", "properties.hostGroup", SUB_RESOURCE),
    ("license_type", "properties.licenseType", Leaf),
    ("extensions_time_budget", "properties.extensionsTimeBudget", Leaf),
    ("platform_fault_domain", "properties.platformFaultDomain", Leaf),
    ("user_data", "properties.userData", Leaf),
    ("capacity_reservation", "properties.capacityReservation", Free),
    ("application_profile", "properties.applicationProfile", Free),
]);

/// One segment of an override's path in the API's JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    /// An object key (the API's name).
    Key(String),
    /// An index into an existing array.
    Index(usize),
}

/// `snake_case` → `camelCase` (for keys below a [`Node::Free`] object).
fn camel(s: &str) -> String {
    let mut out = String::new();
    let mut up = false;
    for ch in s.chars() {
        if ch == '_' {
            up = true;
        } else if up {
            out.extend(ch.to_uppercase());
            up = false;
        } else {
            out.push(ch);
        }
    }
    out
}

/// The API path of an override key in Kasm's dot notation (`os_profile.linux_configuration.ssh.public_keys.0.path`
/// → `properties.osProfile.linuxConfiguration.ssh.publicKeys[0].path`), or why the key does not exist.
pub fn override_path(key: &str) -> Result<Vec<PathSeg>, String> {
    let segs: Vec<&str> = key.split('.').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err("empty segment in dot-notation key".into());
    }
    let mut out = Vec::new();
    let mut node = &VM;
    let mut at = String::new();
    for (i, seg) in segs.iter().enumerate() {
        let here = if at.is_empty() { "the Azure VM JSON".to_string() } else { format!("`{at}`") };
        match node {
            Leaf => return Err(format!("{here} is a value; `{seg}` cannot be below it")),
            Keys => out.push(PathSeg::Key(seg.to_string())),
            Free => match seg.parse::<usize>() {
                Ok(n) => out.push(PathSeg::Index(n)),
                Err(_) => out.push(PathSeg::Key(camel(seg))),
            },
            Arr(item) => match seg.parse::<usize>() {
                Ok(n) => {
                    out.push(PathSeg::Index(n));
                    node = item;
                }
                Err(_) => return Err(format!("{here} is an array: `{seg}` must be an index (0, 1, ...)")),
            },
            Obj(keys) => match keys.iter().find(|(k, _, _)| k == seg) {
                Some((_, api, below)) => {
                    out.extend(api.split('.').map(|k| PathSeg::Key(k.to_string())));
                    node = below;
                }
                None => {
                    let why = match (i, *seg) {
                        (0, "name" | "id" | "type") => " (set by kasm-autoscale / Azure)".to_string(),
                        _ => did_you_mean(seg, keys.iter().map(|(k, _, _)| *k)),
                    };
                    return Err(format!("`{seg}` is not a key of {here}{why}"));
                }
            },
        }
        at = segs[..=i].join(".");
    }
    Ok(out)
}

/// Azure: dot-notation keys (`hardware_profile.vm_size`, `...public_keys.0.path`) onto the emitted VM JSON,
/// in Kasm's (the Python SDK's) snake_case names. Checks the override `field`: every key must name a
/// property of the VM JSON (see [`override_path`]), so a mistyped key fails validation instead of being
/// dropped.
pub fn check_override(o: &Map<String, Value>, field: &str) -> Found {
    let mut f = Found::new();
    for (key, v) in o {
        let path = format!("{field}.{key}");
        if key == "tags" {
            f.push((path, "would replace the ownership tags; use azure_tags or `tags.<key>`".into()));
            continue;
        }
        if key == "os_profile.custom_data" || key == "os_profile" && v.get("custom_data").is_some() {
            f.push((path, "cannot be overridden: it is rendered from startup_script".into()));
            continue;
        }
        if let Err(why) = override_path(key) {
            f.push((path, why));
            continue;
        }
        let is_object_node = !key.contains('.')
            && matches!(VM, Obj(keys) if keys.iter().any(|(k, _, n)| k == key && matches!(n, Obj(_))));
        if is_object_node && !v.is_object() {
            f.push((path, format!("`{key}` is an object; set it to an object or use dot notation")));
        }
    }
    f
}

/// Applies Kasm's override `o` to the VM body `vm` (REST names): each key's value replaces what is at its
/// path; objects on the way are created, array elements must exist. An object value set on an object key
/// (`{"storage_profile": {"os_disk": {...}}}`) is merged key by key in the same names.
pub fn apply_override(vm: &mut Value, o: &Map<String, Value>) -> Result<(), String> {
    for (key, v) in o {
        let path = override_path(key).map_err(|e| format!("azure_config_override.{key}: {e}"))?;
        if let Value::Object(inner) = v
            && matches!(VM, Obj(keys) if keys.iter().any(|(k, _, n)| k == key && matches!(n, Obj(_))))
        {
            // A whole profile in Kasm's names: apply its leaves one by one.
            let mut flat = Map::new();
            flatten(key, inner, &mut flat);
            apply_override(vm, &flat)?;
            continue;
        }
        set_path(vm, &path, v.clone()).map_err(|e| format!("azure_config_override.{key}: {e}"))?;
    }
    Ok(())
}

fn flatten(prefix: &str, o: &Map<String, Value>, out: &mut Map<String, Value>) {
    for (k, v) in o {
        let key = format!("{prefix}.{k}");
        match v {
            Value::Object(inner) if override_path(&key).is_ok_and(|_| !inner.is_empty()) && is_obj_path(&key) => {
                flatten(&key, inner, out)
            }
            _ => {
                out.insert(key, v.clone());
            }
        }
    }
}

/// Whether `key` names an object whose keys are listed (so an object value is merged, not set whole).
fn is_obj_path(key: &str) -> bool {
    let mut node = &VM;
    for seg in key.split('.') {
        node = match node {
            Obj(keys) => match keys.iter().find(|(k, _, _)| *k == seg) {
                Some((_, _, n)) => n,
                None => return false,
            },
            Arr(item) if seg.parse::<usize>().is_ok() => item,
            _ => return false,
        };
    }
    matches!(node, Obj(_))
}

fn set_path(root: &mut Value, path: &[PathSeg], v: Value) -> Result<(), String> {
    let mut cur = root;
    for (i, seg) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        match seg {
            PathSeg::Key(k) => {
                if !cur.is_object() {
                    return Err(format!("`{k}` is below a value that is not an object"));
                }
                let o = cur.as_object_mut().expect("an object");
                if last {
                    o.insert(k.clone(), v);
                    return Ok(());
                }
                cur = o.entry(k.clone()).or_insert_with(|| Value::Object(Map::new()));
            }
            PathSeg::Index(n) => {
                let len = cur.as_array().map(Vec::len);
                let Some(a) = cur.as_array_mut().filter(|_| len.is_some_and(|l| *n < l)) else {
                    return Err(format!("index {n} is not an element of the array the VM JSON has (length {len:?})"));
                };
                if last {
                    a[*n] = v;
                    return Ok(());
                }
                cur = &mut a[*n];
            }
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> AzureConfig {
        serde_yaml_ng::from_str(
            r#"
name: az
azure_subscription_id: 00000000-0000-0000-0000-000000000000
azure_resource_group: dev
azure_tenant_id: 00000000-0000-0000-0000-000000000001
azure_client_id: 00000000-0000-0000-0000-000000000002
azure_client_secret: env:AZ_SECRET
azure_region: eastus
max_instances: 2
azure_vm_size: Standard_D2s_v5
azure_os_disk_type: Premium_LRS
azure_os_disk_size_gb: 64
azure_image_reference: '{"publisher":"canonical","offer":"ubuntu-24_04-lts","sku":"server","version":"latest"}'
azure_subnet: /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/dev/providers/Microsoft.Network/virtualNetworks/vnet/subnets/default
azure_os_username: kasm
azure_ssh_public_key: ssh-ed25519 AAAA
"#,
        )
        .expect("config")
    }

    fn fields(c: &AzureConfig) -> Vec<String> {
        c.check().into_iter().map(|(f, _)| f).collect()
    }

    #[test]
    fn a_good_config_passes_and_each_rule_names_its_field() {
        assert_eq!(fields(&config()), Vec::<String>::new());
        let mut c = config();
        c.azure_tenant_id = "contoso".into();
        c.azure_subnet = "default".into();
        c.azure_network_sg = Some("/subscriptions/x/resourceGroups/dev/providers/Microsoft.Network/nsg/n".into());
        c.plan_name = Some("p".into());
        c.security_type = Some("Trusted".into());
        c.azure_tags.0.insert("a/b".into(), "x".into());
        assert_eq!(
            fields(&c),
            ["azure_tenant_id", "azure_subnet", "azure_network_sg", "plan_name", "security_type", "azure_tags.a/b"]
        );
        let mut c = config();
        c.tpm_enabled = true;
        c.azure_image_is_windows = true;
        c.azure_os_username = "a-very-long-windows-user".into();
        assert_eq!(fields(&c), ["azure_os_username", "azure_os_password", "tpm_enabled"]);
        let mut c = config();
        c.security_type = Some("TrustedLaunch".into());
        c.tpm_enabled = true;
        c.secure_boot_enabled = true;
        c.plan_name = Some("n".into());
        c.plan_product = Some("p".into());
        c.plan_publisher = Some("q".into());
        assert_eq!(fields(&c), Vec::<String>::new());
    }

    #[test]
    fn kasm_keys_map_to_the_rest_names_and_unknown_ones_fail() {
        let p = |k: &str| override_path(k);
        let keys = |v: &[&str]| v.iter().map(|k| PathSeg::Key(k.to_string())).collect::<Vec<_>>();
        assert_eq!(p("hardware_profile.vm_size").unwrap(), keys(&["properties", "hardwareProfile", "vmSize"]));
        assert_eq!(
            p("storage_profile.os_disk.disk_size_gb").unwrap(),
            keys(&["properties", "storageProfile", "osDisk", "diskSizeGB"])
        );
        assert_eq!(
            p("security_profile.uefi_settings.v_tpm_enabled").unwrap(),
            keys(&["properties", "securityProfile", "uefiSettings", "vTpmEnabled"])
        );
        let mut want = keys(&["properties", "osProfile", "linuxConfiguration", "ssh", "publicKeys"]);
        want.push(PathSeg::Index(0));
        want.push(PathSeg::Key("path".into()));
        assert_eq!(p("os_profile.linux_configuration.ssh.public_keys.0.path").unwrap(), want);
        assert_eq!(p("tags.Team_Name").unwrap(), keys(&["tags", "Team_Name"]));
        let e = p("storage_profile.os_disk.disk_size").unwrap_err();
        assert!(e.contains("did you mean `disk_size_gb`"), "{e}");
        assert!(p("os_profile.linux_configuration.ssh.public_keys.first").unwrap_err().contains("an index"));
        assert!(p("hardware_profile.vm_size.x").unwrap_err().contains("is a value"));
        let found = check_override(
            &json!({"security_profile.uefi_settings.secure_boot": true, "priority": "Spot"})
                .as_object()
                .unwrap()
                .clone(),
            "o",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "o.security_profile.uefi_settings.secure_boot");
    }

    #[test]
    fn overrides_apply_to_the_vm_body() {
        let mut vm = json!({"location": "eastus", "tags": {"a": "1"}, "properties": {
            "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
            "osProfile": {"linuxConfiguration": {"ssh": {"publicKeys": [{"path": "/home/kasm/.ssh/authorized_keys", "keyData": "k"}]}}}}});
        let o = json!({
            "hardware_profile.vm_size": "Standard_D4s_v5",
            "os_profile.linux_configuration.ssh.public_keys.0.path": "/root/.ssh/authorized_keys",
            "tags.team": "vdi",
            "diagnostics_profile": {"boot_diagnostics": {"enabled": true}},
            "priority": "Spot"
        });
        apply_override(&mut vm, o.as_object().unwrap()).unwrap();
        assert_eq!(vm["properties"]["hardwareProfile"]["vmSize"], "Standard_D4s_v5");
        assert_eq!(
            vm["properties"]["osProfile"]["linuxConfiguration"]["ssh"]["publicKeys"][0]["path"],
            "/root/.ssh/authorized_keys"
        );
        assert_eq!(vm["tags"], json!({"a": "1", "team": "vdi"}));
        assert_eq!(vm["properties"]["diagnosticsProfile"], json!({"bootDiagnostics": {"enabled": true}}));
        assert_eq!(vm["properties"]["priority"], "Spot");
        let missing = json!({"os_profile.linux_configuration.ssh.public_keys.3.path": "x"});
        let e = apply_override(&mut vm, missing.as_object().unwrap()).unwrap_err();
        assert!(e.contains("azure_config_override.os_profile") && e.contains("index 3"), "{e}");
    }
}
