//! `kasm-autoscale preflight` for Azure: every check an operator would otherwise discover from a failed
//! provisioning — the app's credentials, the subscription and resource group, the subnet and network
//! security group, the VM size in the region, the image, the regional quota and the startup script's
//! size — read-only, one result per check.
//!
//! The VM size is checked against the sizes the region offers (`GET .../locations/{region}/vmSizes`,
//! computeRPCommon.json). Not checked: per-subscription SKU restrictions (`resourceSkus`), whose spec is
//! not among the pinned ones; a restricted size fails the create as `SkuNotAvailable` (OutOfCapacity).
//! A marketplace image is looked up with `GET .../locations/{region}/publishers/{publisher}/artifacttypes/
//! vmimage/offers/{offer}/skus/{sku}/versions` (UNSOURCED: VirtualMachineImages_List is in Compute's
//! swagger but not in the saved files; a wrong path fails this check loudly with ARM's answer).

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use super::client::{COMPUTE_API, NETWORK_API};
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

/// computeRPCommon.json `VirtualMachineSize`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VmSize {
    name: String,
    #[serde(default)]
    number_of_cores: i64,
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
        let sizes: Result<Vec<VmSize>, Error> = self
            .client
            .list(
                self.client.url(
                    &self.sub_path(&["providers", "Microsoft.Compute", "locations", region, "vmSizes"]),
                    COMPUTE_API,
                ),
                "list the region's VM sizes",
            )
            .await;
        let want = c.azure_vm_size.trim();
        let size = sizes.as_ref().ok().and_then(|s| s.iter().find(|s| s.name.eq_ignore_ascii_case(want)));
        out.push(match (&sizes, size) {
            (Err(e), _) => Check::fail("vm_size", e.to_string()),
            (Ok(_), None) => Check::fail("vm_size", format!("azure_vm_size: {want} is not offered in {region}")),
            (Ok(_), Some(s)) => {
                Check::pass("vm_size", format!("{} offered in {region} ({} vCPUs)", s.name, s.number_of_cores))
            }
        });
        out.push(self.check_image().await);
        out.push(match usages {
            Err(e) => Check::fail("quota", e.to_string()),
            Ok(u) => quota(&u, size.map(|s| s.number_of_cores).unwrap_or(0)),
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
            AzureImageReference::Id { id } => Check::pass(
                "image",
                format!(
                    "image by resource id {id}: not resolved here (gallery api-versions are not among the pinned specs); a missing image fails the create loudly"
                ),
            ),
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
