//! The Azure provider: one VM per claim in the config's resource group, on Azure Resource Manager's
//! REST API (`Microsoft.Compute` 2024-07-01, `Microsoft.Network` 2024-05-01), authenticated with the
//! OAuth 2.0 client credentials of an app registration ([`credential`]). Azure DNS is [`dns`].
//!
//! # How `create_vm` works, and why
//! Every resource has a name derived from the claim's VM name, and ARM's `PUT` creates *or updates* the
//! resource of that name, so a repeated create converges on the same resources instead of making new
//! ones (ARM has no idempotency token; the name is the key):
//!
//! 1. **Find**: `GET .../virtualMachines/{name}`. A VM of ours that is not `Failed` is the claim's VM:
//!    wait for it (step 5) and return it. A VM of that name without our deployment tag is refused.
//! 2. **Public IP** (only with `azure_public_ip`): `PUT .../publicIPAddresses/{name}-ip`, Standard SKU,
//!    static IPv4, our tags.
//! 3. **NIC**: `PUT .../networkInterfaces/{name}-nic` with one IP configuration on `azure_subnet`
//!    (dynamic private IP, the public IP with `deleteOption: Delete`), `azure_network_sg` as its network
//!    security group, our tags.
//! 4. **VM**: `PUT .../virtualMachines/{name}`: `hardwareProfile.vmSize`, `storageProfile` (the image
//!    reference, the OS disk `{name}-osdisk` from the image with `diskSizeGB`, `managedDisk.storageAccountType`
//!    and `deleteOption: Delete`), `osProfile` (computer name, admin user, password or SSH key at
//!    `/home/<user>/.ssh/authorized_keys`, `customData` = base64 of the rendered script),
//!    `networkProfile` (the NIC, primary, `deleteOption: Delete`), `securityProfile` for Trusted
//!    Launch / Confidential VMs, `plan` for marketplace images sold with one, our tags; then Kasm's
//!    `azure_config_override` applied (its snake_case keys mapped to the REST names,
//!    `shared/src/config/providers/azure.rs`).
//! 5. **Wait**: each `PUT` answered `201`/`202` is polled through its `Azure-AsyncOperation` (or
//!    `Location`) URL, honouring `Retry-After`, for at most [`Timings::operation_timeout`]
//!    (`client.rs`). A failed operation is classed by its error code (see *Errors*).
//! 6. **OS disk tags**: the VM `PUT` makes the OS disk but cannot tag it (`ManagedDiskParameters` has
//!    no `tags`), so the disk is read (`GET .../Microsoft.Compute/disks/{name}`, the id the VM reports
//!    in `storageProfile.osDisk.managedDisk.id`) and, unless it carries our tags already, updated with
//!    `PATCH` `{"tags": <its tags + ours>}` (Disks – Update, api-version [`DISK_API`], Microsoft Learn
//!    <https://learn.microsoft.com/en-us/rest/api/compute/disks/update>; ARM replaces the tags with the
//!    map sent, so the disk's own tags are sent back). A resumed create does it again if it is missing.
//! 7. **Windows**: Windows does not run custom data; it saves it to
//!    `%SYSTEMDRIVE%\AzureData\CustomData.bin`. We run that file as PowerShell with the Custom Script
//!    Extension (`PUT .../virtualMachines/{name}/extensions/kasm-startup`, publisher
//!    `Microsoft.Compute`, type `CustomScriptExtension` 1.10, the command in `protectedSettings`), so
//!    the script itself never leaves custom data and is not in the extension's settings.
//!
//! A crash between ARM's accept and our record leaves resources named after the claim; the engine's
//! next `create_vm` finds the VM (step 1) or re-`PUT`s the rest with the same names. When the VM `PUT`
//! fails and no VM of that name exists, the NIC and public IP made for it are deleted (a later attempt
//! makes them again), so a claim that gives up leaves nothing behind.
//!
//! # Tags
//! The VM, its NIC, its public IP and its OS disk carry our labels as tags (`kasm-autoscale-deployment`,
//! `kasm-autoscale-config`, `kasm-autoscale-claim`; tag names allow these and values up to 256
//! characters) plus the config's `azure_tags`. The OS disk is created by the VM `PUT` and tagged right
//! after it (step 6); it is deleted with the VM (`deleteOption: Delete`). A VM is ours when it carries a
//! `kasm-autoscale-deployment` tag; any other is never deleted.
//!
//! # Listing and state
//! `GET .../resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines` across every page
//! (`nextLink`), filtered by our tags here (the list call takes no tag filter). The state is the
//! `provisioningState` (`Creating`/`Updating` → creating, `Succeeded` → running, `Deleting`,
//! `Failed`/`Canceled` → failed); the power state (an instance view per VM) is not read.
//!
//! # Delete
//! `GET` the VM (missing: only leftovers are cleaned), refuse one without our deployment tag, `DELETE`
//! it and wait; the OS disk, NIC and public IP go with it (`deleteOption: Delete`). Then the NIC
//! `{name}-nic` and public IP `{name}-ip` are deleted when still there, carry our tags and are not
//! attached to a VM (a NIC in use cannot be deleted) — so nothing is left whether or not the
//! `deleteOption`s took effect. Deleting a missing VM succeeds.
//!
//! # Errors
//! One place, `Error::into_provider`: 401 → Auth (a 401 saying `ExpiredAuthenticationToken` fetches
//! a new token and is sent once more); 403 → Permission with ARM's message, which names the action
//! (`AuthorizationFailed`: "does not have authorization to perform action '...'"); 404 → NotFound;
//! 409 → Conflict; 429 → RateLimited carrying `Retry-After`; 5xx → Transient. Out of capacity —
//! `SkuNotAvailable`, `AllocationFailed`, `ZonalAllocationFailed`, `OverconstrainedAllocationRequest`,
//! `OverconstrainedZonalAllocationRequest`, `QuotaExceeded`, and `OperationNotAllowed` whose message
//! speaks of quota — is OutOfCapacity, whether the `PUT` is refused or its operation fails.

