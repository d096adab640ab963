//! `kasm-autoscale preflight` for Azure: every check an operator would otherwise discover from a failed
//! provisioning — the app's credentials, the subscription and resource group, the subnet and network
//! security group, the VM size in the region, the image, the regional quota and the startup script's
//! size — read-only, one result per check.
//!
//! The VM size is checked against what the subscription may use in the region: Resource Skus – List
//! (`GET /subscriptions/{s}/providers/Microsoft.Compute/skus?$filter=location eq '{region}'`,
//! api-version [`SKUS_API`]; `Skus/stable/2021-07-01/skus.json` of Azure/azure-rest-api-specs, Microsoft
//! Learn <https://learn.microsoft.com/en-us/rest/api/compute/resource-skus/list>). The size fails when it
//! is not listed as a `virtualMachines` SKU, or when a `restrictions[]` entry applies to it: a `Location`
//! restriction for the region, or a `Zone` restriction on a zone the config's override puts the VM in
//! (`reasonCode` `QuotaId` or `NotAvailableForSubscription` is quoted). Its `vCPUs` capability sizes the
//! quota check.
//!
//! An image by resource id is read with the api-version of its resource type: a managed image
//! (`.../Microsoft.Compute/images/{name}`, Images – Get, [`COMPUTE_API`]: `images` is in the pinned
//! 2024-07-01 template schema), a gallery image version (`.../galleries/{g}/images/{i}/versions/{v}`,
//! GalleryImageVersions – Get, [`GALLERY_API`]) or a gallery image definition, which the VM takes the
//! latest version of (`.../galleries/{g}/images/{i}`: its versions are listed, GalleryImageVersions –
//! ListByGalleryImage, and at least one must exist).
//!
//! A marketplace image is looked up with `GET .../locations/{region}/publishers/{publisher}/artifacttypes/
//! vmimage/offers/{offer}/skus/{sku}/versions` (UNSOURCED: VirtualMachineImages_List is in Compute's
//! swagger but not in the saved files; a wrong path fails this check loudly with ARM's answer).

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use super::client::{COMPUTE_API, GALLERY_API, NETWORK_API, SKUS_API};
use super::{AzureProvider, CUSTOM_DATA_MAX, Error};
use crate::config::ProviderConfigCommon;
use crate::config::providers::AzureImageReference;
use crate::providers::Check;
use crate::script;

/// The names of every check, in the order they are reported.
pub const CHECKS: [&str; 9] = [
    "credentials",
    "subscription",
    "resource_group",
    "subnet",
    "network_security_group",
    "vm_size",
    "image",
    "quota",
    "startup_script",
];

/// computeRPCommon.json `Usage`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Usage {
    current_value: i64,
    limit: i64,
    name: UsageName,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageName {
    value: String,
    #[serde(default)]
    localized_value: String,
}

/// skus.json (2021-07-01) `ResourceSku`: the fields we read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSku {
    #[serde(default)]
    resource_type: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    capabilities: Vec<SkuCapability>,
    #[serde(default)]
    restrictions: Vec<SkuRestriction>,
}

/// skus.json `ResourceSkuCapabilities`.
#[derive(Debug, Deserialize)]
struct SkuCapability {
    #[serde(default)]
    name: String,
    #[serde(default)]
    value: String,
}

/// skus.json `ResourceSkuRestrictions`: `type` `Location` or `Zone`, `values`, `restrictionInfo`
/// `{locations, zones}`, `reasonCode` `QuotaId` or `NotAvailableForSubscription`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SkuRestriction {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    values: Vec<String>,
    #[serde(default)]
    restriction_info: Option<RestrictionInfo>,
    #[serde(default)]
    reason_code: Option<String>,
}

/// skus.json `ResourceSkuRestrictionInfo`.
#[derive(Debug, Default, Deserialize)]
struct RestrictionInfo {
    #[serde(default)]
    locations: Vec<String>,
    #[serde(default)]
    zones: Vec<String>,
}

impl ResourceSku {
    /// The `vCPUs` capability.
    fn vcpus(&self) -> Option<i64> {
        self.capabilities.iter().find(|c| c.name == "vCPUs").and_then(|c| c.value.trim().parse().ok())
    }
}

