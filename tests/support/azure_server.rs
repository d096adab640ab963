//! An in-process Azure for tests, on the shared fake-API harness ([`crate::fake_api`]): the Microsoft
//! Entra ID token endpoint (`POST /{tenant}/oauth2/v2.0/token`, client credentials) and the Azure
//! Resource Manager calls `shared::providers::azure` makes, in the shapes of the official REST specs
//! (`Microsoft.Compute` 2024-07-01 virtualMachines and extensions, DiskRP 2023-10-02 disks (Get, and
//! Update answered `202` + `Location`), `Microsoft.Network` 2024-05-01
//! networkInterfaces / publicIPAddresses / networkSecurityGroups / subnets, DNS 2018-05-01 record
//! sets) and the ARM async-operation contract (`201`/`202` with `Azure-AsyncOperation`, the operation
//! resource `{id, name, status, error}`; `DELETE` of a missing resource `204`; errors
//! `{"error": {"code", "message"}}`; lists `{"value": [...], "nextLink": ...}`).
//!
//! Requests are checked: the Bearer token must be one the token endpoint issued and not expired (`401
//! InvalidAuthenticationToken` / `ExpiredAuthenticationToken`), `api-version` must be the pinned one of
//! the resource provider, and every key of a `PUT` body must be a property the spec's definition has
//! (`400 InvalidRequestContent` naming the key otherwise); resource references (NIC → subnet, NSG,
//! public IP; VM → NIC) must exist.
//!
//! State: VMs (with their OS disk, made untagged as the VM `PUT` makes it), NICs, public IPs, extensions, DNS record sets of [`ZONE`]. A
//! created VM is `Creating` until its operation has been polled [`OPERATION_POLLS`] times (or the VM
//! read as often). Deleting a VM removes the disk, NIC and public IP whose `deleteOption` is `Delete`
//! and detaches the others. [`AzureHarness`] drives it for the provider conformance suite and [`Zone`]
//! for the DNS conformance suite.

use async_trait::async_trait;
use serde_json::{Value, json};
use shared::dns::conformance::ZoneAccess;
use shared::model::OwnerLabels;
use shared::providers::VmSpec;
use shared::providers::conformance::{self, Harness, Op, RetryRules};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::fake_api::{self, FakeApi, Fault, Incoming, Reply};

/// The tenant the token endpoint serves.
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The app (client) id it accepts.
pub const CLIENT_ID: &str = "a1b2c3d4-0000-4000-8000-00000000c11e";
/// The client secret it accepts.
pub const CLIENT_SECRET: &str = "Qx8~client.secret-Vb2nK9zT4wP7rL1mS6dF3hJ0";
/// The subscription.
pub const SUBSCRIPTION: &str = "00000000-0000-0000-0000-0000000000a2";
/// The resource group of the VMs.
pub const RESOURCE_GROUP: &str = "kasm-rg";
/// The region.
pub const REGION: &str = "eastus";
/// The DNS zone (in resource group [`DNS_RESOURCE_GROUP`]).
pub const ZONE: &str = "kasm.example.com";
/// The resource group of the DNS zone.
pub const DNS_RESOURCE_GROUP: &str = "dns-rg";
/// The scope the token endpoint requires (the public cloud's ARM).
pub const SCOPE: &str = "https://management.azure.com/.default";
/// Polls of a create operation (or reads of the VM) before a new VM is `Succeeded`.
pub const OPERATION_POLLS: u32 = 2;
/// The vNet and subnet that exist.
pub const VNET: &str = "kasm-vnet";
/// The subnet that exists.
pub const SUBNET: &str = "default";
/// The network security group that exists.
pub const NSG: &str = "kasm-nsg";

/// One recorded request.
pub use crate::fake_api::Recorded as Request;

/// The resource id of `kind`/`name` in resource group `rg`.
pub fn resource_id(rg: &str, provider: &str, kind: &str, name: &str) -> String {
    format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{rg}/providers/{provider}/{kind}/{name}")
}

/// The subnet's resource id.
pub fn subnet_id() -> String {
    format!("{}/subnets/{SUBNET}", resource_id(RESOURCE_GROUP, "Microsoft.Network", "virtualNetworks", VNET))
}

/// The managed image that exists (`Microsoft.Compute/images`).
pub const MANAGED_IMAGE: &str = "kasm-golden";
/// The gallery, its image definition and its one version that exist.
pub const GALLERY: &str = "kasmgallery";
/// The gallery image definition that exists.
pub const GALLERY_IMAGE: &str = "ubuntu-kasm";
/// The one version of [`GALLERY_IMAGE`].
pub const GALLERY_VERSION: &str = "1.0.0";
/// A VM size the subscription lists with a `Location` restriction in [`REGION`].
pub const RESTRICTED_SIZE: &str = "Standard_NC6s_v3";
/// A VM size the subscription lists with a `Zone` restriction on zone 2 of [`REGION`].
pub const ZONE_RESTRICTED_SIZE: &str = "Standard_E2s_v5";

/// The NSG's resource id.
pub fn nsg_id() -> String {
    resource_id(RESOURCE_GROUP, "Microsoft.Network", "networkSecurityGroups", NSG)
}

/// A resource as the server holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// Name.
    pub name: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// The body as last put (`properties` etc.), with the server's read-only fields.
    pub body: Value,
}

/// A DNS record set.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordSet {
    /// TTL.
    pub ttl: u64,
    /// The A addresses or TXT texts.
    pub values: Vec<String>,
}

#[derive(Debug, Default)]
struct Inner {
    vms: BTreeMap<String, Resource>,
    /// VM name → polls left before `Succeeded`.
    creating: BTreeMap<String, u32>,
    nics: BTreeMap<String, Resource>,
    ips: BTreeMap<String, Resource>,
    disks: BTreeMap<String, Resource>,
    extensions: BTreeMap<(String, String), Resource>,
    /// Operation id → (polls left, failure).
    ops: BTreeMap<String, (u32, Option<(String, String)>)>,
    /// A VM create's operation id → the VM.
    op_vm: BTreeMap<String, String>,
    next: u64,
    /// Issued tokens and when they expire.
    tokens: BTreeMap<String, Instant>,
    token_lifetime: u64,
    token_requests: usize,
    /// How many VMs the list answers held, in all.
    listed: usize,
    page_size: usize,
    /// Most VMs the subscription's quota allows.
    quota: usize,
    /// (type, relative name) → record set.
    records: BTreeMap<(String, String), RecordSet>,
    /// Failure of the next create operations (code, message).
    fail_next_vm_op: Option<(String, String)>,
    /// `Retry-After` on async answers.
    retry_after: Option<u64>,
    /// How many disk `PATCH`es were accepted.
    disk_patches: usize,
}

/// The running server (the task ends with the test's runtime).
#[derive(Debug, Clone)]
pub struct AzureTestServer {
    /// `http://127.0.0.1:PORT`: both the ARM endpoint and the login authority.
    pub url: String,
    api: FakeApi,
    inner: Arc<Mutex<Inner>>,
}

const RG: &str = "/subscriptions/{sub}/resourceGroups/{rg}/providers";

/// Every ARM route the server answers (the token route is separate).
fn routes() -> Vec<String> {
    let r = |s: &str| s.replace("{RG}", RG);
    vec![
        r("GET {RG}/Microsoft.Compute/virtualMachines"),
        r("GET {RG}/Microsoft.Compute/virtualMachines/{vm}"),
        r("PUT {RG}/Microsoft.Compute/virtualMachines/{vm}"),
        r("DELETE {RG}/Microsoft.Compute/virtualMachines/{vm}"),
        r("GET {RG}/Microsoft.Compute/virtualMachines/{vm}/extensions/{ext}"),
        r("PUT {RG}/Microsoft.Compute/virtualMachines/{vm}/extensions/{ext}"),
        r("GET {RG}/Microsoft.Compute/disks/{disk}"),
        r("PATCH {RG}/Microsoft.Compute/disks/{disk}"),
        r("GET {RG}/Microsoft.Network/networkInterfaces/{nic}"),
        r("PUT {RG}/Microsoft.Network/networkInterfaces/{nic}"),
        r("DELETE {RG}/Microsoft.Network/networkInterfaces/{nic}"),
        r("GET {RG}/Microsoft.Network/publicIPAddresses/{ip}"),
        r("PUT {RG}/Microsoft.Network/publicIPAddresses/{ip}"),
        r("DELETE {RG}/Microsoft.Network/publicIPAddresses/{ip}"),
        r("GET {RG}/Microsoft.Network/networkSecurityGroups/{nsg}"),
        r("GET {RG}/Microsoft.Network/virtualNetworks/{vnet}/subnets/{subnet}"),
        "GET /subscriptions/{sub}/providers/Microsoft.Compute/locations/{loc}/operations/{op}".into(),
        "GET /subscriptions/{sub}/providers/Microsoft.Network/locations/{loc}/operations/{op}".into(),
        "GET /subscriptions/{sub}/providers/Microsoft.Compute/locations/{loc}/operationResults/{op}".into(),
        "GET /subscriptions/{sub}/providers/Microsoft.Compute/locations/{loc}/usages".into(),
        "GET /subscriptions/{sub}/providers/Microsoft.Compute/skus".into(),
        r("GET {RG}/Microsoft.Compute/images/{image}"),
        r("GET {RG}/Microsoft.Compute/galleries/{gallery}/images/{image}/versions"),
        r("GET {RG}/Microsoft.Compute/galleries/{gallery}/images/{image}/versions/{version}"),
        "GET /subscriptions/{sub}/providers/Microsoft.Compute/locations/{loc}/publishers/{publisher}/artifacttypes/vmimage/offers/{offer}/skus/{sku}/versions".into(),
        r("GET {RG}/Microsoft.Network/dnsZones/{zone}"),
        r("GET {RG}/Microsoft.Network/dnsZones/{zone}/{type}"),
        r("GET {RG}/Microsoft.Network/dnsZones/{zone}/{type}/{name}"),
        r("PUT {RG}/Microsoft.Network/dnsZones/{zone}/{type}/{name}"),
        r("DELETE {RG}/Microsoft.Network/dnsZones/{zone}/{type}/{name}"),
    ]
}