mod builder;
pub(crate) mod client;
pub mod credential;
pub mod dns;
mod preflight;

pub use builder::{cloud_endpoints, scope};
pub use client::{COMPUTE_API, DISK_API, DNS_API, GALLERY_API, NETWORK_API, SKUS_API};
pub use preflight::CHECKS;

use async_trait::async_trait;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

use self::client::Client;
use super::{Capabilities, ProviderError, Timings, Vm, VmProvider, VmSpec, VmState};
use crate::config::providers::{AzureConfig, AzureImageReference};
use crate::http::HttpError;
use crate::model::{OsFamily, OwnerLabels};
use crate::secrets::Secrets;

/// The provider's short name.
pub const NAME: &str = "azure";

/// The most bytes of custom data Azure takes (65,535 raw bytes: 87,380 base64 characters).
pub const CUSTOM_DATA_MAX: usize = 87_380;

/// The name of the Custom Script Extension that runs the startup script on Windows.
pub const WINDOWS_EXTENSION: &str = "kasm-startup";

/// What the Custom Script Extension runs on Windows: the saved custom data as a PowerShell script.
pub const WINDOWS_COMMAND: &str = "powershell.exe -NoProfile -ExecutionPolicy Bypass -Command \"Copy-Item -Force -Path $env:SystemDrive\\AzureData\\CustomData.bin -Destination $env:SystemDrive\\AzureData\\kasm-startup.ps1; & $env:SystemDrive\\AzureData\\kasm-startup.ps1\"";

/// An Azure [`VmProvider`] bound to one VM-provider config. Build it with [`AzureProvider::from_config`].
#[derive(Debug)]
pub struct AzureProvider {
    client: Client,
    config: AzureConfig,
    secrets: Arc<dyn Secrets>,
    timings: Timings,
}

/// What went wrong inside the provider; converted to [`ProviderError`] at the trait boundary.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("failed to {what}: {source}")]
    Http {
        what: String,
        #[source]
        source: HttpError,
    },
    #[error("failed to {what}: unexpected answer: {message}")]
    Decode { what: String, message: String },
    #[error("{message}")]
    Config { message: String },
    #[error("{message}")]
    Credential { message: String },
    #[error("failed to {what}: the operation ended {status}: {code}: {message}")]
    OperationFailed { what: String, status: String, code: String, message: String },
    #[error("failed to {what}: still running after {secs} s")]
    Timeout { what: String, secs: u64 },
    #[error("the startup script is {chars} base64 characters; Azure's customData takes at most {CUSTOM_DATA_MAX}")]
    ScriptTooLarge { chars: usize },
    #[error("VM {name} was not made by kasm-autoscale (no kasm-autoscale-deployment tag); not touching it")]
    NotOurs { name: String },
}

/// Error codes that say there is no capacity (or quota) for the VM: Azure's "Troubleshoot allocation
/// failures", "Resolve errors for SKU not available" and "vCPU quotas" documents.
const CAPACITY_CODES: &[&str] = &[
    "SkuNotAvailable",
    "AllocationFailed",
    "ZonalAllocationFailed",
    "OverconstrainedAllocationRequest",
    "OverconstrainedZonalAllocationRequest",
    "QuotaExceeded",
];

/// Whether an ARM error `code` (with its `message`) says there is no capacity for the VM.
pub(crate) fn says_no_capacity(code: &str, message: &str) -> bool {
    CAPACITY_CODES.contains(&code) || (code == "OperationNotAllowed" && message.to_ascii_lowercase().contains("quota"))
}