/// The restrictions of `sku` that stop a VM in `region` (in `zones`, when the VM is zonal): a `Location`
/// restriction naming the region (or naming none: the list is already filtered to it), a `Zone`
/// restriction on one of `zones`. Each as text for the FAIL line.
fn blocking(sku: &ResourceSku, region: &str, zones: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for r in &sku.restrictions {
        let info = r.restriction_info.as_ref();
        let reason = r.reason_code.as_deref().unwrap_or("no reasonCode");
        match r.kind.as_str() {
            "Location" => {
                let places: Vec<&String> = info
                    .map(|i| i.locations.iter().collect())
                    .filter(|l: &Vec<&String>| !l.is_empty())
                    .unwrap_or_else(|| r.values.iter().collect());
                if places.is_empty() || places.iter().any(|l| l.eq_ignore_ascii_case(region)) {
                    out.push(format!("restricted in {region} ({reason})"));
                }
            }
            "Zone" => {
                let restricted: Vec<&String> = info.map(|i| i.zones.iter().collect()).unwrap_or_default();
                let hit: Vec<&str> = zones.iter().filter(|z| restricted.contains(z)).map(String::as_str).collect();
                if !hit.is_empty() {
                    out.push(format!("restricted in zone {} of {region} ({reason})", hit.join(", ")));
                }
            }
            other => out.push(format!("restriction of type {other} ({reason})")),
        }
    }
    out
}