/// The route of the VM `GET`/`PUT`/`DELETE` (by method).
pub fn vm_route(method: &str) -> String {
    format!("{method} {RG}/Microsoft.Compute/virtualMachines/{{vm}}")
}

/// The route of the VM list.
pub fn list_route() -> String {
    format!("GET {RG}/Microsoft.Compute/virtualMachines")
}

/// The route of `method` on NICs / public IPs / extensions (`kind` = `networkInterfaces/{nic}`, ...).
pub fn route_of(method: &str, tail: &str) -> String {
    format!("{method} {RG}/{tail}")
}

/// An ARM error answer.
pub fn err(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(status, &json!({"error": {"code": code, "message": message}}))
}

fn not_found(kind: &str, name: &str, rg: &str) -> Reply {
    err(
        404,
        "ResourceNotFound",
        &format!(
            "The Resource '{kind}/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
        ),
    )
}

/// A throttled answer with `Retry-After`.
pub fn throttled(wait: Duration) -> Reply {
    err(
        429,
        "TooManyRequests",
        "The request is being throttled as the limit has been reached for operation type - Write_1Min.",
    )
    .header("Retry-After", wait.as_secs().to_string())
}

/// The answer to a create over the subscription's quota (`OperationNotAllowed`, as Azure words it).
pub fn quota_answer() -> Reply {
    err(
        409,
        "OperationNotAllowed",
        "Operation could not be completed as it results in exceeding approved standardDSv5Family Cores quota. Additional details - Deployment Model: Resource Manager, Location: eastus, Current Limit: 10, Current Usage: 8, Additional Required: 4.",
    )
}

/// Keys of the spec's definitions we accept in `PUT` bodies (virtualMachine.json, computeRPCommon.json
/// 2024-07-01; networkInterface.json, publicIpAddress.json 2024-05-01; dns.json 2018-05-01).
fn allowed(def: &str) -> &'static [&'static str] {
    match def {
        "VirtualMachine" => &["location", "tags", "plan", "properties", "identity", "zones", "extendedLocation"],
        "VirtualMachineProperties" => &[
            "hardwareProfile",
            "scheduledEventsPolicy",
            "storageProfile",
            "additionalCapabilities",
            "osProfile",
            "networkProfile",
            "securityProfile",
            "diagnosticsProfile",
            "availabilitySet",
            "virtualMachineScaleSet",
            "proximityPlacementGroup",
            "priority",
            "evictionPolicy",
            "billingProfile",
            "host",
            "hostGroup",
            "licenseType",
            "extensionsTimeBudget",
            "platformFaultDomain",
            "scheduledEventsProfile",
            "userData",
            "capacityReservation",
            "applicationProfile",
        ],
        "HardwareProfile" => &["vmSize", "vmSizeProperties"],
        "StorageProfile" => &["imageReference", "osDisk", "dataDisks", "diskControllerType"],
        "ImageReference" => {
            &["id", "publisher", "offer", "sku", "version", "sharedGalleryImageId", "communityGalleryImageId"]
        }
        "OSDisk" => &[
            "osType",
            "encryptionSettings",
            "name",
            "vhd",
            "image",
            "caching",
            "writeAcceleratorEnabled",
            "diffDiskSettings",
            "createOption",
            "diskSizeGB",
            "managedDisk",
            "deleteOption",
        ],
        "ManagedDiskParameters" => &["id", "storageAccountType", "diskEncryptionSet", "securityProfile"],
        "OSProfile" => &[
            "computerName",
            "adminUsername",
            "adminPassword",
            "customData",
            "windowsConfiguration",
            "linuxConfiguration",
            "secrets",
            "allowExtensionOperations",
            "requireGuestProvisionSignal",
        ],
        "LinuxConfiguration" => &[
            "disablePasswordAuthentication",
            "ssh",
            "provisionVMAgent",
            "patchSettings",
            "enableVMAgentPlatformUpdates",
        ],
        "WindowsConfiguration" => &[
            "provisionVMAgent",
            "enableAutomaticUpdates",
            "timeZone",
            "additionalUnattendContent",
            "patchSettings",
            "winRM",
            "enableVMAgentPlatformUpdates",
        ],
        "SshConfiguration" => &["publicKeys"],
        "SshPublicKey" => &["path", "keyData"],
        "NetworkProfile" => &["networkInterfaces", "networkApiVersion", "networkInterfaceConfigurations"],
        "NetworkInterfaceReference" => &["id", "properties"],
        "NetworkInterfaceReferenceProperties" => &["primary", "deleteOption"],
        "SecurityProfile" => {
            &["uefiSettings", "encryptionAtHost", "securityType", "encryptionIdentity", "proxyAgentSettings"]
        }
        "UefiSettings" => &["secureBootEnabled", "vTpmEnabled"],
        "Plan" => &["name", "publisher", "product", "promotionCode"],
        "NetworkInterface" => &["id", "location", "tags", "properties", "extendedLocation"],
        "NetworkInterfacePropertiesFormat" => &[
            "networkSecurityGroup",
            "ipConfigurations",
            "tapConfigurations",
            "dnsSettings",
            "enableAcceleratedNetworking",
            "disableTcpStateTracking",
            "enableIPForwarding",
            "workloadType",
            "nicType",
            "privateLinkService",
            "migrationPhase",
            "auxiliaryMode",
            "auxiliarySku",
        ],
        "NetworkInterfaceIPConfiguration" => &["id", "name", "type", "properties"],
        "NetworkInterfaceIPConfigurationPropertiesFormat" => &[
            "gatewayLoadBalancer",
            "virtualNetworkTaps",
            "applicationGatewayBackendAddressPools",
            "loadBalancerBackendAddressPools",
            "loadBalancerInboundNatRules",
            "privateIPAddress",
            "privateIPAddressPrefixLength",
            "privateIPAddressVersion",
            "privateIPAllocationMethod",
            "subnet",
            "primary",
            "publicIPAddress",
            "applicationSecurityGroups",
        ],
        "PublicIPAddress" => &["id", "location", "tags", "sku", "properties", "zones", "extendedLocation"],
        "PublicIPAddressSku" => &["name", "tier"],
        "PublicIPAddressPropertiesFormat" => &[
            "publicIPAllocationMethod",
            "publicIPAddressVersion",
            "dnsSettings",
            "ddosSettings",
            "ipTags",
            "ipAddress",
            "publicIPPrefix",
            "idleTimeoutInMinutes",
            "servicePublicIPAddress",
            "natGateway",
            "migrationPhase",
            "linkedPublicIPAddress",
            "deleteOption",
        ],
        "VirtualMachineExtension" => &["location", "tags", "properties"],
        "VirtualMachineExtensionProperties" => &[
            "forceUpdateTag",
            "publisher",
            "type",
            "typeHandlerVersion",
            "autoUpgradeMinorVersion",
            "enableAutomaticUpgrade",
            "settings",
            "protectedSettings",
            "suppressFailures",
            "protectedSettingsFromKeyVault",
            "provisionAfterExtensions",
        ],
        // DiskRP 2023-10-02 disk.json `DiskUpdate` (the body of Disks – Update).
        "DiskUpdate" => &["properties", "tags", "sku"],
        "RecordSet" => &["etag", "properties"],
        "RecordSetProperties" => &[
            "metadata",
            "TTL",
            "targetResource",
            "ARecords",
            "AAAARecords",
            "MXRecords",
            "NSRecords",
            "PTRRecords",
            "SRVRecords",
            "TXTRecords",
            "CNAMERecord",
            "SOARecord",
            "caaRecords",
        ],
        "ARecord" => &["ipv4Address"],
        "TxtRecord" => &["value"],
        _ => &[],
    }
}

/// Checks that `v` (an object) has only the keys of `def`; `at` names where, for the error.
fn keys_of(v: &Value, def: &str, at: &str) -> Result<(), String> {
    let Some(o) = v.as_object() else { return Err(format!("{at} must be an object ({def})")) };
    for k in o.keys() {
        if !allowed(def).contains(&k.as_str()) {
            return Err(format!("Could not find member '{k}' on object of type '{def}' at {at}"));
        }
    }
    Ok(())
}

