//! `kasm-autoscale preflight` for OpenStack: the credential (either method) and its project scope,
//! the read paths of Kasm's application-credential access rules (each called once), the image,
//! flavor, network, security groups and key pair, compute and volume quota headroom, and the
//! startup script's size — read-only, one result per check.
//!
//! # Refused reads
//! A read can be refused two ways, and each check says which, apart from "missing" (404): the
//! application credential's access rules (keystonemiddleware answers 401 for a path no rule
//! allows, the token itself being valid) or the cloud's policy (403, e.g. Nova's "Policy doesn't
//! allow os_compute_api:... to be performed."). Only reads the create/list/delete flow makes can
//! fail a check that way: the servers (`servers/detail`, `servers/{id}`), the flavors
//! (`flavors/detail`) and, with `create_volume`, the volumes (`volumes/detail`, `volumes/{id}`).
//! The image (Glance), the network and security groups (Neutron), the key pair and the quota
//! limits are read by preflight alone: a refusal there passes the check as "not checked", naming
//! the refusal and the rule that would let preflight look. Kasm's minimum access rules (the
//! README) allow every read the flow makes, and none of the Neutron, key-pair or limits reads.

use base64::Engine;
use std::collections::BTreeMap;

use super::client::{Flavor, Service};
use super::{Error, OpenstackProvider, USER_DATA_MAX};
use crate::config::ProviderConfigCommon;
use crate::model::OsFamily;
use crate::providers::Check;
use crate::script;

/// The names of every check, in the order they are reported.
pub const CHECKS: [&str; 11] = [
    "credentials",
    "project_scope",
    "access_rules",
    "image",
    "flavor",
    "network",
    "security_groups",
    "key_name",
    "compute_quota",
    "volume_quota",
    "startup_script",
];

/// An id no resource has: reads of `.../{id}` paths answer 404 when the rule allows them and 401/403
/// when it does not.
const PROBE_ID: &str = "00000000-0000-4000-8000-000000000000";

/// How a refused read reads: the path, and whether the access rules (401) or a policy (403)
/// refused it, quoting the service; `None` when `e` is no refusal.
fn refusal(e: &Error, what: &str) -> Option<String> {
    let said = e.said().split_whitespace().collect::<Vec<_>>().join(" ");
    match e.status()? {
        // The client already asked Keystone: the token is valid, so a path rule refused it.
        401 => Some(format!("{what} is refused by the application credential's access rules (HTTP 401)")),
        403 => Some(format!("{what} is forbidden by policy (HTTP 403: {said})")),
        _ => None,
    }
}

/// A preflight-only read that failed: a refusal passes as "not checked" (the flow does not make
/// this read; `rule` would let preflight look), anything else fails with the error.
fn unneeded(name: &'static str, what: &str, rule: &str, e: Error) -> Check {
    match refusal(&e, what) {
        Some(r) => Check::pass(
            name,
            format!("not checked: {r}; kasm-autoscale does not need this read (allow `{rule}` to check it)"),
        ),
        None => Check::fail(name, e.into_provider().to_string()),
    }
}

/// `max - used` of the `absolute` limits (`None` when unlimited, i.e. `max` is -1, or unreported).
fn room(abs: &BTreeMap<String, i64>, max: &str, used: &str) -> Option<i64> {
    let m = *abs.get(max)?;
    (m >= 0).then(|| m - abs.get(used).copied().unwrap_or(0))
}