/// The kinds of image resource id [`AzureImageReference::Id`] may hold.
#[derive(Debug, PartialEq, Eq)]
enum ImageId<'a> {
    /// `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Compute/images/{name}`.
    Managed(Vec<&'a str>),
    /// `.../Microsoft.Compute/galleries/{g}/images/{i}` (the latest version is used).
    GalleryImage(Vec<&'a str>),
    /// `.../Microsoft.Compute/galleries/{g}/images/{i}/versions/{v}`.
    GalleryVersion(Vec<&'a str>),
}

/// The kind and path segments of an image resource id; `None` when it is neither.
fn image_id(id: &str) -> Option<ImageId<'_>> {
    let segs: Vec<&str> = id.trim().trim_start_matches('/').split('/').collect();
    let is = |i: usize, s: &str| segs.get(i).is_some_and(|x| x.eq_ignore_ascii_case(s));
    let base = segs.iter().all(|s| !s.is_empty())
        && is(0, "subscriptions")
        && is(2, "resourceGroups")
        && is(4, "providers")
        && is(5, "Microsoft.Compute");
    if !base {
        return None;
    }
    let kind = match segs.len() {
        8 if is(6, "images") => 0,
        10 if is(6, "galleries") && is(8, "images") => 1,
        12 if is(6, "galleries") && is(8, "images") && is(10, "versions") => 2,
        _ => return None,
    };
    Some(match kind {
        0 => ImageId::Managed(segs),
        1 => ImageId::GalleryImage(segs),
        _ => ImageId::GalleryVersion(segs),
    })
}

impl AzureProvider {
    fn sub_path<'a>(&'a self, tail: &[&'a str]) -> Vec<&'a str> {
        let mut p = vec!["subscriptions", self.config.azure_subscription_id.trim()];
        p.extend_from_slice(tail);
        p
    }

    /// Runs every check of [`CHECKS`], read-only. Credentials the login refuses fail `credentials` and
    /// leave the API checks not checked.
    pub async fn preflight(&self) -> Vec<Check> {
        let mut out = Vec::with_capacity(CHECKS.len());
        match self.client.credential().token().await {
            Ok(_) => out.push(Check::pass(
                "credentials",
                format!(
                    "Microsoft Entra ID issued a token to app {} (client credentials)",
                    self.config.azure_client_id.trim()
                ),
            )),
            Err(e) => {
                out.push(Check::fail("credentials", e.into_provider().to_string()));
                out.extend(CHECKS[1..CHECKS.len() - 1].iter().map(|n| Check::fail(n, "not checked: no token")));
                out.push(self.check_script());
                return out;
            }
        }
        let c = &self.config;
        let region = c.azure_region.trim();
        // Subscription: its regional usages (also the quota check's numbers).
        let usages: Result<Vec<Usage>, Error> = self
            .client
            .list(
                self.client.url(
                    &self.sub_path(&["providers", "Microsoft.Compute", "locations", region, "usages"]),
                    COMPUTE_API,
                ),
                "read the regional usages",
            )
            .await;
        out.push(match &usages {
            Ok(_) => Check::pass(
                "subscription",
                format!("subscription {} readable (compute usages in {region})", c.azure_subscription_id.trim()),
            ),
            Err(e) => Check::fail("subscription", e.to_string()),
        });
        let vms = self
            .client
            .list::<Value>(
                self.client.url(
                    &self.sub_path(&[
                        "resourceGroups",
                        c.azure_resource_group.trim(),
                        "providers",
                        "Microsoft.Compute",
                        "virtualMachines",
                    ]),
                    COMPUTE_API,
                ),
                "list the resource group's VMs",
            )
            .await;
        out.push(match vms {
            Ok(v) => Check::pass(
                "resource_group",
                format!("resource group {} readable ({} VMs)", c.azure_resource_group.trim(), v.len()),
            ),
            Err(e) => Check::fail("resource_group", e.to_string()),
        });
        out.push(self.check_resource("subnet", "azure_subnet", Some(c.azure_subnet.as_str())).await);
        out.push(
            self.check_resource("network_security_group", "azure_network_sg", c.azure_network_sg.as_deref()).await,
        );
        let mut skus_url = self.client.url(&self.sub_path(&["providers", "Microsoft.Compute", "skus"]), SKUS_API);
        // `$filter=location eq '<region>'` written as Microsoft's SDKs send it (spaces as %20).
        let filter =
            format!("{}&$filter={}", skus_url.query().unwrap_or_default(), encode(&format!("location eq '{region}'")));
        skus_url.set_query(Some(&filter));
        let skus: Result<Vec<ResourceSku>, Error> =
            self.client.list(skus_url, "list the VM sizes of the subscription (Resource Skus)").await;
        let want = c.azure_vm_size.trim();
        let sku = skus.as_ref().ok().and_then(|s| {
            s.iter()
                .find(|k| k.resource_type.eq_ignore_ascii_case("virtualMachines") && k.name.eq_ignore_ascii_case(want))
        });
        let zones = override_zones(c);
        out.push(match (&skus, sku) {
            (Err(e), _) => Check::fail("vm_size", e.to_string()),
            (Ok(_), None) => Check::fail(
                "vm_size",
                format!("azure_vm_size: {want} is not a VM size of this subscription in {region} (Resource Skus)"),
            ),
            (Ok(_), Some(k)) => match blocking(k, region, &zones) {
                b if !b.is_empty() => Check::fail(
                    "vm_size",
                    format!("azure_vm_size: {} is {}; pick another size or region", k.name, b.join("; ")),
                ),
                _ => Check::pass(
                    "vm_size",
                    format!(
                        "{} offered to this subscription in {region} ({} vCPUs), no restriction applies",
                        k.name,
                        k.vcpus().map_or_else(|| "?".to_string(), |n| n.to_string())
                    ),
                ),
            },
        });
        out.push(self.check_image().await);
        out.push(match usages {
            Err(e) => Check::fail("quota", e.to_string()),
            Ok(u) => quota(&u, sku.and_then(ResourceSku::vcpus).unwrap_or(0)),
        });
        out.push(self.check_script());
        out
    }

    /// A network resource named by its id in the config exists (`GET` the id).
    async fn check_resource(&self, name: &'static str, field: &str, id: Option<&str>) -> Check {
        let Some(id) = id.map(str::trim).filter(|i| !i.is_empty()) else {
            return Check::pass(name, format!("{field} not set"));
        };
        let segs: Vec<&str> = id.trim_start_matches('/').split('/').collect();
        match self.client.get::<Value>(self.client.url(&segs, NETWORK_API), &format!("read {field}")).await {
            Ok(Some(_)) => Check::pass(name, format!("{field} {id} exists")),
            Ok(None) => Check::fail(name, format!("{field}: {id} does not exist")),
            Err(e) => Check::fail(name, e.to_string()),
        }
    }

    async fn check_image(&self) -> Check {
        let c = &self.config;
        match &c.azure_image_reference.0 {
            AzureImageReference::Id { id } => self.check_image_id(id).await,
            AzureImageReference::Marketplace { publisher, offer, sku, version } => {
                let path = self.sub_path(&[
                    "providers",
                    "Microsoft.Compute",
                    "locations",
                    c.azure_region.trim(),
                    "publishers",
                    publisher,
                    "artifacttypes",
                    "vmimage",
                    "offers",
                    offer,
                    "skus",
                    sku,
                    "versions",
                ]);
                let c = super::client::Call {
                    method: reqwest::Method::GET,
                    url: self.client.url(&path, COMPUTE_API),
                    body: None,
                    what: "list the image's versions",
                    secrets: Vec::new(),
                };
                match self.client.call(&c).await {
                    Ok(a) => {
                        let versions: Vec<Value> = serde_json::from_str(&a.body).unwrap_or_default();
                        let names: Vec<&str> = versions.iter().filter_map(|v| v["name"].as_str()).collect();
                        let found =
                            if version == "latest" { !names.is_empty() } else { names.contains(&version.as_str()) };
                        if found {
                            Check::pass(
                                "image",
                                format!("{publisher}:{offer}:{sku}:{version} available ({} versions)", names.len()),
                            )
                        } else {
                            Check::fail(
                                "image",
                                format!("azure_image_reference: {publisher}:{offer}:{sku} has no version {version}"),
                            )
                        }
                    }
                    Err(e) if e.status() == Some(404) => Check::fail(
                        "image",
                        format!(
                            "azure_image_reference: {publisher}:{offer}:{sku} does not exist in {}",
                            self.config.azure_region.trim()
                        ),
                    ),
                    Err(e) => Check::fail("image", e.to_string()),
                }
            }
        }
    }

    /// An image given by resource id exists (and is provisioned); a gallery image definition has a
    /// version to take.
    async fn check_image_id(&self, id: &str) -> Check {
        let missing = || Check::fail("image", format!("azure_image_reference.id: {id} does not exist"));
        let state = |v: &Value| v.pointer("/properties/provisioningState").and_then(Value::as_str).map(str::to_string);
        let read = |segs: &[&str], api: &'static str, what: &'static str| {
            let url = self.client.url(segs, api);
            async move { self.client.get::<Value>(url, what).await }
        };
        let found = match image_id(id) {
            None => {
                return Check::fail(
                    "image",
                    format!(
                        "azure_image_reference.id: {id} is neither a managed image (.../Microsoft.Compute/images/<name>) nor a gallery image (.../Microsoft.Compute/galleries/<gallery>/images/<image>[/versions/<version>])"
                    ),
                );
            }
            Some(ImageId::Managed(segs)) => read(&segs, COMPUTE_API, "read the managed image").await,
            Some(ImageId::GalleryVersion(segs)) => read(&segs, GALLERY_API, "read the gallery image version").await,
            Some(ImageId::GalleryImage(segs)) => {
                let mut path = segs.clone();
                path.push("versions");
                let url = self.client.url(&path, GALLERY_API);
                return match self.client.list::<Value>(url, "list the gallery image's versions").await {
                    Ok(v) if v.is_empty() => Check::fail(
                        "image",
                        format!("azure_image_reference.id: gallery image {id} has no version to create a VM from"),
                    ),
                    Ok(v) => Check::pass("image", format!("gallery image {id} exists ({} versions)", v.len())),
                    Err(e) if e.is_missing_resource() => missing(),
                    Err(e) => Check::fail("image", e.to_string()),
                };
            }
        };
        match found {
            Ok(None) => missing(),
            Ok(Some(v)) => match state(&v) {
                Some(s) if s != "Succeeded" => {
                    Check::fail("image", format!("azure_image_reference.id: {id} is {s}, not Succeeded"))
                }
                _ => Check::pass("image", format!("image {id} exists")),
            },
            Err(e) => Check::fail("image", e.to_string()),
        }
    }

    fn check_script(&self) -> Check {
        let template = &self.config.startup_script;
        if template.trim().is_empty() {
            return Check::pass("startup_script", "empty: the image itself must install and register the Kasm agent");
        }
        // Sample values: the real ones (tokens, certificates) can be longer; the margin says how much.
        let vars: script::Vars =
            script::PLACEHOLDERS.iter().map(|n| (n.to_string(), Some(format!("sample-{n}")))).collect();
        let rendered = match script::render(template, &vars) {
            Ok(r) => r,
            Err(e) => return Check::fail("startup_script", format!("does not render: {e}")),
        };
        match script::package(&self.config.script_rules(), self.config.os(), rendered) {
            Err(e) => Check::fail("startup_script", e.to_string()),
            Ok(s) => {
                let n = base64::engine::general_purpose::STANDARD.encode(s.as_bytes()).len();
                if n > CUSTOM_DATA_MAX {
                    Check::fail(
                        "startup_script",
                        format!("renders to {n} base64 characters; customData takes at most {CUSTOM_DATA_MAX}"),
                    )
                } else {
                    Check::pass(
                        "startup_script",
                        format!(
                            "renders to {n} base64 characters with sample values, {} below the customData limit",
                            CUSTOM_DATA_MAX - n
                        ),
                    )
                }
            }
        }
    }
}

/// `text` percent-encoded for a query value (every byte but `A-Z a-z 0-9 - . _ ~ '`).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~'".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The availability zones the config's override puts the VM in (a top-level `zones` array), else none
/// (a regional VM).
fn override_zones(c: &crate::config::providers::AzureConfig) -> Vec<String> {
    c.azure_config_override
        .as_ref()
        .and_then(|o| o.0.get("zones"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|z| z.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Headroom for one more VM of `cores` vCPUs in the regional quotas (`cores` = Total Regional vCPUs,
/// `virtualMachines`).
fn quota(usages: &[Usage], cores: i64) -> Check {
    let find = |n: &str| usages.iter().find(|u| u.name.value.eq_ignore_ascii_case(n));
    let mut notes = Vec::new();
    for (name, need) in [("cores", cores.max(1)), ("virtualMachines", 1)] {
        let Some(u) = find(name) else { continue };
        let left = u.limit - u.current_value;
        let label = if u.name.localized_value.is_empty() { name } else { u.name.localized_value.as_str() };
        if left < need {
            return Check::fail(
                "quota",
                format!(
                    "{label}: {} of {} used, {need} needed for one more VM; ask for a quota increase",
                    u.current_value, u.limit
                ),
            );
        }
        notes.push(format!("{label}: {left} of {} free", u.limit));
    }
    if notes.is_empty() {
        return Check::fail("quota", "the usages answer has neither `cores` nor `virtualMachines`");
    }
    Check::pass("quota", notes.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sku(restrictions: serde_json::Value) -> ResourceSku {
        serde_json::from_value(serde_json::json!({
            "resourceType": "virtualMachines", "name": "Standard_D2s_v5", "locations": ["eastus"],
            "capabilities": [{"name": "vCPUs", "value": "2"}], "restrictions": restrictions
        }))
        .unwrap()
    }

    #[test]
    fn restrictions_that_apply_and_those_that_do_not() {
        let none = sku(serde_json::json!([]));
        assert_eq!(none.vcpus(), Some(2));
        assert!(blocking(&none, "eastus", &[]).is_empty());
        let location = sku(serde_json::json!([{"type": "Location", "values": ["eastus"],
            "restrictionInfo": {"locations": ["eastus"]}, "reasonCode": "NotAvailableForSubscription"}]));
        assert_eq!(blocking(&location, "eastus", &[]), ["restricted in eastus (NotAvailableForSubscription)"]);
        assert!(blocking(&location, "westus", &[]).is_empty());
        let zone = sku(serde_json::json!([{"type": "Zone", "values": ["eastus"],
            "restrictionInfo": {"locations": ["eastus"], "zones": ["2"]}, "reasonCode": "QuotaId"}]));
        assert!(blocking(&zone, "eastus", &[]).is_empty(), "a regional VM is not held by a zone restriction");
        assert!(blocking(&zone, "eastus", &["1".into()]).is_empty());
        assert_eq!(blocking(&zone, "eastus", &["2".into()]), ["restricted in zone 2 of eastus (QuotaId)"]);
    }

    #[test]
    fn image_ids_by_kind() {
        let s = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute";
        assert!(matches!(image_id(&format!("{s}/images/golden")), Some(ImageId::Managed(_))));
        assert!(matches!(image_id(&format!("{s}/galleries/g/images/i")), Some(ImageId::GalleryImage(_))));
        assert!(matches!(
            image_id(&format!("{}/galleries/g/images/i/versions/1.0.0", s.to_lowercase())),
            Some(ImageId::GalleryVersion(_))
        ));
        assert_eq!(image_id(&format!("{s}/disks/d")), None);
        assert_eq!(image_id("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/images/x"), None);
        assert_eq!(image_id("canonical:ubuntu:server:latest"), None);
        assert_eq!(encode("location eq 'eastus'"), "location%20eq%20'eastus'");
    }
}