/// Checks the keys of the parts of a VM body we know the definitions of.
fn check_vm_body(b: &Value) -> Result<(), String> {
    keys_of(b, "VirtualMachine", "$")?;
    let p = &b["properties"];
    keys_of(p, "VirtualMachineProperties", "properties")?;
    let sub = |v: &Value, def: &str, at: &str| if v.is_null() { Ok(()) } else { keys_of(v, def, at) };
    sub(&p["hardwareProfile"], "HardwareProfile", "properties.hardwareProfile")?;
    sub(&p["storageProfile"], "StorageProfile", "properties.storageProfile")?;
    sub(&p["storageProfile"]["imageReference"], "ImageReference", "properties.storageProfile.imageReference")?;
    sub(&p["storageProfile"]["osDisk"], "OSDisk", "properties.storageProfile.osDisk")?;
    sub(
        &p["storageProfile"]["osDisk"]["managedDisk"],
        "ManagedDiskParameters",
        "properties.storageProfile.osDisk.managedDisk",
    )?;
    sub(&p["osProfile"], "OSProfile", "properties.osProfile")?;
    sub(&p["osProfile"]["linuxConfiguration"], "LinuxConfiguration", "properties.osProfile.linuxConfiguration")?;
    sub(&p["osProfile"]["windowsConfiguration"], "WindowsConfiguration", "properties.osProfile.windowsConfiguration")?;
    sub(
        &p["osProfile"]["linuxConfiguration"]["ssh"],
        "SshConfiguration",
        "properties.osProfile.linuxConfiguration.ssh",
    )?;
    for k in p["osProfile"]["linuxConfiguration"]["ssh"]["publicKeys"].as_array().into_iter().flatten() {
        keys_of(k, "SshPublicKey", "publicKeys[]")?;
    }
    sub(&p["networkProfile"], "NetworkProfile", "properties.networkProfile")?;
    for n in p["networkProfile"]["networkInterfaces"].as_array().into_iter().flatten() {
        keys_of(n, "NetworkInterfaceReference", "networkInterfaces[]")?;
        sub(&n["properties"], "NetworkInterfaceReferenceProperties", "networkInterfaces[].properties")?;
    }
    sub(&p["securityProfile"], "SecurityProfile", "properties.securityProfile")?;
    sub(&p["securityProfile"]["uefiSettings"], "UefiSettings", "properties.securityProfile.uefiSettings")?;
    sub(&b["plan"], "Plan", "plan")?;
    if let Some(t) = p["securityProfile"]["securityType"].as_str()
        && !["TrustedLaunch", "ConfidentialVM"].contains(&t)
    {
        return Err(format!("securityType '{t}' is not one of TrustedLaunch, ConfidentialVM"));
    }
    // OSDisk requires createOption; the VM needs a size, a computer name and an admin user.
    for (ptr, what) in [
        ("/properties/storageProfile/osDisk/createOption", "createOption"),
        ("/properties/hardwareProfile/vmSize", "vmSize"),
        ("/properties/osProfile/computerName", "computerName"),
        ("/properties/osProfile/adminUsername", "adminUsername"),
        ("/location", "location"),
    ] {
        if !b.pointer(ptr).is_some_and(Value::is_string) {
            return Err(format!("Required parameter '{what}' is missing (null)."));
        }
    }
    Ok(())
}

fn tags_of(b: &Value) -> Result<BTreeMap<String, String>, String> {
    match b.get("tags") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(o)) => o
            .iter()
            .map(|(k, v)| match v.as_str() {
                Some(s) if s.len() <= 256 && k.len() <= 512 && !k.chars().any(|c| "<>%&\\?/".contains(c)) => {
                    Ok((k.clone(), s.to_string()))
                }
                _ => Err(format!("The tag '{k}' is invalid")),
            })
            .collect(),
        Some(_) => Err("tags must be an object of strings".into()),
    }
}

impl AzureTestServer {
    /// Starts a server with the subnet, the NSG and a quota of 25 VMs; lists page 50 VMs at a time.
    pub async fn start() -> AzureTestServer {
        let inner = Arc::new(Mutex::new(Inner { token_lifetime: 3599, page_size: 50, quota: 25, ..Inner::default() }));
        let base: Arc<Mutex<String>> = Arc::new(Mutex::new(String::new()));
        let mut b = FakeApi::builder()
            .guard({
                let st = inner.clone();
                move |req| {
                    if !req.route.starts_with("/subscriptions") {
                        return None;
                    }
                    let got = req.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
                    let Some(token) = got.strip_prefix("Bearer ") else {
                        return Some(err(
                            401,
                            "AuthenticationFailed",
                            "Authentication failed. The 'Authorization' header is missing.",
                        ));
                    };
                    let st = st.lock().expect("server lock");
                    match st.tokens.get(token) {
                        None => Some(err(401, "InvalidAuthenticationToken", "The access token is invalid.")),
                        Some(exp) if *exp <= Instant::now() => Some(err(
                            401,
                            "ExpiredAuthenticationToken",
                            "The access token expiry UTC time is earlier than current UTC time.",
                        )),
                        Some(_) => None,
                    }
                }
            })
            .unrouted(|m, p| err(404, "InvalidResourceType", &format!("No route for {m} {p}")));
        b = b.route(
            "POST /{tenant}/oauth2/v2.0/token",
            fake_api::handler({
                let st = inner.clone();
                move |req| {
                    let st = st.clone();
                    async move { token(&st, &req) }
                }
            }),
        );
        for route in routes() {
            let st = inner.clone();
            let base = base.clone();
            b = b.route(
                &route,
                fake_api::handler(move |req| {
                    let st = st.clone();
                    let base = base.lock().expect("url").clone();
                    async move { answer(&st, &base, req) }
                }),
            );
        }
        let api = b.start().await;
        *base.lock().expect("url") = api.url.clone();
        AzureTestServer { url: api.url.clone(), api, inner }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("server lock")
    }

    /// The fake API underneath (faults, recorded requests).
    pub fn api(&self) -> &FakeApi {
        &self.api
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.api.requests()
    }

    /// Every VM.
    pub fn vms(&self) -> Vec<Resource> {
        self.lock().vms.values().cloned().collect()
    }

    /// VM `name`.
    pub fn vm(&self, name: &str) -> Option<Resource> {
        self.lock().vms.get(name).cloned()
    }

    /// Every NIC.
    pub fn nics(&self) -> Vec<Resource> {
        self.lock().nics.values().cloned().collect()
    }

    /// Every public IP.
    pub fn public_ips(&self) -> Vec<Resource> {
        self.lock().ips.values().cloned().collect()
    }

    /// Every managed disk.
    pub fn disks(&self) -> Vec<Resource> {
        self.lock().disks.values().cloned().collect()
    }

    /// How many disk `PATCH`es (tag updates) were accepted.
    pub fn disk_patches(&self) -> usize {
        self.lock().disk_patches
    }

    /// Removes every tag of disk `name`.
    pub fn clear_disk_tags(&self, name: &str) {
        if let Some(d) = self.lock().disks.get_mut(name) {
            d.tags.clear();
        }
    }

    /// Tags disk `name` (as Azure Policy or an operator would).
    pub fn tag_disk(&self, name: &str, key: &str, value: &str) {
        if let Some(d) = self.lock().disks.get_mut(name) {
            d.tags.insert(key.into(), value.into());
        }
    }