impl OpenstackProvider {
    /// Runs every check of [`CHECKS`], read-only. A credential Keystone refuses fails
    /// `credentials` and leaves the API checks not checked.
    pub async fn preflight(&self) -> Vec<Check> {
        let mut out = Vec::with_capacity(CHECKS.len());
        let c = &self.config;
        if let Err(e) = self.client.credential().token().await {
            out.push(Check::fail("credentials", e.into_provider().to_string()));
            out.extend(CHECKS[1..CHECKS.len() - 1].iter().map(|n| Check::fail(n, "not checked: no Keystone token")));
            out.push(self.check_script());
            return out;
        }
        let info = self.client.credential().info().unwrap_or_default();
        let roles: Vec<&str> = info.roles.iter().map(|r| r.name.as_str()).collect();
        out.push(Check::pass(
            "credentials",
            format!("Keystone issued a token ({:?} authentication); roles {roles:?}", c.authentication_method),
        ));
        let project = info.project.clone().unwrap_or_default();
        let cinder_project = c.openstack_cinder_endpoint.trim_end_matches('/').rsplit('/').next().unwrap_or("");
        out.push(if project.name.is_empty() {
            Check::fail("project_scope", "the token is not scoped to a project")
        } else if project.name != c.project_name {
            Check::fail(
                "project_scope",
                format!("the token is scoped to project `{}`, not project_name `{}`", project.name, c.project_name),
            )
        } else if !project.id.is_empty() && cinder_project != project.id {
            Check::fail(
                "project_scope",
                format!(
                    "openstack_cinder_endpoint ends with `{cinder_project}`, but project `{}` has id {}",
                    project.name, project.id
                ),
            )
        } else {
            Check::pass("project_scope", format!("project `{}` ({})", project.name, project.id))
        });

        let flavors = self.client.flavors().await;
        let flavor: Option<Flavor> =
            flavors.as_ref().ok().and_then(|fs| fs.iter().find(|f| f.name == c.flavor.trim()).cloned());
        out.push(self.check_access_rules(flavor.as_ref().map(|f| f.id.as_str())).await);
        out.push(match self.client.image(c.image_id.trim()).await {
            Ok(i) if i.status == "active" => {
                Check::pass("image", format!("`{}` ({}) is active", c.image_id, i.name.unwrap_or_default()))
            }
            Ok(i) => Check::fail("image", format!("image `{}` is {}, not active", c.image_id, i.status)),
            Err(e) if e.status() == Some(404) => {
                Check::fail("image", format!("image `{}` does not exist or is not visible to the project", c.image_id))
            }
            Err(e) => unneeded("image", "image GET /v2/images/{id}", "image GET /v2/images/*", e),
        });
        out.push(match (&flavors, &flavor) {
            (Ok(_), Some(f)) => {
                Check::pass("flavor", format!("`{}` is flavor {} ({} vCPU, {} MiB)", f.name, f.id, f.vcpus, f.ram))
            }
            (Ok(fs), None) => Check::fail(
                "flavor",
                format!(
                    "no flavor named `{}`; the project sees {:?}",
                    c.flavor,
                    fs.iter().map(|f| f.name.as_str()).collect::<Vec<_>>()
                ),
            ),
            (Err(e), _) => match refusal(e, "compute GET /v2.1/flavors/detail") {
                Some(r) => Check::fail("flavor", format!("{r}; kasm-autoscale needs this read")),
                None => Check::fail("flavor", e.to_string()),
            },
        });
        out.push(match self.client.network(c.network_id.trim()).await {
            Ok(n) => Check::pass(
                "network",
                format!("`{}` ({}) is {}", c.network_id, n.name, n.status.unwrap_or_else(|| "listed".into())),
            ),
            Err(e) if e.status() == Some(404) => {
                Check::fail("network", format!("network `{}` does not exist or is not visible", c.network_id))
            }
            Err(e) => unneeded("network", "network GET /v2.0/networks/{id}", "network GET /v2.0/networks/*", e),
        });
        out.push(self.check_security_groups().await);
        out.push(match c.key_name.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
            None => Check::pass("key_name", "none configured"),
            Some(k) => match self.client.keypair(k).await {
                Ok(kp) => Check::pass("key_name", format!("key pair `{}` exists", kp.name)),
                Err(e) if e.status() == Some(404) => {
                    Check::fail("key_name", format!("no key pair named `{k}` (key pairs belong to the user)"))
                }
                Err(e) => {
                    unneeded("key_name", "compute GET /v2.1/os-keypairs/{name}", "compute GET /v2.1/os-keypairs/*", e)
                }
            },
        });
        out.push(match self.client.compute_limits().await {
            Ok(abs) => {
                let mut short = Vec::new();
                let need = |n: i64, max, used, what: &str, short: &mut Vec<String>| {
                    if let Some(r) = room(&abs, max, used)
                        && r < n
                    {
                        short.push(format!("{what}: room for {r}, one VM needs {n}"));
                    }
                };
                need(1, "maxTotalInstances", "totalInstancesUsed", "instances", &mut short);
                if let Some(f) = &flavor {
                    need(f.vcpus as i64, "maxTotalCores", "totalCoresUsed", "cores", &mut short);
                    need(f.ram as i64, "maxTotalRAMSize", "totalRAMUsed", "RAM (MiB)", &mut short);
                }
                if short.is_empty() {
                    let r = room(&abs, "maxTotalInstances", "totalInstancesUsed");
                    Check::pass(
                        "compute_quota",
                        match r {
                            Some(r) => format!("room for {r} more instance(s)"),
                            None => "instances are unlimited".into(),
                        },
                    )
                } else {
                    Check::fail("compute_quota", short.join("; "))
                }
            }
            Err(e) => unneeded("compute_quota", "compute GET /v2.1/limits", "compute GET /v2.1/limits", e),
        });
        out.push(if !c.create_volume {
            Check::pass("volume_quota", "create_volume is off: no volumes are made")
        } else {
            match self.client.volume_limits().await {
                Ok(abs) => {
                    let size = i64::from(c.volume_size_gb.unwrap_or(0));
                    let vols = room(&abs, "maxTotalVolumes", "totalVolumesUsed");
                    let gbs = room(&abs, "maxTotalVolumeGigabytes", "totalGigabytesUsed");
                    let mut short = Vec::new();
                    if vols.is_some_and(|r| r < 1) {
                        short.push("volumes: no room for another".to_string());
                    }
                    if let Some(g) = gbs.filter(|g| *g < size) {
                        short.push(format!("gigabytes: room for {g}, one VM needs {size}"));
                    }
                    if short.is_empty() {
                        Check::pass(
                            "volume_quota",
                            format!("room for {vols:?} volume(s), {gbs:?} GB (None: unlimited)"),
                        )
                    } else {
                        Check::fail("volume_quota", short.join("; "))
                    }
                }
                Err(e) => {
                    unneeded("volume_quota", "volumev3 GET /v3/{project_id}/limits", "volumev3 GET /v3/*/limits", e)
                }
            }
        });
        out.push(self.check_script());
        out
    }

    /// The read paths of Kasm's minimum application-credential access rules, each called once
    /// (a 404 of a probe id is a pass: the rule let the request through). Keystone's access rules
    /// refuse with 401, a policy with 403. Only a refused read the flow makes fails the check; the
    /// others (Kasm reads them, we do not) are named in a passing line.
    async fn check_access_rules(&self, flavor: Option<&str>) -> Check {
        let fl = flavor.unwrap_or(PROBE_ID);
        let vols = self.config.create_volume;
        // (service, the rule, the path probed, whether the create/list/delete flow makes this read)
        let probes: Vec<(Service, &str, Vec<&str>, bool)> = vec![
            (Service::Volume, "volumev3 GET /v3/*/volumes", vec!["volumes"], false),
            (Service::Volume, "volumev3 GET /v3/*/volumes/detail", vec!["volumes", "detail"], vols),
            (Service::Volume, "volumev3 GET /v3/*/volumes/*", vec!["volumes", PROBE_ID], vols),
            (Service::Compute, "compute GET /v2.1/servers/detail", vec!["servers", "detail"], true),
            (Service::Compute, "compute GET /v2.1/servers", vec!["servers"], false),
            (Service::Compute, "compute GET /v2.1/servers/*", vec!["servers", PROBE_ID], true),
            (
                Service::Compute,
                "compute GET /v2.1/servers/*/os-volume_attachments",
                vec!["servers", PROBE_ID, "os-volume_attachments"],
                false,
            ),
            (
                Service::Compute,
                "compute GET /v2.1/servers/*/os-interface",
                vec!["servers", PROBE_ID, "os-interface"],
                false,
            ),
            (Service::Compute, "compute GET /v2.1/flavors", vec!["flavors"], false),
            // The flow lists `flavors/detail`, which this rule's `*` matches.
            (Service::Compute, "compute GET /v2.1/flavors/* (flavors/detail)", vec!["flavors", "detail"], true),
            (Service::Compute, "compute GET /v2.1/flavors/*", vec!["flavors", fl], false),
            (Service::Image, "image GET /v2/images/*", vec!["v2", "images", self.config.image_id.trim()], false),
            (Service::Image, "image GET /v2/schemas/image", vec!["v2", "schemas", "image"], false),
        ];
        let mut refused_needed = Vec::new();
        let mut refused_other = Vec::new();
        let mut failed = Vec::new();
        for (service, rule, path, needed) in &probes {
            let q: Vec<(&str, String)> =
                if path.len() == 1 || path.last() == Some(&"detail") { vec![("limit", "1".into())] } else { vec![] };
            match self.client.probe(*service, path, &q).await {
                Ok(()) => {}
                Err(e) if e.status() == Some(404) => {}
                Err(e) => match refusal(&e, rule) {
                    Some(r) if *needed => refused_needed.push(r),
                    Some(r) => refused_other.push(r),
                    None => failed.push(format!("{rule}: {}", e.into_provider())),
                },
            }
        }
        if !refused_needed.is_empty() {
            let mut line = format!("kasm-autoscale needs: {}", refused_needed.join(", "));
            if !refused_other.is_empty() {
                line.push_str(&format!(
                    "; also (Kasm reads these, kasm-autoscale does not): {}",
                    refused_other.join(", ")
                ));
            }
            return Check::fail("access_rules", line);
        }
        if !failed.is_empty() {
            return Check::fail("access_rules", failed.join("; "));
        }
        let allowed = probes.len() - refused_other.len();
        let mut line =
            format!("{allowed} of {} read paths allowed, every read kasm-autoscale makes among them", probes.len());
        if !refused_other.is_empty() {
            line.push_str(&format!("; not needed by kasm-autoscale (Kasm reads them): {}", refused_other.join(", ")));
        }
        line.push_str("; the POST/DELETE rules (servers, volumes) are not called by a read-only check");
        Check::pass("access_rules", line)
    }

    async fn check_security_groups(&self) -> Check {
        let groups = &self.config.security_groups.0;
        if groups.is_empty() {
            return Check::pass("security_groups", "none configured (Nova applies the project's `default`)");
        }
        let mut missing = Vec::new();
        for g in groups {
            match self.client.security_groups_named(g).await {
                Ok(found) if found.iter().any(|x| &x.name == g) => {}
                Ok(_) => missing.push(g.clone()),
                Err(e) => {
                    return unneeded(
                        "security_groups",
                        "network GET /v2.0/security-groups",
                        "network GET /v2.0/security-groups",
                        e,
                    );
                }
            }
        }
        if missing.is_empty() {
            Check::pass("security_groups", format!("{groups:?} exist"))
        } else {
            Check::fail("security_groups", format!("no security group named {missing:?} in the project"))
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
            Ok(s) => {
                let n = base64::engine::general_purpose::STANDARD.encode(s.as_bytes()).len();
                if n > USER_DATA_MAX {
                    Check::fail(
                        "startup_script",
                        format!("renders to {n} bytes in base64; user_data takes at most {USER_DATA_MAX}"),
                    )
                } else {
                    Check::pass(
                        "startup_script",
                        format!(
                            "renders to {n} bytes in base64 with sample values, {} below the user_data limit of {USER_DATA_MAX}",
                            USER_DATA_MAX - n
                        ),
                    )
                }
            }
        }
    }
}
