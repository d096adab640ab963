//! `kasm-autoscale preflight` for OCI: read-only checks, one result each — the signed request
//! (`GetUser` through Identity), the compartment, the availability domains, the image and whether
//! the shape runs it (`ListShapes` for the image), the subnet, the NSGs, the service-limit headroom,
//! and the startup script's size.
//!
//! # Service limits
//! The Limits API's wire shape is sourced: `LimitsClient` of Oracle's Python SDK (oci 2.189.0,
//! `oci/limits/limits_client.py`: endpoint template `https://limits.{region}.oci.{secondLevelDomain}`,
//! `GET /20190729/limitDefinitions`, `GET /20190729/services/{serviceName}/limits/{limitName}/resourceAvailability`)
//! and its models (`LimitDefinitionSummary`: `name`, `serviceName`, `scopeType` GLOBAL/REGION/AD,
//! `isResourceAvailabilitySupported`; `ResourceAvailability`: `used`, `available`,
//! `fractionalAvailability`), extracted by `scripts/oci-limits-subset.py` into
//! `tests/oci/limits-subset.json`, which the test server checks every Limits request against.
//! Which limits count an instance of a shape is **not** documented anywhere official found here, so
//! the operator names them with the amount one instance uses (`service_limits`, ours). For each:
//! `ListLimitDefinitions` (the tenancy, `serviceName=compute`, `name`) learns its scope — an unknown
//! name fails naming it — then `GetResourceAvailability` in the config's compartment (the SDK: "the
//! usage in the selected compartment"; compartment quotas count there) once, or once per configured
//! availability domain for an AD-scoped limit. It fails when no domain has room for one instance,
//! naming each domain's numbers; a limit OCI reports no availability for is "not checked", and so is
//! the whole check when `service_limits` is empty.

use serde_json::Value;

use super::OciProvider;
use super::client::{Api, segment};
use crate::config::ProviderConfigCommon;
use crate::model::OsFamily;
use crate::providers::Check;
use crate::script;

/// The names of every check, in the order they are reported.
pub const CHECKS: [&str; 9] = [
    "credentials",
    "compartment",
    "availability_domains",
    "image",
    "shape",
    "subnet",
    "nsgs",
    "service_limits",
    "startup_script",
];

/// The Limits API's service name of the compute limits (`serviceName`).
const COMPUTE: &str = "compute";

/// The `scopeType`s `LimitDefinitionSummary` allows (SDK oci 2.189.0).
const SCOPES: [&str; 3] = ["GLOBAL", "REGION", "AD"];

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
        out.push(self.check_service_limits().await);
        out.push(self.check_script());
        out
    }

    /// The headroom of every limit in `service_limits` (see the module doc): fails when one has no
    /// room for an instance anywhere, or cannot be read.
    async fn check_service_limits(&self) -> Check {
        let limits = &self.config.service_limits;
        if limits.is_empty() {
            return Check::pass(
                "service_limits",
                "not checked: name the limits that count this shape in service_limits \
                 (Console → Governance → Limits, Quotas and Usage)",
            );
        }
        let (mut fine, mut bad) = (Vec::new(), Vec::new());
        for (name, amount) in limits {
            match self.limit_headroom(name, *amount).await {
                Ok(d) => fine.push(d),
                Err(d) => bad.push(d),
            }
        }
        if bad.is_empty() {
            Check::pass("service_limits", fine.join("; "))
        } else {
            Check::fail("service_limits", bad.join("; "))
        }
    }

    /// One limit: its definition, then its availability (per configured domain when AD-scoped).
    async fn limit_headroom(&self, name: &str, amount: f64) -> Result<String, String> {
        let c = &self.config;
        let def = self.limit_definition(name).await?;
        if def.get("isResourceAvailabilitySupported").and_then(Value::as_bool) == Some(false) {
            return Ok(format!("`{name}`: not checked: OCI reports no availability for {name}"));
        }
        let scope = str_of(&def, "scopeType");
        if !SCOPES.contains(&scope) {
            return Err(format!(
                "`{name}`: scopeType `{scope}` is none of {SCOPES:?} (the SDK's), so the call to make is unknown"
            ));
        }
        let ads: Vec<Option<&str>> = if scope == "AD" {
            c.oci_availability_domains.iter().map(|a| Some(a.as_str())).collect()
        } else {
            vec![None]
        };
        let path = format!("services/{COMPUTE}/limits/{}/resourceAvailability", segment(name));
        let mut seen = Vec::new();
        for ad in ads {
            let mut q = vec![("compartmentId", c.oci_compartment_ocid.as_str())];
            if let Some(a) = ad {
                q.push(("availabilityDomain", a));
            }
            let what = format!("read the availability of limit {name} (GetResourceAvailability)");
            let (v, _) = self.client.get_limits(&what, &path, &q).await.map_err(|e| e.into_provider().to_string())?;
            let available = v
                .get("fractionalAvailability")
                .and_then(Value::as_f64)
                .or_else(|| v.get("available").and_then(Value::as_f64));
            let Some(available) = available else {
                return Ok(format!("`{name}`: not checked: OCI reports no availability for {name}"));
            };
            let used =
                v.get("fractionalUsage").and_then(Value::as_f64).or_else(|| v.get("used").and_then(Value::as_f64));
            seen.push((ad.unwrap_or(scope), available, used));
        }
        let numbers: Vec<String> = seen
            .iter()
            .map(|(at, available, used)| match used {
                Some(u) => format!("{at}: {available} available, {u} used"),
                None => format!("{at}: {available} available"),
            })
            .collect();
        if seen.iter().any(|(_, available, _)| *available >= amount) {
            Ok(format!("`{name}`: one instance needs {amount}; {}", numbers.join(", ")))
        } else {
            Err(format!("`{name}`: one instance needs {amount}, short everywhere: {}", numbers.join(", ")))
        }
    }

    /// The `compute` limit definition named `name` (`ListLimitDefinitions` in the tenancy, every page).
    async fn limit_definition(&self, name: &str) -> Result<Value, String> {
        let c = &self.config;
        let what = format!("find limit {name} (ListLimitDefinitions)");
        let mut page: Option<String> = None;
        loop {
            let mut q = vec![("compartmentId", c.oci_tenancy_ocid.as_str()), ("serviceName", COMPUTE), ("name", name)];
            if let Some(p) = &page {
                q.push(("page", p.as_str()));
            }
            let (v, next) = self
                .client
                .get_limits(&what, "limitDefinitions", &q)
                .await
                .map_err(|e| e.into_provider().to_string())?;
            let Value::Array(items) = v else {
                return Err(format!("failed to {what}: the answer is not a list"));
            };
            if let Some(d) = items
                .into_iter()
                .find(|d| str_of(d, "name") == name && matches!(str_of(d, "serviceName"), "" | COMPUTE))
            {
                return Ok(d);
            }
            match next {
                Some(n) if page.as_deref() != Some(n.as_str()) => page = Some(n),
                Some(_) => return Err(format!("failed to {what}: opc-next-page repeats")),
                None => return Err(format!("no {COMPUTE} limit named `{name}` (ListLimitDefinitions)")),
            }
        }
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