    /// Every VM extension, as (VM, extension).
    pub fn extensions(&self) -> Vec<((String, String), Resource)> {
        self.lock().extensions.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Everything in the resource group, as `kind/name` (what a test lists to find leaks).
    pub fn resources(&self) -> Vec<String> {
        let st = self.lock();
        let mut out = Vec::new();
        out.extend(st.vms.keys().map(|n| format!("virtualMachines/{n}")));
        out.extend(st.nics.keys().map(|n| format!("networkInterfaces/{n}")));
        out.extend(st.ips.keys().map(|n| format!("publicIPAddresses/{n}")));
        out.extend(st.disks.keys().map(|n| format!("disks/{n}")));
        out
    }

    /// Lists page `n` VMs at a time.
    pub fn set_page_size(&self, n: usize) {
        self.lock().page_size = n.max(1);
    }

    /// The subscription allows at most `n` VMs.
    pub fn set_quota(&self, n: usize) {
        self.lock().quota = n;
    }

    /// Tokens issued from now on live `secs` seconds.
    pub fn set_token_lifetime(&self, secs: u64) {
        self.lock().token_lifetime = secs;
    }

    /// Forgets every issued token (as if they all expired).
    pub fn expire_tokens(&self) {
        for exp in self.lock().tokens.values_mut() {
            *exp = Instant::now();
        }
    }

    /// How many token requests arrived.
    pub fn token_requests(&self) -> usize {
        self.lock().token_requests
    }

    /// The next VM create operation fails with `code` and `message`.
    pub fn fail_next_vm_operation(&self, code: &str, message: &str) {
        self.lock().fail_next_vm_op = Some((code.into(), message.into()));
    }

    /// Async answers carry `Retry-After: secs`.
    pub fn set_retry_after(&self, secs: Option<u64>) {
        self.lock().retry_after = secs;
    }

    /// Adds a running VM without our tags (an operator's) with `tags`; returns its name.
    pub fn add_foreign_vm(&self, name: &str, tags: &[(&str, &str)]) -> String {
        let tags: BTreeMap<String, String> = tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let body = json!({"location": REGION, "tags": tags, "properties": {
            "hardwareProfile": {"vmSize": "Standard_B2s"}, "provisioningState": "Succeeded"}});
        self.lock().vms.insert(name.into(), Resource { name: name.into(), tags, body });
        name.into()
    }

    /// Removes VM `name` (as an operator would).
    pub fn remove_vm(&self, name: &str) {
        self.lock().vms.remove(name);
    }

    /// The record set of `kind` at `relative` (`@` for the apex).
    pub fn record_set(&self, kind: &str, relative: &str) -> Option<RecordSet> {
        self.lock().records.get(&(kind.to_string(), relative.to_string())).cloned()
    }

    /// Every record set as (type, relative name).
    pub fn record_sets(&self) -> Vec<(String, String)> {
        self.lock().records.keys().cloned().collect()
    }

    /// Writes a record set (as an operator would).
    pub fn put_record_set(&self, kind: &str, relative: &str, values: &[&str]) {
        self.lock().records.insert(
            (kind.to_string(), relative.to_string()),
            RecordSet { ttl: 3600, values: values.iter().map(|v| v.to_string()).collect() },
        );
    }
}

fn token(st: &Arc<Mutex<Inner>>, req: &Incoming) -> Reply {
    let mut st = st.lock().expect("server lock");
    st.token_requests += 1;
    let bad = |error: &str, desc: &str| {
        Reply::json(
            if error == "invalid_client" { 401 } else { 400 },
            &json!({"error": error, "error_description": format!("{desc}\r\nTrace ID: 0000\r\nCorrelation ID: 1111\r\nTimestamp: 2026-01-01 00:00:00Z"),
                "error_codes": [7000215], "timestamp": "2026-01-01 00:00:00Z", "trace_id": "0000", "correlation_id": "1111"}),
        )
    };
    if req.var("tenant") != TENANT {
        return bad("invalid_request", &format!("AADSTS90002: Tenant '{}' not found.", req.var("tenant")));
    }
    if !req
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
    {
        return bad(
            "invalid_request",
            "AADSTS900144: The request body must contain the following parameter: 'grant_type'.",
        );
    }
    if req.param("grant_type") != Some("client_credentials") {
        return bad("unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.");
    }
    if req.param("scope") != Some(SCOPE) {
        return bad("invalid_scope", "AADSTS70011: The provided value for the input parameter 'scope' is not valid.");
    }
    if req.param("client_id") != Some(CLIENT_ID) {
        return bad("unauthorized_client", "AADSTS700016: Application with identifier was not found in the directory.");
    }
    if req.param("client_secret") != Some(CLIENT_SECRET) {
        return bad(
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
        );
    }
    st.next += 1;
    let t = format!("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.test-{}.sig", st.next);
    let lifetime = st.token_lifetime;
    st.tokens.insert(t.clone(), Instant::now() + Duration::from_secs(lifetime));
    Reply::json(
        200,
        &json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": t}),
    )
}

/// The api-version each provider's routes require.
fn api_version_for(route: &str) -> &'static str {
    if route.contains("/dnsZones") {
        "2018-05-01"
    } else if route.ends_with("Microsoft.Compute/skus") {
        // Resource Skus – List: Skus/stable/2021-07-01/skus.json.
        "2021-07-01"
    } else if route.contains("Microsoft.Compute/galleries") {
        // GalleryImageVersions – Get / ListByGalleryImage: GalleryRP/stable/2024-03-03.
        "2024-03-03"
    } else if route.contains("Microsoft.Compute/disks") {
        // DiskRP (Disks – Get / Update): disk.json stable 2023-10-02.
        "2023-10-02"
    } else if route.contains("Microsoft.Network") {
        "2024-05-01"
    } else {
        "2024-07-01"
    }
}

fn answer(st: &Arc<Mutex<Inner>>, base: &str, req: Incoming) -> Reply {
    let want = api_version_for(&req.route);
    match req.param("api-version") {
        None => {
            return err(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            );
        }
        Some(v) if v != want => {
            return err(
                400,
                "InvalidApiVersionParameter",
                &format!("The api-version '{v}' is not the pinned {want} of this test server."),
            );
        }
        Some(_) => {}
    }
    if req.var("sub") != SUBSCRIPTION && !req.var("sub").is_empty() {
        return err(404, "SubscriptionNotFound", &format!("The subscription '{}' could not be found.", req.var("sub")));
    }
    let rg = req.var("rg").to_string();
    if !rg.is_empty() && rg != RESOURCE_GROUP && rg != DNS_RESOURCE_GROUP {
        return err(404, "ResourceGroupNotFound", &format!("Resource group '{rg}' could not be found."));
    }
    let mut st = st.lock().expect("server lock");
    route(&mut st, base, &req)
}

fn op_url(st: &mut Inner, base: &str, provider: &str, fail: Option<(String, String)>, polls: u32) -> String {
    st.next += 1;
    let id = format!("{:08x}-0000-4000-8000-{:012x}", st.next, st.next);
    st.ops.insert(id.clone(), (polls, fail));
    let ver = if provider == "Microsoft.Network" { "2024-05-01" } else { "2024-07-01" };
    format!(
        "{base}/subscriptions/{SUBSCRIPTION}/providers/{provider}/locations/{REGION}/operations/{id}?api-version={ver}"
    )
}

fn accepted(st: &Inner, status: u16, body: &Value, async_url: String) -> Reply {
    let mut r = Reply::json(status, body).header("Azure-AsyncOperation", async_url);
    if let Some(s) = st.retry_after {
        r = r.header("Retry-After", s.to_string());
    }
    r
}

fn vm_json(st: &Inner, r: &Resource) -> Value {
    let mut v = r.body.clone();
    v["id"] = json!(resource_id(RESOURCE_GROUP, "Microsoft.Compute", "virtualMachines", &r.name));
    v["name"] = json!(r.name);
    v["type"] = json!("Microsoft.Compute/virtualMachines");
    let state = if st.creating.contains_key(&r.name) {
        "Creating"
    } else {
        v["properties"]["provisioningState"].as_str().unwrap_or("Succeeded")
    };
    v["properties"]["provisioningState"] = json!(state);
    v["properties"]["vmId"] = json!(format!("0f0e0d0c-0000-4000-8000-{:012}", r.name.len()));
    v["properties"]["timeCreated"] = json!("2026-01-01T08:00:00.0000000+00:00");
    if let Some(disk) = v.pointer("/properties/storageProfile/osDisk/name").and_then(Value::as_str).map(str::to_string)
        && v["properties"]["storageProfile"]["osDisk"].get("managedDisk").is_some()
    {
        // A managed OS disk: the VM reports its id (`ManagedDiskParameters` is a `SubResource`).
        v["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"] =
            json!(resource_id(RESOURCE_GROUP, "Microsoft.Compute", "disks", &disk));
    }
    if let Some(o) = v["properties"]["osProfile"].as_object_mut() {
        // Write-only: never returned.
        o.remove("adminPassword");
        o.remove("customData");
    }
    v
}

/// The Resource Skus of [`REGION`] (skus.json 2021-07-01 `ResourceSku`, shaped like its example
/// `ListAvailableResourceSkusForARegion.json`): three VM sizes without restrictions, one restricted in the
/// region, one restricted in a zone, and a disk SKU (another resource type of the same list).
fn skus() -> Vec<Value> {
    let vm = |name: &str, family: &str, vcpus: u32, restrictions: Value| {
        json!({"resourceType": "virtualMachines", "name": name, "tier": "Standard",
            "size": name.trim_start_matches("Standard_"), "family": family, "locations": [REGION],
            "locationInfo": [{"location": REGION, "zones": ["1", "2", "3"]}],
            "capabilities": [{"name": "vCPUs", "value": vcpus.to_string()}, {"name": "MemoryGB", "value": (vcpus * 4).to_string()},
                {"name": "HyperVGenerations", "value": "V1,V2"}],
            "restrictions": restrictions})
    };
    vec![
        json!({"resourceType": "disks", "name": "Premium_LRS", "tier": "Premium", "size": "P1", "locations": [REGION],
            "capabilities": [], "restrictions": []}),
        vm("Standard_B2s", "standardBSFamily", 2, json!([])),
        vm("Standard_D2s_v5", "standardDSv5Family", 2, json!([])),
        vm("Standard_D4s_v5", "standardDSv5Family", 4, json!([])),
        vm(
            RESTRICTED_SIZE,
            "standardNCSv3Family",
            6,
            json!([{"type": "Location", "values": [REGION], "restrictionInfo": {"locations": [REGION]},
                "reasonCode": "NotAvailableForSubscription"}]),
        ),
        vm(
            ZONE_RESTRICTED_SIZE,
            "standardESv5Family",
            2,
            json!([{"type": "Zone", "values": [REGION], "restrictionInfo": {"locations": [REGION], "zones": ["2"]},
                "reasonCode": "NotAvailableForSubscription"}]),
        ),
    ]
}

/// A gallery image version as GalleryImageVersions – Get answers it (GalleryRP 2024-03-03 example
/// `GalleryImageVersion_Get.json`).
fn gallery_version(version: &str) -> Value {
    json!({
        "id": format!("{}/images/{GALLERY_IMAGE}/versions/{version}", resource_id(RESOURCE_GROUP, "Microsoft.Compute", "galleries", GALLERY)),
        "name": version,
        "location": REGION,
        "properties": {
            "publishingProfile": {"targetRegions": [{"name": "East US", "regionalReplicaCount": 1, "storageAccountType": "Standard_LRS"}],
                "replicaCount": 1, "publishedDate": "2026-01-01T00:00:00Z", "storageAccountType": "Standard_LRS"},
            "storageProfile": {"osDiskImage": {"sizeInGB": 30, "hostCaching": "ReadOnly"}},
            "provisioningState": "Succeeded"
        }
    })
}