impl Error {
    /// The HTTP status of an API error.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            Error::Http { source: HttpError::Status { status, .. }, .. } => Some(status.as_u16()),
            _ => None,
        }
    }

    /// The ARM error code of an API error.
    fn code(&self) -> Option<String> {
        match self {
            Error::Http { source: HttpError::Status { body, .. }, .. } => Some(client::error_message(body).0),
            _ => None,
        }
    }

    /// A 404 for a resource that does not exist (not a missing resource group or subscription, which
    /// is a configuration error to report).
    pub(crate) fn is_missing_resource(&self) -> bool {
        self.status() == Some(404)
            && !matches!(self.code().as_deref(), Some("ResourceGroupNotFound" | "SubscriptionNotFound"))
    }

    pub(crate) fn into_provider(self) -> ProviderError {
        let message = self.to_string();
        match self {
            Error::Http { what, source: HttpError::Status { status, body, retry_after } } => {
                let (code, said) = client::error_message(&body);
                let text = if code.is_empty() {
                    format!("failed to {what}: {said}")
                } else {
                    format!("failed to {what}: {code}: {said}")
                };
                if says_no_capacity(&code, &said) {
                    return ProviderError::OutOfCapacity { provider: NAME, message: text };
                }
                ProviderError::from_status(NAME, status, &text, retry_after)
            }
            Error::Http { source, what } => match ProviderError::from_http(source, NAME) {
                ProviderError::Transient { message, .. } => {
                    ProviderError::Transient { provider: NAME, message: format!("failed to {what}: {message}") }
                }
                ProviderError::Invalid { message, .. } => {
                    ProviderError::Invalid { provider: NAME, message: format!("failed to {what}: {message}") }
                }
                other => other,
            },
            Error::OperationFailed { ref code, message: ref said, .. } if says_no_capacity(code, said) => {
                ProviderError::OutOfCapacity { provider: NAME, message }
            }
            Error::OperationFailed { ref code, .. }
                if code.is_empty() || code.contains("Internal") || code.contains("Timeout") || code == "Canceled" =>
            {
                ProviderError::Transient { provider: NAME, message }
            }
            Error::OperationFailed { .. } => ProviderError::Invalid { provider: NAME, message },
            Error::Credential { .. } => ProviderError::Unauthenticated { provider: NAME, message },
            Error::Decode { .. } | Error::Timeout { .. } => ProviderError::Transient { provider: NAME, message },
            Error::Config { .. } | Error::ScriptTooLarge { .. } | Error::NotOurs { .. } => {
                ProviderError::Invalid { provider: NAME, message }
            }
        }
    }
}

/// The fields of a VM we read (virtualMachine.json `VirtualMachine`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ArmVm {
    pub name: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub properties: VmProperties,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VmProperties {
    #[serde(default)]
    pub provisioning_state: Option<String>,
    #[serde(default)]
    pub time_created: Option<String>,
    #[serde(default)]
    pub storage_profile: Option<StorageProfile>,
}

/// `StorageProfile` of a VM (virtualMachine.json): the OS disk's name and managed disk id.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StorageProfile {
    #[serde(default)]
    pub os_disk: Option<OsDisk>,
}

/// `OSDisk` of a VM: `name`, `managedDisk.id` (`ManagedDiskParameters` is a `SubResource`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OsDisk {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub managed_disk: Option<ManagedDisk>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ManagedDisk {
    #[serde(default)]
    pub id: Option<String>,
}

/// The normalised state of a `provisioningState`.
fn state(provisioning: Option<&str>) -> VmState {
    match provisioning {
        Some("Creating" | "Updating" | "Migrating") => VmState::Creating,
        Some("Succeeded") => VmState::Running,
        Some("Deleting") => VmState::Deleting,
        Some("Failed" | "Canceled") => VmState::Failed,
        _ => VmState::Unknown,
    }
}

fn is_ours(tags: &BTreeMap<String, String>) -> bool {
    tags.contains_key(OwnerLabels::DEPLOYMENT)
}

fn to_vm(v: &ArmVm, private_ip: Option<String>, public_ip: Option<String>) -> Vm {
    let labels =
        v.tags.iter().filter(|(k, _)| k.starts_with("kasm-autoscale-")).map(|(k, v)| (k.clone(), v.clone())).collect();
    Vm {
        id: v.name.clone(),
        name: v.name.clone(),
        state: state(v.properties.provisioning_state.as_deref()),
        labels,
        private_ip,
        public_ip,
        created_at: v
            .properties
            .time_created
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc)),
    }
}

