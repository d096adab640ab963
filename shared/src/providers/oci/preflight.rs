//! `kasm-autoscale preflight` for OCI: read-only checks, one result each — the signed request
//! (`GetUser` through Identity), the compartment, the availability domains, the image and whether
//! the shape runs it (`ListShapes` for the image), the subnet, the NSGs, and the startup script's
//! size. Service-limit headroom is not checked: Oracle's Limits API reference documents
//! `GET /20190729/services/{serviceName}/limits/{limitName}/resourceAvailability` (`compartmentId`,
//! `availabilityDomain`; answers `available`, `used`:
//! <https://docs.oracle.com/cd/F90410_01/3.0-latest/ceapi/op-20190729-services-service_name-limits-limit_name-resourceavailability-get.html>),
//! but no official source found here names the limit that counts a given shape nor the Limits
//! endpoint's host, so it is not built rather than guessed (see the README).

use serde_json::Value;

use super::OciProvider;
use super::client::{Api, segment};
use crate::config::ProviderConfigCommon;
use crate::model::OsFamily;
use crate::providers::Check;
use crate::script;

/// The names of every check, in the order they are reported.
pub const CHECKS: [&str; 8] =
    ["credentials", "compartment", "availability_domains", "image", "shape", "subnet", "nsgs", "startup_script"];

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

impl OciProvider {
    /// Runs every check of [`CHECKS`], read-only. A refused signature fails `credentials` and leaves
    /// the API checks not checked.
    pub async fn preflight(&self) -> Vec<Check> {
        let c = &self.config;
        let mut out = Vec::with_capacity(CHECKS.len());
        let user = self
            .client
            .get_json(
                Api::Identity,
                "read the API user (GetUser)",
                &format!("users/{}", segment(&c.oci_user_ocid)),
                &[],
            )
            .await;
        match user {
            Ok(u) => out.push(Check::pass(
                "credentials",
                format!("signed request accepted (GET /users/{{userId}}); user `{}`", str_of(&u, "name")),
            )),
            Err(e) => {
                out.push(Check::fail("credentials", e.into_provider().to_string()));
                out.extend(
                    CHECKS[1..CHECKS.len() - 1]
                        .iter()
                        .map(|n| Check::fail(n, "not checked: the API could not be used")),
                );
                out.push(self.check_script());
                return out;
            }
        }
        // The root compartment is the tenancy.
        let (what, path) = if c.oci_compartment_ocid.starts_with("ocid1.tenancy.") {
            ("read the tenancy (GetTenancy)", format!("tenancies/{}", segment(&c.oci_compartment_ocid)))
        } else {
            ("read the compartment (GetCompartment)", format!("compartments/{}", segment(&c.oci_compartment_ocid)))
        };
        out.push(match self.client.get_json(Api::Identity, what, &path, &[]).await {
            Ok(v) if matches!(str_of(&v, "lifecycleState"), "" | "ACTIVE") => {
                Check::pass("compartment", format!("`{}` is readable", str_of(&v, "name")))
            }
            Ok(v) => Check::fail("compartment", format!("the compartment is {}", str_of(&v, "lifecycleState"))),
            Err(e) => Check::fail("compartment", e.into_provider().to_string()),
        });
        let ads = self
            .client
            .get_json(
                Api::Identity,
                "list availability domains (ListAvailabilityDomains)",
                "availabilityDomains",
                &[("compartmentId", c.oci_tenancy_ocid.as_str())],
            )
            .await;
        out.push(match ads {
            Ok(Value::Array(list)) => {
                let names: Vec<&str> = list.iter().map(|a| str_of(a, "name")).collect();
                let missing: Vec<&String> =
                    c.oci_availability_domains.iter().filter(|a| !names.contains(&a.as_str())).collect();
                if missing.is_empty() {
                    Check::pass(
                        "availability_domains",
                        format!("{} of the region's {names:?}", c.oci_availability_domains.len()),
                    )
                } else {
                    Check::fail("availability_domains", format!("{missing:?} not in the region's {names:?}"))
                }
            }
            Ok(_) => Check::fail("availability_domains", "ListAvailabilityDomains did not answer a list"),
            Err(e) => Check::fail("availability_domains", e.into_provider().to_string()),
        });
        let image = self
            .client
            .get_json(Api::Core, "read the image (GetImage)", &format!("images/{}", segment(&c.oci_image_ocid)), &[])
            .await;
        out.push(match image {
            Ok(v) if str_of(&v, "lifecycleState") == "AVAILABLE" => Check::pass(
                "image",
                format!(
                    "`{}` ({} {})",
                    str_of(&v, "displayName"),
                    str_of(&v, "operatingSystem"),
                    str_of(&v, "operatingSystemVersion")
                ),
            ),
            Ok(v) => Check::fail("image", format!("the image is {}", str_of(&v, "lifecycleState"))),
            Err(e) => Check::fail("image", e.into_provider().to_string()),
        });
        out.push(self.check_shape().await);
        let subnet = self
            .client
            .get_json(
                Api::Core,
                "read the subnet (GetSubnet)",
                &format!("subnets/{}", segment(&c.oci_subnet_ocid)),
                &[],
            )
            .await;
        out.push(match subnet {
            Ok(v) if str_of(&v, "lifecycleState") == "AVAILABLE" => {
                Check::pass("subnet", format!("`{}` {}", str_of(&v, "displayName"), str_of(&v, "cidrBlock")))
            }
            Ok(v) => Check::fail("subnet", format!("the subnet is {}", str_of(&v, "lifecycleState"))),
            Err(e) => Check::fail("subnet", e.into_provider().to_string()),
        });
        let mut bad = Vec::new();
        for nsg in c.oci_nsg_ocids.iter() {
            let r = self
                .client
                .get_json(
                    Api::Core,
                    "read the network security group (GetNetworkSecurityGroup)",
                    &format!("networkSecurityGroups/{}", segment(nsg)),
                    &[],
                )
                .await;
            match r {
                Ok(v) if str_of(&v, "lifecycleState") == "AVAILABLE" => {}
                Ok(v) => bad.push(format!("{nsg} is {}", str_of(&v, "lifecycleState"))),
                Err(e) => bad.push(e.into_provider().to_string()),
            }
        }
        out.push(if bad.is_empty() {
            Check::pass("nsgs", format!("{} network security group(s) found", c.oci_nsg_ocids.len()))
        } else {
            Check::fail("nsgs", bad.join("; "))
        });
        out.push(self.check_script());
        out
    }