/// A managed disk as Disks – Get answers it (disk.json `Disk`).
fn disk_json(d: &Resource) -> Value {
    json!({
        "id": resource_id(RESOURCE_GROUP, "Microsoft.Compute", "disks", &d.name),
        "name": d.name,
        "type": "Microsoft.Compute/disks",
        "location": REGION,
        "tags": d.tags,
        "managedBy": d.body.get("managedBy").cloned().unwrap_or(Value::Null),
        "sku": {"name": "Premium_LRS", "tier": "Premium"},
        "properties": {
            "osType": "Linux",
            "creationData": {"createOption": "FromImage"},
            "diskSizeGB": 64,
            "diskState": "Attached",
            "provisioningState": "Succeeded",
            "timeCreated": "2026-01-01T08:00:00.0000000+00:00"
        }
    })
}

fn net_json(kind: &str, r: &Resource) -> Value {
    let mut v = r.body.clone();
    v["id"] = json!(resource_id(RESOURCE_GROUP, "Microsoft.Network", kind, &r.name));
    v["name"] = json!(r.name);
    v["type"] = json!(format!("Microsoft.Network/{kind}"));
    v["etag"] = json!("W/\"00000000-0000-0000-0000-000000000000\"");
    v["properties"]["provisioningState"] = json!("Succeeded");
    v
}

/// The last segment of a resource id.
fn last(id: &str) -> String {
    id.rsplit('/').next().unwrap_or_default().to_string()
}

fn tick(st: &mut Inner, vm: &str) {
    if let Some(n) = st.creating.get_mut(vm) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            st.creating.remove(vm);
        }
    }
}

fn route(st: &mut Inner, base: &str, req: &Incoming) -> Reply {
    let r = req.route.as_str();
    let m = req.method.as_str();
    if r.contains("/dnsZones") {
        return dns(st, base, req);
    }
    if r.ends_with("/operations/{op}") {
        let id = req.var("op").to_string();
        let Some((left, fail)) = st.ops.get_mut(&id) else { return err(404, "NotFound", "operation not found") };
        *left = left.saturating_sub(1);
        let (left, fail) = (*left, fail.clone());
        let status = match (&fail, left) {
            (_, n) if n > 0 => "InProgress",
            (Some(_), _) => "Failed",
            (None, _) => "Succeeded",
        };
        let mut body = json!({"id": format!("{}", req.path), "name": id, "status": status,
            "startTime": "2026-01-01T08:00:00.0000000+00:00"});
        if let Some((code, message)) = fail.filter(|_| left == 0) {
            body["error"] = json!({"code": code, "message": message});
        }
        let mut reply = Reply::json(200, &body);
        if status == "InProgress"
            && let Some(s) = st.retry_after
        {
            reply = reply.header("Retry-After", s.to_string());
        }
        // A VM's create operation: its poll moves the VM along as a read of it does.
        if let Some(vm) = st.op_vm.get(&id).cloned() {
            tick(st, &vm);
        }
        return reply;
    }
    if r.ends_with("/operationResults/{op}") {
        // A `Location` URL: 202 while the operation runs, then 200 (async-api-reference.md).
        let id = req.var("op").to_string();
        let Some((left, _)) = st.ops.get_mut(&id) else { return err(404, "NotFound", "operation not found") };
        *left = left.saturating_sub(1);
        return if *left > 0 { Reply::empty(202) } else { Reply::empty(200) };
    }
    match (m, r.rsplit_once("/providers/").map_or(r, |(_, t)| t)) {
        ("GET", "Microsoft.Compute/disks/{disk}") => match st.disks.get(req.var("disk")) {
            Some(d) => Reply::json(200, &disk_json(d)),
            None => not_found("Microsoft.Compute/disks", req.var("disk"), req.var("rg")),
        },
        ("PATCH", "Microsoft.Compute/disks/{disk}") => {
            let name = req.var("disk").to_string();
            let Some(b) = req.json() else {
                return err(400, "InvalidRequestContent", "The request content is not JSON.");
            };
            if let Err(e) = keys_of(&b, "DiskUpdate", "$") {
                return err(400, "InvalidRequestContent", &e);
            }
            let tags = match tags_of(&b) {
                Ok(t) => t,
                Err(e) => return err(400, "InvalidTag", &e),
            };
            let Some(d) = st.disks.get_mut(&name) else {
                return not_found("Microsoft.Compute/disks", &name, req.var("rg"));
            };
            // ARM's PATCH replaces the tags with the map sent (resource-api-reference.md).
            if b.get("tags").is_some() {
                d.tags = tags;
            }
            let out = disk_json(d);
            st.disk_patches += 1;
            // 202 with a Location to poll (async-api-reference.md "Updating using PATCH").
            let url = op_url(st, base, "Microsoft.Compute", None, 1).replace("/operations/", "/operationResults/");
            let mut reply = Reply::json(202, &out).header("Location", url);
            if let Some(s) = st.retry_after {
                reply = reply.header("Retry-After", s.to_string());
            }
            reply
        }
        ("GET", "Microsoft.Compute/virtualMachines") => {
            let items: Vec<Value> = st.vms.values().map(|v| vm_json(st, v)).collect();
            let size = st.page_size;
            let (page, next) = fake_api::page(&items, req.param("$skiptoken"), size);
            st.listed += page.len();
            let mut body = json!({"value": page});
            if let Some(n) = next {
                body["nextLink"] = json!(format!(
                    "{base}/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.Compute/virtualMachines?api-version=2024-07-01&$skiptoken={n}"
                ));
            }
            Reply::json(200, &body)
        }
        ("GET", "Microsoft.Compute/virtualMachines/{vm}") => {
            let name = req.var("vm").to_string();
            tick(st, &name);
            match st.vms.get(&name) {
                Some(v) => Reply::json(200, &vm_json(st, v)),
                None => not_found("Microsoft.Compute/virtualMachines", &name, req.var("rg")),
            }
        }
        ("PUT", "Microsoft.Compute/virtualMachines/{vm}") => put_vm(st, base, req),
        ("DELETE", "Microsoft.Compute/virtualMachines/{vm}") => {
            let name = req.var("vm").to_string();
            let Some(vm) = st.vms.remove(&name) else { return Reply::empty(204) };
            st.creating.remove(&name);
            st.extensions.retain(|(v, _), _| *v != name);
            let disk = vm
                .body
                .pointer("/properties/storageProfile/osDisk/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if vm.body.pointer("/properties/storageProfile/osDisk/deleteOption").and_then(Value::as_str)
                == Some("Delete")
            {
                st.disks.remove(&disk);
            } else if let Some(d) = st.disks.get_mut(&disk) {
                d.body["managedBy"] = Value::Null;
            }
            for n in vm
                .body
                .pointer("/properties/networkProfile/networkInterfaces")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                let nic = last(n["id"].as_str().unwrap_or_default());
                let delete = n.pointer("/properties/deleteOption").and_then(Value::as_str) == Some("Delete");
                if delete {
                    if let Some(removed) = st.nics.remove(&nic) {
                        release_ip(st, &removed, true);
                    }
                } else if let Some(x) = st.nics.get_mut(&nic)
                    && let Some(p) = x.body["properties"].as_object_mut()
                {
                    p.remove("virtualMachine");
                }
            }
            let url = op_url(st, base, "Microsoft.Compute", None, 1);
            accepted(st, 202, &Value::Null, url)
        }
        ("PUT", "Microsoft.Compute/virtualMachines/{vm}/extensions/{ext}") => {
            let vm = req.var("vm").to_string();
            if !st.vms.contains_key(&vm) {
                return not_found("Microsoft.Compute/virtualMachines", &vm, req.var("rg"));
            }
            let Some(b) = req.json() else {
                return err(400, "InvalidRequestContent", "The request content is not JSON.");
            };
            if let Err(e) = keys_of(&b, "VirtualMachineExtension", "$")
                .and_then(|_| keys_of(&b["properties"], "VirtualMachineExtensionProperties", "properties"))
            {
                return err(400, "InvalidRequestContent", &e);
            }
            let tags = match tags_of(&b) {
                Ok(t) => t,
                Err(e) => return err(400, "InvalidTag", &e),
            };
            let key = (vm.clone(), req.var("ext").to_string());
            let existed = st.extensions.contains_key(&key);
            let mut body = b.clone();
            if let Some(p) = body["properties"].as_object_mut() {
                // Write-only.
                p.remove("protectedSettings");
            }
            st.extensions.insert(key.clone(), Resource { name: key.1.clone(), tags, body: b });
            body["name"] = json!(key.1);
            body["properties"]["provisioningState"] = json!("Creating");
            let url = op_url(st, base, "Microsoft.Compute", None, 1);
            accepted(st, if existed { 200 } else { 201 }, &body, url)
        }
        ("GET", "Microsoft.Compute/virtualMachines/{vm}/extensions/{ext}") => {
            match st.extensions.get(&(req.var("vm").to_string(), req.var("ext").to_string())) {
                Some(e) => {
                    let mut b = e.body.clone();
                    if let Some(p) = b["properties"].as_object_mut() {
                        p.remove("protectedSettings");
                        p.insert("provisioningState".into(), json!("Succeeded"));
                    }
                    b["name"] = json!(e.name);
                    Reply::json(200, &b)
                }
                None => not_found("Microsoft.Compute/virtualMachines/extensions", req.var("ext"), req.var("rg")),
            }
        }
        ("GET", "Microsoft.Network/networkInterfaces/{nic}") => match st.nics.get(req.var("nic")) {
            Some(n) => Reply::json(200, &net_json("networkInterfaces", n)),
            None => not_found("Microsoft.Network/networkInterfaces", req.var("nic"), req.var("rg")),
        },
        ("PUT", "Microsoft.Network/networkInterfaces/{nic}") => put_nic(st, base, req),
        ("DELETE", "Microsoft.Network/networkInterfaces/{nic}") => {
            let name = req.var("nic").to_string();
            let Some(n) = st.nics.get(&name) else { return Reply::empty(204) };
            if let Some(vm) = n.body.pointer("/properties/virtualMachine/id").and_then(Value::as_str) {
                return err(
                    400,
                    "NicInUse",
                    &format!(
                        "Network Interface {name} is used by existing resource {vm}. In order to delete the network interface, it must be dissociated from the resource."
                    ),
                );
            }
            let removed = st.nics.remove(&name).expect("present");
            release_ip(st, &removed, false);
            let url = op_url(st, base, "Microsoft.Network", None, 1);
            accepted(st, 202, &Value::Null, url)
        }
        ("GET", "Microsoft.Network/publicIPAddresses/{ip}") => match st.ips.get(req.var("ip")) {
            Some(n) => Reply::json(200, &net_json("publicIPAddresses", n)),
            None => not_found("Microsoft.Network/publicIPAddresses", req.var("ip"), req.var("rg")),
        },
        ("PUT", "Microsoft.Network/publicIPAddresses/{ip}") => put_ip(st, base, req),
        ("DELETE", "Microsoft.Network/publicIPAddresses/{ip}") => {
            let name = req.var("ip").to_string();
            let Some(ip) = st.ips.get(&name) else { return Reply::empty(204) };
            if let Some(cfg) = ip.body.pointer("/properties/ipConfiguration/id").and_then(Value::as_str) {
                return err(
                    400,
                    "PublicIPAddressInUse",
                    &format!(
                        "Public IP address {name} can not be deleted since it is still allocated to resource {cfg}."
                    ),
                );
            }
            st.ips.remove(&name);
            let url = op_url(st, base, "Microsoft.Network", None, 1);
            accepted(st, 202, &Value::Null, url)
        }
        ("GET", "Microsoft.Network/networkSecurityGroups/{nsg}") if req.var("nsg") == NSG => Reply::json(
            200,
            &json!({"id": nsg_id(), "name": NSG, "type": "Microsoft.Network/networkSecurityGroups", "location": REGION,
                "properties": {"provisioningState": "Succeeded", "securityRules": [], "defaultSecurityRules": []}}),
        ),
        ("GET", "Microsoft.Network/networkSecurityGroups/{nsg}") => {
            not_found("Microsoft.Network/networkSecurityGroups", req.var("nsg"), req.var("rg"))
        }
        ("GET", "Microsoft.Network/virtualNetworks/{vnet}/subnets/{subnet}")
            if req.var("vnet") == VNET && req.var("subnet") == SUBNET =>
        {
            Reply::json(
                200,
                &json!({"id": subnet_id(), "name": SUBNET, "type": "Microsoft.Network/virtualNetworks/subnets",
                    "properties": {"addressPrefix": "10.0.0.0/24", "provisioningState": "Succeeded"}}),
            )
        }
        ("GET", "Microsoft.Network/virtualNetworks/{vnet}/subnets/{subnet}") => {
            not_found("Microsoft.Network/virtualNetworks/subnets", req.var("subnet"), req.var("rg"))
        }
        ("GET", "Microsoft.Compute/locations/{loc}/usages") => {
            let used = st.vms.len() as u64;
            let quota = st.quota as u64;
            Reply::json(
                200,
                &json!({"value": [
                    {"unit": "Count", "currentValue": used * 2, "limit": quota * 2, "name": {"value": "cores", "localizedValue": "Total Regional vCPUs"}},
                    {"unit": "Count", "currentValue": used, "limit": quota, "name": {"value": "virtualMachines", "localizedValue": "Virtual Machines"}},
                    {"unit": "Count", "currentValue": used * 2, "limit": quota * 2, "name": {"value": "standardDSv5Family", "localizedValue": "Standard DSv5 Family vCPUs"}}
                ]}),
            )
        }
        ("GET", "Microsoft.Compute/skus") => {
            // Only the location filter is supported (skus.json: "Only **location** filter is supported").
            let Some(loc) =
                req.param("$filter").and_then(|f| f.strip_prefix("location eq '")).and_then(|f| f.strip_suffix('\''))
            else {
                return err(400, "InvalidFilter", "The $filter must be of the form location eq '<location>'.");
            };
            let items: Vec<Value> = if loc == REGION { skus() } else { Vec::new() };
            let (page, next) = fake_api::page(&items, req.param("$skiptoken"), 3);
            let mut body = json!({"value": page});
            if let Some(n) = next {
                body["nextLink"] = json!(format!(
                    "{base}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/skus?api-version=2021-07-01&$filter=location%20eq%20'{REGION}'&$skiptoken={n}"
                ));
            }
            Reply::json(200, &body)
        }
        ("GET", "Microsoft.Compute/images/{image}") if req.var("image") == MANAGED_IMAGE => Reply::json(
            200,
            &json!({"id": resource_id(RESOURCE_GROUP, "Microsoft.Compute", "images", MANAGED_IMAGE), "name": MANAGED_IMAGE,
                "type": "Microsoft.Compute/images", "location": REGION,
                "properties": {"storageProfile": {"osDisk": {"osType": "Linux", "osState": "Generalized"}},
                    "provisioningState": "Succeeded", "hyperVGeneration": "V2"}}),
        ),
        ("GET", "Microsoft.Compute/images/{image}") => {
            not_found("Microsoft.Compute/images", req.var("image"), req.var("rg"))
        }
        ("GET", "Microsoft.Compute/galleries/{gallery}/images/{image}/versions")
            if req.var("gallery") == GALLERY && req.var("image") == GALLERY_IMAGE =>
        {
            Reply::json(200, &json!({"value": [gallery_version(GALLERY_VERSION)]}))
        }
        ("GET", "Microsoft.Compute/galleries/{gallery}/images/{image}/versions") => {
            not_found("Microsoft.Compute/galleries/images", req.var("image"), req.var("rg"))
        }
        ("GET", "Microsoft.Compute/galleries/{gallery}/images/{image}/versions/{version}")
            if req.var("gallery") == GALLERY
                && req.var("image") == GALLERY_IMAGE
                && req.var("version") == GALLERY_VERSION =>
        {
            Reply::json(200, &gallery_version(GALLERY_VERSION))
        }
        ("GET", "Microsoft.Compute/galleries/{gallery}/images/{image}/versions/{version}") => {
            not_found("Microsoft.Compute/galleries/images/versions", req.var("version"), req.var("rg"))
        }
        (
            "GET",
            "Microsoft.Compute/locations/{loc}/publishers/{publisher}/artifacttypes/vmimage/offers/{offer}/skus/{sku}/versions",
        ) => {
            if req.var("publisher").eq_ignore_ascii_case("canonical")
                && req.var("offer") == "ubuntu-24_04-lts"
                && req.var("sku") == "server"
            {
                Reply::json(
                    200,
                    &json!([{"location": REGION, "name": "24.04.202501010", "id": "/Subscriptions/x/Providers/Microsoft.Compute/Locations/eastus/Publishers/canonical/ArtifactTypes/VMImage/Offers/ubuntu-24_04-lts/Skus/server/Versions/24.04.202501010"}]),
                )
            } else {
                err(404, "NotFound", "Artifact: VMImage was not found.")
            }
        }
        _ => err(404, "InvalidResourceType", &format!("No route for {m} {r}")),
    }
}