/// The names of the resources of VM `vm`.
pub fn nic_name(vm: &str) -> String {
    format!("{vm}-nic")
}
/// The public IP of VM `vm`.
pub fn ip_name(vm: &str) -> String {
    format!("{vm}-ip")
}
/// The OS disk of VM `vm`.
pub fn disk_name(vm: &str) -> String {
    format!("{vm}-osdisk")
}

/// Whether `id` is a managed disk's resource id
/// (`/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Compute/disks/{name}`).
fn is_disk_id(id: &str) -> bool {
    let segs: Vec<&str> = id.trim().trim_start_matches('/').split('/').collect();
    segs.len() == 8
        && segs.iter().all(|s| !s.is_empty())
        && segs[0].eq_ignore_ascii_case("subscriptions")
        && segs[2].eq_ignore_ascii_case("resourceGroups")
        && segs[4].eq_ignore_ascii_case("providers")
        && segs[5].eq_ignore_ascii_case("Microsoft.Compute")
        && segs[6].eq_ignore_ascii_case("disks")
}

/// The Windows computer name of VM `vm`: at most 15 characters ("Windows computer name cannot be more
/// than 15 characters long", virtualMachine.json `OSProfile.computerName`): `k` + the last 14 letters
/// and digits of the name (the random end of the claim's id).
pub fn windows_computer_name(vm: &str) -> String {
    let tail: Vec<char> = vm.chars().filter(char::is_ascii_alphanumeric).collect();
    let start = tail.len().saturating_sub(14);
    format!("k{}", tail[start..].iter().collect::<String>().to_ascii_lowercase())
}

impl AzureProvider {
    fn cfg(&self) -> &AzureConfig {
        &self.config
    }