    /// `ListShapes` for the image in the compartment (every page): the config's shape must be listed.
    async fn check_shape(&self) -> Check {
        let c = &self.config;
        let mut page: Option<String> = None;
        loop {
            let mut q =
                vec![("compartmentId", c.oci_compartment_ocid.as_str()), ("imageId", c.oci_image_ocid.as_str())];
            if let Some(p) = &page {
                q.push(("page", p.as_str()));
            }
            let r = self.client.get_page(Api::Core, "list the shapes for the image (ListShapes)", "shapes", &q).await;
            let (items, next) = match r {
                Ok(v) => v,
                Err(e) => return Check::fail("shape", e.into_provider().to_string()),
            };
            if let Some(s) = items.iter().find(|s| str_of(s, "shape") == c.oci_shape) {
                let flex = s.get("isFlexible").and_then(Value::as_bool).unwrap_or(false);
                return if flex == c.is_flex() {
                    Check::pass("shape", format!("{} runs the image", c.oci_shape))
                } else {
                    Check::fail(
                        "shape",
                        format!("{} isFlexible={flex}, but the config treats it otherwise", c.oci_shape),
                    )
                };
            }
            match next {
                Some(n) => page = Some(n),
                None => {
                    return Check::fail(
                        "shape",
                        format!("{} is not offered for the image in this compartment", c.oci_shape),
                    );
                }
            }
        }
    }

    fn check_script(&self) -> Check {
        let template = &self.config.startup_script;
        if template.trim().is_empty() {
            return Check::pass("startup_script", "empty: the image itself must install and register the Kasm agent");
        }
        let vars: script::Vars =
            script::PLACEHOLDERS.iter().map(|n| (n.to_string(), Some(format!("sample-{n}")))).collect();
        let rendered = match script::render(template, &vars) {
            Ok(r) => r,
            Err(e) => return Check::fail("startup_script", format!("does not render: {e}")),
        };
        match script::package(&self.config.script_rules(), OsFamily::Linux, rendered) {
            Err(e) => Check::fail("startup_script", e.to_string()),
            Ok(s) => Check::pass(
                "startup_script",
                format!(
                    "renders to {} bytes with sample values ({} base64), within OCI's 32,000-byte metadata",
                    s.len(),
                    s.len().div_ceil(3) * 4
                ),
            ),
        }
    }
}