/// Detaches (or deletes, when the NIC's configuration says `deleteOption: Delete` and `with_vm`) the
/// public IPs of a removed NIC.
fn release_ip(st: &mut Inner, nic: &Resource, with_vm: bool) {
    for cfg in nic.body.pointer("/properties/ipConfigurations").and_then(Value::as_array).cloned().unwrap_or_default() {
        let Some(id) = cfg.pointer("/properties/publicIPAddress/id").and_then(Value::as_str) else { continue };
        let ip = last(id);
        let delete = cfg.pointer("/properties/publicIPAddress/properties/deleteOption").and_then(Value::as_str)
            == Some("Delete");
        if with_vm && delete {
            st.ips.remove(&ip);
        } else if let Some(x) = st.ips.get_mut(&ip)
            && let Some(p) = x.body["properties"].as_object_mut()
        {
            p.remove("ipConfiguration");
        }
    }
}

fn put_ip(st: &mut Inner, base: &str, req: &Incoming) -> Reply {
    let name = req.var("ip").to_string();
    let Some(b) = req.json() else { return err(400, "InvalidRequestContent", "The request content is not JSON.") };
    if let Err(e) = keys_of(&b, "PublicIPAddress", "$")
        .and_then(|_| keys_of(&b["properties"], "PublicIPAddressPropertiesFormat", "properties"))
        .and_then(|_| keys_of(&b["sku"], "PublicIPAddressSku", "sku"))
    {
        return err(400, "InvalidRequestContent", &e);
    }
    if b["sku"]["name"] == "Standard" && b["properties"]["publicIPAllocationMethod"] != "Static" {
        return err(
            400,
            "StandardSkuPublicIPAddressesMustBeStatic",
            "Standard sku publicIp must have AllocationMethod set to Static.",
        );
    }
    let tags = match tags_of(&b) {
        Ok(t) => t,
        Err(e) => return err(400, "InvalidTag", &e),
    };
    let existed = st.ips.get(&name).cloned();
    st.next += 1;
    let mut body = b.clone();
    let address = existed
        .as_ref()
        .and_then(|e| e.body.pointer("/properties/ipAddress").cloned())
        .unwrap_or_else(|| json!(format!("20.42.{}.{}", st.next / 250 % 250, st.next % 250 + 1)));
    body["properties"]["ipAddress"] = address;
    if let Some(cfg) = existed.as_ref().and_then(|e| e.body.pointer("/properties/ipConfiguration").cloned()) {
        body["properties"]["ipConfiguration"] = cfg;
    }
    let r = Resource { name: name.clone(), tags, body };
    let out = net_json("publicIPAddresses", &r);
    st.ips.insert(name, r);
    let url = op_url(st, base, "Microsoft.Network", None, 1);
    accepted(st, if existed.is_some() { 200 } else { 201 }, &out, url)
}