    fn rg_path<'a>(&'a self, provider: &'a str, kind: &'a str, name: &'a str) -> [&'a str; 8] {
        [
            "subscriptions",
            self.config.azure_subscription_id.trim(),
            "resourceGroups",
            self.config.azure_resource_group.trim(),
            "providers",
            provider,
            kind,
            name,
        ]
    }

    fn vm_url(&self, name: &str) -> reqwest::Url {
        self.client.url(&self.rg_path("Microsoft.Compute", "virtualMachines", name), COMPUTE_API)
    }

    fn nic_url(&self, name: &str) -> reqwest::Url {
        self.client.url(&self.rg_path("Microsoft.Network", "networkInterfaces", name), NETWORK_API)
    }

    fn ip_url(&self, name: &str) -> reqwest::Url {
        self.client.url(&self.rg_path("Microsoft.Network", "publicIPAddresses", name), NETWORK_API)
    }

    /// The OS disk of `vm`: the managed disk id the VM reports when it is a `Microsoft.Compute/disks`
    /// id, else the disk's name (ours, `{vm}-osdisk`, unless an override renamed it) in our resource
    /// group.
    fn os_disk_url(&self, vm: &ArmVm) -> reqwest::Url {
        let disk = vm.properties.storage_profile.as_ref().and_then(|s| s.os_disk.as_ref());
        if let Some(id) = disk.and_then(|d| d.managed_disk.as_ref()).and_then(|m| m.id.as_deref())
            && is_disk_id(id)
        {
            let segs: Vec<&str> = id.trim().trim_start_matches('/').split('/').collect();
            return self.client.url(&segs, client::DISK_API);
        }
        let name = disk.and_then(|d| d.name.clone()).unwrap_or_else(|| disk_name(&vm.name));
        self.client.url(&self.rg_path("Microsoft.Compute", "disks", &name), client::DISK_API)
    }

    /// The resource id (ARM's, without the host) of `kind`/`name` in our resource group.
    fn resource_id(&self, provider: &str, kind: &str, name: &str) -> String {
        format!("/{}", self.rg_path(provider, kind, name).join("/"))
    }

    /// Our tags for one resource: the config's `azure_tags`, then our labels.
    fn tags(&self, labels: &OwnerLabels) -> Map<String, Value> {
        let mut t: Map<String, Value> =
            self.cfg().azure_tags.0.iter().map(|(k, v)| (k.clone(), Value::from(v.clone()))).collect();
        for (k, v) in labels.to_map() {
            t.insert(k, Value::from(v));
        }
        t
    }

    fn public_ip_body(&self, labels: &OwnerLabels) -> Value {
        json!({
            "location": self.cfg().azure_region.trim(),
            "tags": self.tags(labels),
            "sku": {"name": "Standard"},
            "properties": {"publicIPAllocationMethod": "Static", "publicIPAddressVersion": "IPv4"}
        })
    }

    fn nic_body(&self, vm: &str, labels: &OwnerLabels) -> Value {
        let mut ipcfg = json!({
            "subnet": {"id": self.cfg().azure_subnet.trim()},
            "privateIPAllocationMethod": "Dynamic"
        });
        if self.cfg().azure_public_ip {
            ipcfg["publicIPAddress"] = json!({
                "id": self.resource_id("Microsoft.Network", "publicIPAddresses", &ip_name(vm)),
                "properties": {"deleteOption": "Delete"}
            });
        }
        let mut props = json!({"ipConfigurations": [{"name": "ipconfig1", "properties": ipcfg}]});
        if let Some(nsg) = self.cfg().azure_network_sg.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            props["networkSecurityGroup"] = json!({"id": nsg});
        }
        json!({"location": self.cfg().azure_region.trim(), "tags": self.tags(labels), "properties": props})
    }

    /// The VM body (REST names), Kasm's override applied.
    fn vm_body(
        &self,
        spec: &VmSpec,
        password: Option<&SecretString>,
        custom_data: Option<&str>,
    ) -> Result<Value, Error> {
        let c = self.cfg();
        let image = match &c.azure_image_reference.0 {
            AzureImageReference::Id { id } => json!({"id": id}),
            AzureImageReference::Marketplace { publisher, offer, sku, version } => {
                json!({"publisher": publisher, "offer": offer, "sku": sku, "version": version})
            }
        };
        let user = c.azure_os_username.trim();
        let windows = spec.os == OsFamily::Windows;
        let mut os = json!({
            "computerName": if windows { windows_computer_name(&spec.name) } else { spec.name.clone() },
            "adminUsername": user,
        });
        if let Some(p) = password {
            os["adminPassword"] = Value::from(p.expose_secret());
        }
        if let Some(d) = custom_data {
            os["customData"] = Value::from(d);
        }
        if windows {
            os["windowsConfiguration"] = json!({"provisionVMAgent": true});
        } else {
            let key = c.azure_ssh_public_key.as_deref().map(str::trim).filter(|k| !k.is_empty());
            let mut linux = json!({"disablePasswordAuthentication": password.is_none()});
            if let Some(k) = key {
                linux["ssh"] =
                    json!({"publicKeys": [{"path": format!("/home/{user}/.ssh/authorized_keys"), "keyData": k}]});
            }
            os["linuxConfiguration"] = linux;
        }
        let mut props = json!({
            "hardwareProfile": {"vmSize": c.azure_vm_size.trim()},
            "storageProfile": {
                "imageReference": image,
                "osDisk": {
                    "name": disk_name(&spec.name),
                    "createOption": "FromImage",
                    "diskSizeGB": c.azure_os_disk_size_gb,
                    "managedDisk": {"storageAccountType": c.azure_os_disk_type.trim()},
                    "deleteOption": "Delete"
                }
            },
            "osProfile": os,
            "networkProfile": {"networkInterfaces": [{
                "id": self.resource_id("Microsoft.Network", "networkInterfaces", &nic_name(&spec.name)),
                "properties": {"primary": true, "deleteOption": "Delete"}
            }]}
        });
        if let Some(t) = c.security_type.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            props["securityProfile"] = json!({
                "securityType": t,
                "uefiSettings": {"secureBootEnabled": c.secure_boot_enabled, "vTpmEnabled": c.tpm_enabled}
            });
        }
        let mut body = json!({"location": c.azure_region.trim(), "tags": self.tags(&spec.labels), "properties": props});
        if let (Some(n), Some(p), Some(q)) = (&c.plan_name, &c.plan_product, &c.plan_publisher) {
            body["plan"] = json!({"name": n.trim(), "product": p.trim(), "publisher": q.trim()});
        }
        c.apply_override(&mut body).map_err(|message| Error::Config { message })?;
        // Ours whatever the override says: the ownership tags.
        if let Some(t) = body.get_mut("tags").and_then(Value::as_object_mut) {
            for (k, v) in spec.labels.to_map() {
                t.insert(k, Value::from(v));
            }
        }
        Ok(body)
    }

    async fn get_arm_vm(&self, name: &str) -> Result<Option<ArmVm>, Error> {
        self.client.get(self.vm_url(name), "read the VM").await
    }

    /// The private and public IP of VM `name` (its NIC and public IP by our names).
    async fn addresses(&self, name: &str) -> Result<(Option<String>, Option<String>), Error> {
        let nic: Option<Value> = self.client.get(self.nic_url(&nic_name(name)), "read the VM's NIC").await?;
        let private = nic.as_ref().and_then(|n| {
            n.pointer("/properties/ipConfigurations/0/properties/privateIPAddress")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        let public = if self.cfg().azure_public_ip {
            let ip: Option<Value> = self.client.get(self.ip_url(&ip_name(name)), "read the VM's public IP").await?;
            ip.and_then(|i| i.pointer("/properties/ipAddress").and_then(Value::as_str).map(str::to_string))
        } else {
            None
        };
        Ok((private, public))
    }

    async fn create(&self, spec: &VmSpec) -> Result<Vm, Error> {
        let name = spec.name.as_str();
        if let Some(vm) = self.get_arm_vm(name).await? {
            if !is_ours(&vm.tags) {
                return Err(Error::NotOurs { name: name.to_string() });
            }
            if vm.properties.provisioning_state.as_deref() != Some("Failed") {
                tracing::info!(vm = name, claim = %spec.claim, "the VM of this claim exists; resuming");
                return self.finish(spec, vm).await;
            }
            tracing::info!(vm = name, "the VM of this claim failed to provision; putting it again");
        }
        let script = spec.startup_script.as_ref().map(|s| s.expose_secret().to_string()).filter(|s| !s.is_empty());
        let custom_data = script.map(|s| base64::engine::general_purpose::STANDARD.encode(s.as_bytes()));
        if let Some(d) = &custom_data
            && d.len() > CUSTOM_DATA_MAX
        {
            return Err(Error::ScriptTooLarge { chars: d.len() });
        }
        let password = match &self.cfg().azure_os_password {
            Some(r) => Some(
                self.secrets
                    .resolve(r)
                    .await
                    .map_err(|e| Error::Config { message: format!("azure_os_password: {e}") })?,
            ),
            None => None,
        };
        let body = self.vm_body(spec, password.as_ref(), custom_data.as_deref())?;
        if self.cfg().azure_public_ip {
            self.client
                .put(self.ip_url(&ip_name(name)), self.public_ip_body(&spec.labels), "create the public IP", Vec::new())
                .await?;
        }
        self.client
            .put(self.nic_url(&nic_name(name)), self.nic_body(name, &spec.labels), "create the NIC", Vec::new())
            .await?;
        let mut secrets: Vec<SecretString> = password.into_iter().collect();
        if let Some(d) = custom_data {
            secrets.push(SecretString::from(d));
        }
        let put = self.client.put(self.vm_url(name), body, "create the VM", secrets).await;
        let v = match put {
            Ok(v) => v,
            Err(e) => {
                // No VM of that name: the NIC and IP made for it would outlive a claim that gives up.
                if matches!(self.get_arm_vm(name).await, Ok(None)) {
                    self.delete_leftovers(name).await;
                }
                return Err(e);
            }
        };
        let vm: ArmVm = serde_json::from_value(v)
            .map_err(|e| Error::Decode { what: "create the VM".into(), message: e.to_string() })?;
        tracing::info!(vm = name, claim = %spec.claim, "VM created");
        self.finish(spec, vm).await
    }

    /// The VM once provisioned (waiting while `Creating`), with the Windows script extension in place.
    async fn finish(&self, spec: &VmSpec, mut vm: ArmVm) -> Result<Vm, Error> {
        let deadline = tokio::time::Instant::now() + self.timings.operation_timeout;
        let mut wait = self.timings.poll;
        while matches!(state(vm.properties.provisioning_state.as_deref()), VmState::Creating) {
            if tokio::time::Instant::now() + wait > deadline {
                return Err(Error::Timeout {
                    what: "create the VM".into(),
                    secs: self.timings.operation_timeout.as_secs(),
                });
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(client::MAX_POLL.max(self.timings.poll));
            vm = self.get_arm_vm(&vm.name).await?.ok_or_else(|| Error::Decode {
                what: "create the VM".into(),
                message: "the VM is gone while being created".into(),
            })?;
        }
        self.ensure_disk_tags(&vm, &spec.labels).await?;
        if spec.os == OsFamily::Windows && spec.startup_script.is_some() {
            self.ensure_windows_script(&vm.name, &spec.labels).await?;
        }
        let (private, public) = self.addresses(&vm.name).await?;
        Ok(to_vm(&vm, private, public))
    }

    /// Tags the VM's OS disk with our tags (the config's `azure_tags` and our labels): the VM `PUT`
    /// creates the disk but cannot tag it (`ManagedDiskParameters` has no `tags`). `GET` the disk
    /// (Disks – Get) and, unless it already carries every tag, `PATCH` it (Disks – Update) with its own
    /// tags plus ours — ARM replaces the tags with the map sent, so the disk's other tags (an Azure
    /// Policy's) are sent back. Idempotent: a resumed create finds the tags and sends nothing. A VM
    /// whose OS disk is no managed disk resource (an ephemeral OS disk set by an override: 404) has
    /// nothing to tag.
    async fn ensure_disk_tags(&self, vm: &ArmVm, labels: &OwnerLabels) -> Result<(), Error> {
        let url = self.os_disk_url(vm);
        let Some(disk) = self.client.get::<Value>(url.clone(), "read the VM's OS disk").await? else {
            tracing::info!(vm = %vm.name, "the VM's OS disk is not a managed disk resource; nothing to tag");
            return Ok(());
        };
        let mut tags = disk.get("tags").and_then(Value::as_object).cloned().unwrap_or_default();
        let want = self.tags(labels);
        if want.iter().all(|(k, v)| tags.get(k) == Some(v)) {
            return Ok(());
        }
        tags.extend(want);
        self.client.patch(url, json!({"tags": tags}), "tag the VM's OS disk").await?;
        tracing::info!(vm = %vm.name, "OS disk tagged");
        Ok(())
    }

    async fn ensure_windows_script(&self, vm: &str, labels: &OwnerLabels) -> Result<(), Error> {
        let mut path: Vec<&str> = self.rg_path("Microsoft.Compute", "virtualMachines", vm).to_vec();
        path.extend(["extensions", WINDOWS_EXTENSION]);
        let url = self.client.url(&path, COMPUTE_API);
        let body = json!({
            "location": self.cfg().azure_region.trim(),
            "tags": self.tags(labels),
            "properties": {
                "publisher": "Microsoft.Compute",
                "type": "CustomScriptExtension",
                "typeHandlerVersion": "1.10",
                "autoUpgradeMinorVersion": true,
                "settings": {},
                "protectedSettings": {"commandToExecute": WINDOWS_COMMAND}
            }
        });
        self.client.put(url, body, "run the startup script (Custom Script Extension)", Vec::new()).await?;
        Ok(())
    }

    /// Deletes the NIC and public IP of VM `vm` when they exist, carry our deployment tag and are not
    /// attached to a VM. Best effort: a failure is logged (the next delete tries again).
    async fn delete_leftovers(&self, vm: &str) {
        if let Err(e) = self.try_delete_leftovers(vm).await {
            tracing::warn!(vm, error = %e, "could not delete the VM's NIC or public IP");
        }
    }

    async fn try_delete_leftovers(&self, vm: &str) -> Result<(), Error> {
        let nic_url = self.nic_url(&nic_name(vm));
        if let Some(nic) = self.client.get::<Value>(nic_url.clone(), "read the VM's NIC").await? {
            let tags: BTreeMap<String, String> = serde_json::from_value(nic["tags"].clone()).unwrap_or_default();
            let attached = nic.pointer("/properties/virtualMachine/id").is_some();
            if is_ours(&tags) && !attached {
                self.client.delete(nic_url, "delete the VM's NIC").await?;
            }
        }
        let ip_url = self.ip_url(&ip_name(vm));
        if let Some(ip) = self.client.get::<Value>(ip_url.clone(), "read the VM's public IP").await? {
            let tags: BTreeMap<String, String> = serde_json::from_value(ip["tags"].clone()).unwrap_or_default();
            let attached = ip.pointer("/properties/ipConfiguration/id").is_some();
            if is_ours(&tags) && !attached {
                self.client.delete(ip_url, "delete the VM's public IP").await?;
            }
        }
        Ok(())
    }

    async fn delete(&self, name: &str) -> Result<(), Error> {
        match self.get_arm_vm(name).await? {
            None => {}
            Some(vm) if !is_ours(&vm.tags) => return Err(Error::NotOurs { name: name.to_string() }),
            Some(_) if self.client.delete(self.vm_url(name), "delete the VM").await? => {
                tracing::info!(vm = name, "VM deleted");
            }
            Some(_) => {}
        }
        self.try_delete_leftovers(name).await
    }

    async fn list(&self, labels: &OwnerLabels) -> Result<Vec<Vm>, Error> {
        let path = [
            "subscriptions",
            self.cfg().azure_subscription_id.trim(),
            "resourceGroups",
            self.cfg().azure_resource_group.trim(),
            "providers",
            "Microsoft.Compute",
            "virtualMachines",
        ];
        let all: Vec<ArmVm> = self.client.list(self.client.url(&path, COMPUTE_API), "list the VMs").await?;
        Ok(all
            .iter()
            .filter(|v| is_ours(&v.tags))
            .map(|v| to_vm(v, None, None))
            .filter(|vm| vm.state != VmState::Deleting && labels.matches(&vm.labels))
            .collect())
    }
}

#[async_trait]
impl VmProvider for AzureProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn preflight(&self) -> Vec<super::Check> {
        AzureProvider::preflight(self).await
    }

    fn capabilities(&self) -> Capabilities {
        // No request token: the claim's deterministic name makes ARM's PUT idempotent. The VM list
        // takes no tag filter: we filter.
        Capabilities { idempotency_token: false, windows_password: false, server_side_label_filter: false }
    }

    async fn create_vm(&self, spec: &VmSpec) -> Result<Vm, ProviderError> {
        self.create(spec).await.map_err(Error::into_provider)
    }

    async fn get_vm(&self, id: &str) -> Result<Vm, ProviderError> {
        let not_found = || ProviderError::NotFound { provider: NAME, id: id.to_string() };
        let vm = self.get_arm_vm(id).await.map_err(Error::into_provider)?.ok_or_else(not_found)?;
        let (private, public) = self.addresses(id).await.map_err(Error::into_provider)?;
        Ok(to_vm(&vm, private, public))
    }

    async fn delete_vm(&self, id: &str) -> Result<(), ProviderError> {
        self.delete(id).await.map_err(Error::into_provider)
    }

    async fn list_vms(&self, labels: &OwnerLabels) -> Result<Vec<Vm>, ProviderError> {
        self.list(labels).await.map_err(Error::into_provider)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ErrorClass;
    use reqwest::StatusCode;

    fn status_err(code: u16, body: &str) -> Error {
        Error::Http {
            what: "create the VM".into(),
            source: HttpError::Status {
                status: StatusCode::from_u16(code).unwrap(),
                body: body.into(),
                retry_after: None,
            },
        }
    }

    fn arm(code: &str, message: &str) -> String {
        json!({"error": {"code": code, "message": message}}).to_string()
    }

    #[test]
    fn statuses_and_codes_map_to_the_classes_the_engine_acts_on() {
        let c = |status, body: String| status_err(status, &body).into_provider().class();
        assert_eq!(c(401, arm("InvalidAuthenticationToken", "The access token is invalid.")), ErrorClass::Auth);
        assert_eq!(
            c(
                403,
                arm(
                    "AuthorizationFailed",
                    "The client 'x' does not have authorization to perform action 'Microsoft.Compute/virtualMachines/write' over scope '/subscriptions/s'."
                )
            ),
            ErrorClass::Permission
        );
        assert_eq!(c(404, arm("ResourceNotFound", "not found")), ErrorClass::NotFound);
        assert_eq!(
            c(409, arm("SkuNotAvailable", "The requested size is currently not available")),
            ErrorClass::OutOfCapacity
        );
        assert_eq!(
            c(
                409,
                arm(
                    "OperationNotAllowed",
                    "Operation could not be completed as it results in exceeding approved standardDSv5Family Cores quota."
                )
            ),
            ErrorClass::OutOfCapacity
        );
        assert_eq!(
            c(409, arm("OperationNotAllowed", "The operation is not allowed on a deallocating VM")),
            ErrorClass::Conflict
        );
        assert_eq!(c(429, arm("TooManyRequests", "slow down")), ErrorClass::RateLimited);
        assert_eq!(c(500, arm("InternalServerError", "x")), ErrorClass::Transient);
        assert_eq!(c(400, arm("InvalidParameter", "bad")), ErrorClass::Invalid);
        let msg = status_err(
            403,
            &arm(
                "AuthorizationFailed",
                "does not have authorization to perform action 'Microsoft.Network/networkInterfaces/write'",
            ),
        )
        .into_provider()
        .to_string();
        assert!(msg.contains("Microsoft.Network/networkInterfaces/write") && msg.contains("create the VM"), "{msg}");
        let op = |code: &str, message: &str| {
            Error::OperationFailed {
                what: "create the VM".into(),
                status: "Failed".into(),
                code: code.into(),
                message: message.into(),
            }
            .into_provider()
            .class()
        };
        assert_eq!(op("AllocationFailed", "Allocation failed."), ErrorClass::OutOfCapacity);
        assert_eq!(op("ZonalAllocationFailed", "x"), ErrorClass::OutOfCapacity);
        assert_eq!(op("InternalExecutionError", "x"), ErrorClass::Transient);
        assert_eq!(op("ImageNotFound", "x"), ErrorClass::Invalid);
        assert_eq!(Error::NotOurs { name: "x".into() }.into_provider().class(), ErrorClass::Invalid);
    }

    #[test]
    fn names_and_states() {
        let n = windows_computer_name("kasm-01JD2X5Q9ZK3M7B8C1V2N4P6R8");
        assert_eq!(n, "km7b8c1v2n4p6r8");
        assert_eq!(n.len(), 15);
        assert_eq!(state(Some("Creating")), VmState::Creating);
        assert_eq!(state(Some("Succeeded")), VmState::Running);
        assert_eq!(state(Some("Failed")), VmState::Failed);
        assert_eq!(state(Some("Deleting")), VmState::Deleting);
        assert_eq!((nic_name("v"), ip_name("v"), disk_name("v")), ("v-nic".into(), "v-ip".into(), "v-osdisk".into()));
    }
}