fn put_nic(st: &mut Inner, base: &str, req: &Incoming) -> Reply {
    let name = req.var("nic").to_string();
    let Some(b) = req.json() else { return err(400, "InvalidRequestContent", "The request content is not JSON.") };
    let mut check = keys_of(&b, "NetworkInterface", "$")
        .and_then(|_| keys_of(&b["properties"], "NetworkInterfacePropertiesFormat", "properties"));
    for c in b["properties"]["ipConfigurations"].as_array().into_iter().flatten() {
        check =
            check.and_then(|_| keys_of(c, "NetworkInterfaceIPConfiguration", "ipConfigurations[]")).and_then(|_| {
                keys_of(
                    &c["properties"],
                    "NetworkInterfaceIPConfigurationPropertiesFormat",
                    "ipConfigurations[].properties",
                )
            });
    }
    if let Err(e) = check {
        return err(400, "InvalidRequestContent", &e);
    }
    let cfgs = b["properties"]["ipConfigurations"].as_array().cloned().unwrap_or_default();
    if cfgs.is_empty() {
        return err(
            400,
            "NetworkInterfaceMustHaveAtLeastOneIpConfiguration",
            "A network interface needs an IP configuration.",
        );
    }
    for c in &cfgs {
        if c.pointer("/properties/subnet/id").and_then(Value::as_str).map(str::to_ascii_lowercase)
            != Some(subnet_id().to_ascii_lowercase())
        {
            return err(400, "InvalidResourceReference", "Resource referenced by the subnet id was not found.");
        }
        if let Some(ip) = c.pointer("/properties/publicIPAddress/id").and_then(Value::as_str)
            && !st.ips.contains_key(&last(ip))
        {
            return err(
                400,
                "InvalidResourceReference",
                &format!("Resource {ip} referenced by resource {name} was not found."),
            );
        }
    }
    if let Some(nsg) = b.pointer("/properties/networkSecurityGroup/id").and_then(Value::as_str)
        && !nsg.eq_ignore_ascii_case(&nsg_id())
    {
        return err(
            400,
            "InvalidResourceReference",
            &format!("Resource {nsg} referenced by resource {name} was not found."),
        );
    }
    let tags = match tags_of(&b) {
        Ok(t) => t,
        Err(e) => return err(400, "InvalidTag", &e),
    };
    let existed = st.nics.get(&name).cloned();
    st.next += 1;
    let mut body = b.clone();
    let private = existed
        .as_ref()
        .and_then(|e| e.body.pointer("/properties/ipConfigurations/0/properties/privateIPAddress").cloned())
        .unwrap_or_else(|| json!(format!("10.0.0.{}", st.next % 250 + 4)));
    body["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"] = private;
    if let Some(vm) = existed.as_ref().and_then(|e| e.body.pointer("/properties/virtualMachine").cloned()) {
        body["properties"]["virtualMachine"] = vm;
    }
    let nic_id = resource_id(RESOURCE_GROUP, "Microsoft.Network", "networkInterfaces", &name);
    for c in &cfgs {
        if let Some(ip) = c.pointer("/properties/publicIPAddress/id").and_then(Value::as_str)
            && let Some(x) = st.ips.get_mut(&last(ip))
        {
            x.body["properties"]["ipConfiguration"] = json!({"id": format!("{nic_id}/ipConfigurations/ipconfig1")});
        }
    }
    let r = Resource { name: name.clone(), tags, body };
    let out = net_json("networkInterfaces", &r);
    st.nics.insert(name, r);
    let url = op_url(st, base, "Microsoft.Network", None, 1);
    accepted(st, if existed.is_some() { 200 } else { 201 }, &out, url)
}

fn put_vm(st: &mut Inner, base: &str, req: &Incoming) -> Reply {
    let name = req.var("vm").to_string();
    let Some(b) = req.json() else { return err(400, "InvalidRequestContent", "The request content is not JSON.") };
    if let Err(e) = check_vm_body(&b) {
        return err(400, "InvalidRequestContent", &e);
    }
    let tags = match tags_of(&b) {
        Ok(t) => t,
        Err(e) => return err(400, "InvalidTag", &e),
    };
    if let Some(d) = b.pointer("/properties/osProfile/customData").and_then(Value::as_str) {
        use base64::Engine as _;
        if d.len() > 87_380 || base64::engine::general_purpose::STANDARD.decode(d).is_err() {
            return err(
                400,
                "InvalidParameter",
                "Custom data in OSProfile must be in Base64 encoding and with a maximum length of 87380 characters.",
            );
        }
    }
    let windows = b.pointer("/properties/osProfile/windowsConfiguration").is_some();
    if windows && b.pointer("/properties/osProfile/computerName").and_then(Value::as_str).is_some_and(|c| c.len() > 15)
    {
        return err(
            400,
            "InvalidParameter",
            "Windows computer name cannot be more than 15 characters long, be entirely numeric, or contain the following characters: ` ~ ! @ # $ % ^ & * ( ) = + _ [ ] { } \\ | ; : . ' \" , < > / ?.",
        );
    }
    let nics: Vec<String> = b
        .pointer("/properties/networkProfile/networkInterfaces")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|n| n["id"].as_str().map(last))
        .collect();
    if nics.is_empty() {
        return err(400, "InvalidParameter", "Required parameter 'networkProfile' is missing (null).");
    }
    for n in &nics {
        match st.nics.get(n) {
            None => {
                return err(
                    400,
                    "InvalidResourceReference",
                    &format!("Resource {n} referenced by resource {name} was not found."),
                );
            }
            Some(x)
                if x.body
                    .pointer("/properties/virtualMachine/id")
                    .and_then(Value::as_str)
                    .is_some_and(|v| last(v) != name) =>
            {
                return err(400, "NicInUse", &format!("Network interface {n} is in use by another VM."));
            }
            Some(_) => {}
        }
    }
    if let Some(existing) = st.vms.get(&name).cloned() {
        // An update by name: same resource; nothing new is made.
        let out = vm_json(st, &existing);
        return Reply::json(200, &out);
    }
    if st.vms.len() >= st.quota {
        return quota_answer();
    }
    let disk = b
        .pointer("/properties/storageProfile/osDisk/name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{name}_OsDisk_1"));
    let fail = st.fail_next_vm_op.take();
    let url = op_url(st, base, "Microsoft.Compute", fail.clone(), OPERATION_POLLS);
    let op = last(url.split('?').next().unwrap_or_default());
    st.op_vm.insert(op, name.clone());
    let mut body = b.clone();
    if fail.is_some() {
        body["properties"]["provisioningState"] = json!("Failed");
    }
    let vm_id = resource_id(RESOURCE_GROUP, "Microsoft.Compute", "virtualMachines", &name);
    for n in &nics {
        if let Some(x) = st.nics.get_mut(n) {
            x.body["properties"]["virtualMachine"] = json!({"id": vm_id});
        }
    }
    st.disks.insert(disk.clone(), Resource { name: disk, tags: BTreeMap::new(), body: json!({"managedBy": vm_id}) });
    let r = Resource { name: name.clone(), tags, body };
    st.vms.insert(name.clone(), r.clone());
    st.creating.insert(name.clone(), OPERATION_POLLS);
    let out = vm_json(st, &r);
    accepted(st, 201, &out, url)
}

fn dns(st: &mut Inner, base: &str, req: &Incoming) -> Reply {
    let _ = base;
    if req.var("zone") != ZONE || req.var("rg") != DNS_RESOURCE_GROUP {
        return err(
            404,
            "ResourceNotFound",
            &format!(
                "The Resource 'Microsoft.Network/dnszones/{}' under resource group '{}' was not found.",
                req.var("zone"),
                req.var("rg")
            ),
        );
    }
    let kind = req.var("type").to_string();
    let name = req.var("name").to_string();
    let set_json = |kind: &str, name: &str, s: &RecordSet| {
        let mut props = json!({"TTL": s.ttl, "fqdn": if name == "@" { format!("{ZONE}.") } else { format!("{name}.{ZONE}.") }, "provisioningState": "Succeeded"});
        match kind {
            "A" => props["ARecords"] = json!(s.values.iter().map(|v| json!({"ipv4Address": v})).collect::<Vec<_>>()),
            "TXT" => props["TXTRecords"] = json!(s.values.iter().map(|v| json!({"value": [v]})).collect::<Vec<_>>()),
            _ => {}
        }
        json!({"id": format!("{}/{kind}/{name}", resource_id(DNS_RESOURCE_GROUP, "Microsoft.Network", "dnszones", ZONE)),
            "name": name, "type": format!("Microsoft.Network/dnszones/{kind}"), "etag": "00000000-0000-0000-0000-000000000000", "properties": props})
    };
    match (req.method.as_str(), req.route.ends_with("{name}"), req.route.ends_with("{type}")) {
        ("GET", false, false) => Reply::json(
            200,
            &json!({"id": resource_id(DNS_RESOURCE_GROUP, "Microsoft.Network", "dnszones", ZONE), "name": ZONE, "type": "Microsoft.Network/dnszones",
                "location": "global", "properties": {"maxNumberOfRecordSets": 10000, "numberOfRecordSets": st.records.len(), "nameServers": ["ns1-01.azure-dns.com."]}}),
        ),
        ("GET", false, true) => {
            let items: Vec<Value> =
                st.records.iter().filter(|((k, _), _)| *k == kind).map(|((k, n), s)| set_json(k, n, s)).collect();
            let top = req.param("$top").and_then(|t| t.parse().ok()).unwrap_or(100usize);
            let (page, next) = fake_api::page(&items, req.param("$skipToken"), top);
            let mut body = json!({"value": page});
            if let Some(n) = next {
                body["nextLink"] = json!(format!(
                    "{base}/subscriptions/{SUBSCRIPTION}/resourceGroups/{DNS_RESOURCE_GROUP}/providers/Microsoft.Network/dnsZones/{ZONE}/{kind}?api-version=2018-05-01&$top={top}&$skipToken={n}"
                ));
            }
            Reply::json(200, &body)
        }
        ("GET", true, _) => match st.records.get(&(kind.clone(), name.clone())) {
            Some(s) => Reply::json(200, &set_json(&kind, &name, s)),
            None => err(
                404,
                "NotFound",
                &format!(
                    "The resource record '{name}' does not exist in resource group '{DNS_RESOURCE_GROUP}' of subscription '{SUBSCRIPTION}'."
                ),
            ),
        },
        ("PUT", true, _) => {
            let Some(b) = req.json() else {
                return err(400, "InvalidRequestContent", "The request content is not JSON.");
            };
            if let Err(e) = keys_of(&b, "RecordSet", "$")
                .and_then(|_| keys_of(&b["properties"], "RecordSetProperties", "properties"))
            {
                return err(400, "InvalidRequestContent", &e);
            }
            let ttl = b["properties"]["TTL"].as_u64().unwrap_or(3600);
            let values: Vec<String> = match kind.as_str() {
                "A" => {
                    let mut out = Vec::new();
                    for r in b["properties"]["ARecords"].as_array().into_iter().flatten() {
                        if let Err(e) = keys_of(r, "ARecord", "ARecords[]") {
                            return err(400, "InvalidRequestContent", &e);
                        }
                        match r["ipv4Address"].as_str().and_then(|a| a.parse::<Ipv4Addr>().ok()) {
                            Some(a) => out.push(a.to_string()),
                            None => return err(400, "BadRequest", "The ipv4Address is not a valid IPv4 address."),
                        }
                    }
                    out
                }
                "TXT" => {
                    let mut out = Vec::new();
                    for r in b["properties"]["TXTRecords"].as_array().into_iter().flatten() {
                        if let Err(e) = keys_of(r, "TxtRecord", "TXTRecords[]") {
                            return err(400, "InvalidRequestContent", &e);
                        }
                        out.push(
                            r["value"].as_array().into_iter().flatten().filter_map(Value::as_str).collect::<String>(),
                        );
                    }
                    out
                }
                other => {
                    return err(400, "BadRequest", &format!("record type {other} is not served by this test server"));
                }
            };
            if values.is_empty() {
                return err(400, "BadRequest", "The record set must have at least one record.");
            }
            let exists = st.records.contains_key(&(kind.clone(), name.clone()));
            let set = RecordSet { ttl, values };
            let out = set_json(&kind, &name, &set);
            st.records.insert((kind, name), set);
            Reply::json(if exists { 200 } else { 201 }, &out)
        }
        ("DELETE", true, _) => match st.records.remove(&(kind, name)) {
            Some(_) => Reply::empty(200),
            None => Reply::empty(204),
        },
        _ => err(405, "MethodNotAllowed", "not served"),
    }
}

/// The server as the provider conformance suite drives it.
#[derive(Debug)]
pub struct AzureHarness {
    server: AzureTestServer,
    stall: Duration,
    page_size: usize,
}

impl AzureHarness {
    /// A harness over `server`, which lists `page_size` VMs a page (set here); `stall` is longer than
    /// the client's timeout.
    pub fn new(server: AzureTestServer, page_size: usize, stall: Duration) -> Self {
        server.set_page_size(page_size);
        AzureHarness { server, stall, page_size }
    }

    fn route(op: Op) -> String {
        match op {
            Op::Create => vm_route("PUT"),
            Op::Get => vm_route("GET"),
            Op::Delete => vm_route("DELETE"),
            Op::List => list_route(),
        }
    }
}

#[async_trait]
impl Harness for AzureHarness {
    fn inject(&self, op: Op, fault: conformance::Fault, skip: usize, times: usize) {
        use conformance::Fault as F;
        let answer = match fault {
            F::Unauthorized => err(401, "InvalidAuthenticationToken", "The access token is invalid."),
            F::Forbidden => err(
                403,
                "AuthorizationFailed",
                "The client 'a1b2c3d4-0000-4000-8000-00000000c11e' with object id '0000' does not have authorization to perform action 'Microsoft.Compute/virtualMachines/write' over scope '/subscriptions/00000000-0000-0000-0000-0000000000a2/resourceGroups/kasm-rg' or the scope is invalid.",
            ),
            F::NotFound => not_found("Microsoft.Compute/virtualMachines", "x", RESOURCE_GROUP),
            F::Conflict => err(409, "Conflict", "The request failed due to conflict with a concurrent request."),
            F::RateLimited { retry_after } => throttled(retry_after),
            F::ServerError => err(500, "InternalServerError", "Encountered internal server error."),
            F::Timeout => {
                let late = Fault::Stall { hold: self.stall, then: err(500, "InternalServerError", "too late") };
                return self.server.api.inject(&Self::route(op), late, skip, times);
            }
            F::OutOfCapacity => {
                assert_eq!(op, Op::Create, "out of capacity is a create's answer");
                err(
                    409,
                    "SkuNotAvailable",
                    "The requested VM size for resource 'Following SKUs have failed for Capacity Restrictions: Standard_D2s_v5' is currently not available in location 'eastus'. Please try another size or deploy to a different location or different zone.",
                )
            }
        };
        self.server.api.inject(&Self::route(op), Fault::Answer(answer), skip, times);
    }

    fn lose_next_answer(&self, op: Op) {
        self.server.api.inject(&Self::route(op), Fault::DropAnswer, 0, 1);
    }

    fn clear_faults(&self) {
        self.server.api.clear_faults();
    }

    fn requests(&self, op: Op) -> usize {
        self.server.api.count(&Self::route(op))
    }

    fn retries(&self) -> RetryRules {
        // Every call is a GET, or a PUT/DELETE by name (idempotent): all are retried; throttling
        // says how long to wait (`Retry-After`).
        RetryRules { retried: &[Op::Create, Op::Get, Op::Delete, Op::List], retry_after_hint: true }
    }

    fn page_size(&self) -> Option<usize> {
        Some(self.page_size)
    }

    fn vms_in_list_answers(&self) -> usize {
        self.server.lock().listed
    }

    fn last_create_token(&self) -> Option<String> {
        // ARM has no idempotency token: the VM's name is the key.
        None
    }

    fn missing_id(&self) -> String {
        "kasm-no-such-vm".into()
    }

    async fn create_foreign_vm(&self) -> String {
        let n = self.server.lock().next;
        self.server.add_foreign_vm(&format!("ops-bastion-{n}"), &[("team", "ops")])
    }

    async fn remove_foreign_vm(&self, id: &str) {
        self.server.remove_vm(id);
    }

    async fn vm_exists(&self, id: &str) -> bool {
        self.server.vm(id).is_some()
    }

    async fn vms_made_for(&self, spec: &VmSpec) -> usize {
        let claim = spec.claim.as_str();
        self.server
            .vms()
            .iter()
            .filter(|v| v.tags.get(OwnerLabels::CLAIM).map(String::as_str) == Some(claim) || v.name == spec.name)
            .count()
    }
}

/// The server's DNS zone as the DNS conformance suite reads and plants records.
#[derive(Debug, Clone)]
pub struct Zone(pub AzureTestServer);

impl Zone {
    fn relative(name: &str) -> String {
        let n = name.trim_end_matches('.').to_ascii_lowercase();
        if n == ZONE {
            "@".into()
        } else {
            n.strip_suffix(&format!(".{ZONE}")).expect("a name in the zone").to_string()
        }
    }
}

#[async_trait]
impl ZoneAccess for Zone {
    async fn put_foreign_a(&self, name: &str, address: Ipv4Addr) {
        self.0.put_record_set("A", &Self::relative(name), &[&address.to_string()]);
    }

    async fn put_txt(&self, name: &str, text: &str) {
        self.0.put_record_set("TXT", &Self::relative(name), &[text]);
    }

    async fn a_record(&self, name: &str) -> Option<Ipv4Addr> {
        self.0.record_set("A", &Self::relative(name)).and_then(|s| s.values.first().and_then(|v| v.parse().ok()))
    }

    async fn txt(&self, name: &str) -> Option<Vec<String>> {
        self.0.record_set("TXT", &Self::relative(name)).map(|s| s.values)
    }
}
