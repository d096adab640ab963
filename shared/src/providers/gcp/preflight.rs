//! `kasm-autoscale preflight` for GCP: every check an operator would otherwise discover from a failed
//! provisioning — the key file and its token, the project, zone, machine type, image and subnetwork,
//! the region's quota headroom, and the startup script's size — read-only, one result per check.
//!
//! **Quota** (`regions.get` → `quotas[]`): `cpu_quota` checks `CPUS` against the machine type's
//! `guestCpus` — the one CPU metric the discovery document describes ("Guest CPUs"). Which other
//! metrics an instance counts against (a machine family's `N2_CPUS`, an accelerator's GPUs, `INSTANCES`)
//! Google pairs nowhere we could read (the `Quota.metric` enum has the names without descriptions), so
//! the operator names them with the amount one instance uses (`gcp_quota_metrics`, ours), and
//! `quota_metrics` checks each; a name the region does not report fails, naming it. None named: "not
//! checked", said in the check's detail.
//!
//! **Permissions** ([`needed_permissions`]): Compute Engine v1 has `testIamPermissions` only on
//! resources (a subnetwork, an image, an instance), not on a project, so the project's permissions are
//! asked of Cloud Resource Manager's `projects.testIamPermissions` (`POST
//! https://cloudresourcemanager.googleapis.com/v1/projects/{project}:testIamPermissions`, body
//! `{"permissions": [...]}`, answer `{"permissions": [the granted subset]}`;
//! <https://cloud.google.com/resource-manager/reference/rest/v1/projects/testIamPermissions>; the base
//! URL is the config's `resource_manager_url` when set). The subnetwork's own permissions are asked of
//! Compute's `subnetworks.testIamPermissions` on the subnetwork (it may live in a Shared VPC host
//! project, where the project test would not see them). One line names every permission missing. The
//! Cloud Resource Manager API must be enabled in the key's project for this check; a permission name
//! GCP does not know is refused by the call (400), so a wrong name fails loudly.

use super::GcpProvider;
use super::client::Quota;
use crate::config::ProviderConfigCommon;
use crate::config::providers::GcpConfig;

const METADATA_VALUE_MAX: usize = GcpConfig::METADATA_VALUE_MAX;
const METADATA_TOTAL_MAX: usize = GcpConfig::METADATA_TOTAL_MAX;
use crate::providers::Check;
use crate::script;

/// The names of every check, in the order they are reported.
pub const CHECKS: [&str; 10] = [
    "credentials",
    "project",
    "zone",
    "machine_type",
    "image",
    "subnetwork",
    "permissions",
    "cpu_quota",
    "quota_metrics",
    "startup_script",
];

/// `(project, name, is_family)` of an image path (`projects/<p>/global/images/<name>` or
/// `.../images/family/<family>`, optionally a full URL); a bare name is in the config's project.
fn image_ref<'a>(image: &'a str, project: &'a str) -> Option<(&'a str, &'a str, bool)> {
    let path = image.find("projects/").map_or(image, |i| &image[i..]);
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["projects", p, "global", "images", "family", f] => Some((p, f, true)),
        ["projects", p, "global", "images", n] => Some((p, n, false)),
        ["global", "images", "family", f] => Some((project, f, true)),
        ["global", "images", n] => Some((project, n, false)),
        [n] if !n.is_empty() => Some((project, n, false)),
        _ => None,
    }
}

/// `(project, region, name)` of a subnetwork path; a bare name is in the config's project and region.
fn subnetwork_ref<'a>(s: &'a str, project: &'a str, region: &'a str) -> Option<(&'a str, &'a str, &'a str)> {
    let path = s.find("projects/").map_or(s, |i| &s[i..]);
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["projects", p, "regions", r, "subnetworks", n] => Some((p, r, n)),
        ["regions", r, "subnetworks", n] => Some((project, r, n)),
        [n] if !n.is_empty() => Some((project, region, n)),
        _ => None,
    }
}

/// The IAM permissions the provider's own calls need, derived from the calls it makes (module docs of
/// `gcp`, `client.rs`): `(on the project, on the subnetwork)`.
///
/// On the project: `compute.instances.create` (`instances.insert`), `.get` (`instances.get`), `.list`
/// (`instances.list`), `.delete` (`instances.delete`), `compute.zoneOperations.get`
/// (`zoneOperations.get`), and for what the insert body sets: `compute.disks.create` (the boot disk from
/// `initializeParams`), `compute.instances.setLabels` (`labels`, always), `compute.instances.setMetadata`
/// (`metadata.items`: a startup script or `gcp_metadata`), `compute.instances.setTags` (`tags.items`,
/// with `gcp_network_tags`), `compute.instances.setServiceAccount` (`serviceAccounts`, with
/// `gcp_service_account`). On the subnetwork: `compute.subnetworks.use`, and
/// `compute.subnetworks.useExternalIp` with `gcp_public_ip` (the `ONE_TO_ONE_NAT` access config).
/// Not tested here: `compute.images.useReadOnly` on the image's project (public images are readable by
/// every account; the `image` check reads it), `iam.serviceAccounts.actAs` on `gcp_service_account` (an
/// IAM API resource) and what a `gcp_config_override` adds.
pub fn needed_permissions(c: &GcpConfig) -> (Vec<&'static str>, Vec<&'static str>) {
    let mut project = vec![
        "compute.instances.create",
        "compute.instances.get",
        "compute.instances.list",
        "compute.instances.delete",
        "compute.zoneOperations.get",
        "compute.disks.create",
        "compute.instances.setLabels",
    ];
    if !c.startup_script.trim().is_empty() || !c.gcp_metadata.is_empty() {
        project.push("compute.instances.setMetadata");
    }
    if !c.gcp_network_tags.is_empty() {
        project.push("compute.instances.setTags");
    }
    if c.gcp_service_account.is_some() {
        project.push("compute.instances.setServiceAccount");
    }
    let mut subnetwork = vec!["compute.subnetworks.use"];
    if c.gcp_public_ip {
        subnetwork.push("compute.subnetworks.useExternalIp");
    }
    (project, subnetwork)
}

/// The permissions of `wanted` not in `granted`.
fn missing<'a>(wanted: &[&'a str], granted: &[String]) -> Vec<&'a str> {
    wanted.iter().copied().filter(|w| !granted.iter().any(|g| g == w)).collect()
}

fn headroom(quotas: &[Quota], metric: &str) -> Option<f64> {
    quotas.iter().find(|q| q.metric == metric).map(|q| q.limit - q.usage)
}

impl GcpProvider {
    /// Runs every check of [`CHECKS`], read-only. A key file that yields no token fails `credentials`
    /// and leaves the API checks not checked.
    pub async fn preflight(&self) -> Vec<Check> {
        let mut out = Vec::with_capacity(CHECKS.len());
        let c = &self.config;
        match self.client.authenticate().await {
            Ok(()) => out.push(Check::pass("credentials", "the service-account key yields an access token")),
            Err(e) => {
                out.push(Check::fail("credentials", e.into_provider().to_string()));
                out.extend(CHECKS[1..CHECKS.len() - 1].iter().map(|n| Check::fail(n, "not checked: no access token")));
                out.push(self.check_script());
                return out;
            }
        }
        out.push(match self.client.project().await {
            Ok(p) => Check::pass("project", format!("project `{}` is reachable", p.name)),
            Err(e) if e.status() == Some(404) => {
                Check::fail("project", format!("project `{}` does not exist", c.gcp_project))
            }
            Err(e) => Check::fail("project", e.into_provider().to_string()),
        });
        out.push(match self.client.zone().await {
            Ok(z) if z.status.as_deref() == Some("DOWN") => {
                Check::fail("zone", format!("zone `{}` is DOWN", c.gcp_zone))
            }
            Ok(z) => Check::pass("zone", format!("zone `{}` is up", z.name)),
            Err(e) if e.status() == Some(404) => Check::fail("zone", format!("zone `{}` does not exist", c.gcp_zone)),
            Err(e) => Check::fail("zone", e.into_provider().to_string()),
        });
        let machine_name = c.gcp_machine_type.rsplit('/').next().unwrap_or_default().to_string();
        let machine = self.client.machine_type(&machine_name).await;
        out.push(match &machine {
            Ok(m) => Check::pass(
                "machine_type",
                format!("`{}` ({} vCPUs, {} MB) is offered in `{}`", m.name, m.guest_cpus, m.memory_mb, c.gcp_zone),
            ),
            Err(e) if e.status() == Some(404) => Check::fail(
                "machine_type",
                format!("machine type `{machine_name}` is not offered in zone `{}`", c.gcp_zone),
            ),
            Err(e) => Check::fail("machine_type", e.to_string()),
        });
        out.push(match image_ref(&c.gcp_image, &c.gcp_project) {
            None => Check::fail("image", format!("`{}` is not an image path", c.gcp_image)),
            Some((project, name, family)) => match self.client.image(project, name, family).await {
                Ok(i) if i.status.is_empty() || i.status == "READY" => {
                    Check::pass("image", format!("`{}` is READY", c.gcp_image))
                }
                Ok(i) => Check::fail("image", format!("image `{}` is {}", i.name, i.status)),
                Err(e) if e.status() == Some(404) => {
                    Check::fail("image", format!("image `{}` does not exist", c.gcp_image))
                }
                Err(e) => Check::fail("image", e.into_provider().to_string()),
            },
        });
        out.push(match subnetwork_ref(&c.gcp_subnetwork, &c.gcp_project, &c.gcp_region) {
            None => Check::fail("subnetwork", format!("`{}` is not a subnetwork path", c.gcp_subnetwork)),
            Some((p, r, n)) => match self.client.subnetwork(p, r, n).await {
                Ok(s) => Check::pass("subnetwork", format!("subnetwork `{}` exists in `{r}`", s.name)),
                Err(e) if e.status() == Some(404) => {
                    Check::fail("subnetwork", format!("subnetwork `{}` does not exist", c.gcp_subnetwork))
                }
                Err(e) => Check::fail("subnetwork", e.into_provider().to_string()),
            },
        });
        out.push(self.check_permissions().await);
        let region = self.client.region(&c.gcp_region).await;
        out.push(match (&region, &machine) {
            (Err(e), _) => Check::fail("cpu_quota", e.to_string()),
            (Ok(r), _) if r.status == "DOWN" => Check::fail("cpu_quota", format!("region `{}` is DOWN", r.name)),
            (Ok(_), Err(_)) => Check::fail("cpu_quota", "not checked: the machine type could not be read"),
            (Ok(r), Ok(m)) => {
                let need = f64::from(m.guest_cpus);
                match headroom(&r.quotas, "CPUS") {
                    None => Check::fail("cpu_quota", format!("region `{}` reports no CPUS quota", r.name)),
                    Some(h) if h < need => Check::fail(
                        "cpu_quota",
                        format!(
                            "region `{}`: CPUS has room for {h}, one `{}` instance needs {need}; ask for a quota increase",
                            r.name, m.name
                        ),
                    ),
                    Some(h) => Check::pass("cpu_quota", format!("CPUS headroom in `{}`: {h}", r.name)),
                }
            }
        });
        out.push(match &region {
            _ if c.gcp_quota_metrics.is_empty() => Check::pass(
                "quota_metrics",
                format!(
                    "not checked: name the quota metrics one instance counts against besides CPUS (its machine \
                     family's CPUs{}, INSTANCES, …) in gcp_quota_metrics with the amount one instance uses",
                    if c.gcp_guest_accelerators.is_empty() { "" } else { ", its GPUs" }
                ),
            ),
            Err(e) => Check::fail("quota_metrics", e.to_string()),
            Ok(r) => {
                let mut problems = Vec::new();
                let mut seen = Vec::new();
                for (metric, want) in c.gcp_quota_metrics.iter() {
                    match headroom(&r.quotas, metric) {
                        None => problems.push(format!("region `{}` reports no {metric} quota", r.name)),
                        Some(h) if h < *want => {
                            problems.push(format!("{metric} has room for {h}, one instance needs {want}"))
                        }
                        Some(h) => seen.push(format!("{metric} {h}")),
                    }
                }
                if problems.is_empty() {
                    Check::pass("quota_metrics", format!("headroom in `{}`: {}", r.name, seen.join(", ")))
                } else {
                    Check::fail(
                        "quota_metrics",
                        format!("{} (gcp_quota_metrics); ask for a quota increase", problems.join("; ")),
                    )
                }
            }
        });
        out.push(self.check_script());
        out
    }

    /// The `permissions` check (module docs).
    async fn check_permissions(&self) -> Check {
        let c = &self.config;
        let (on_project, on_subnetwork) = needed_permissions(c);
        let mut gaps = Vec::new();
        match self.client.project_permissions(&on_project).await {
            Ok(p) => {
                let m = missing(&on_project, &p.permissions);
                if !m.is_empty() {
                    gaps.push(format!("on project `{}`: {}", c.gcp_project, m.join(", ")));
                }
            }
            Err(e) => {
                let disabled = matches!(&e, super::Error::Http { source: crate::http::HttpError::Status { body, .. }, .. }
                    if super::client::api_error(body).0.iter().any(|r| r == "accessNotConfigured" || r == "SERVICE_DISABLED"));
                return Check::fail(
                    "permissions",
                    if disabled {
                        format!(
                            "the Cloud Resource Manager API (cloudresourcemanager.googleapis.com) is not enabled in the key's project; enable it to let preflight test permissions: {e}"
                        )
                    } else {
                        e.into_provider().to_string()
                    },
                );
            }
        }
        if let Some((p, r, n)) = subnetwork_ref(&c.gcp_subnetwork, &c.gcp_project, &c.gcp_region) {
            match self.client.subnetwork_permissions(p, r, n, &on_subnetwork).await {
                Ok(got) => {
                    let m = missing(&on_subnetwork, &got.permissions);
                    if !m.is_empty() {
                        gaps.push(format!("on subnetwork `{}`: {}", c.gcp_subnetwork, m.join(", ")));
                    }
                }
                // A missing subnetwork is the `subnetwork` check's failure; there is nothing to test here.
                Err(e) if e.status() == Some(404) => {}
                Err(e) => gaps.push(format!("on subnetwork `{}`: not tested: {}", c.gcp_subnetwork, e)),
            }
        }
        if gaps.is_empty() {
            Check::pass(
                "permissions",
                format!(
                    "the service account has the {} permissions the flow needs ({})",
                    on_project.len() + on_subnetwork.len(),
                    on_project.iter().chain(&on_subnetwork).copied().collect::<Vec<_>>().join(", ")
                ),
            )
        } else {
            Check::fail("permissions", format!("missing {}", gaps.join("; ")))
        }
    }

    fn check_script(&self) -> Check {
        let c = &self.config;
        let template = &c.startup_script;
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
        let others: usize = c.gcp_metadata.iter().map(|m| m.key.len() + m.value.len()).sum();
        match script::package(&c.script_rules(), c.gcp_vm_installed_os_type, rendered) {
            Err(e) => Check::fail("startup_script", e.to_string()),
            Ok(s) if s.len() > METADATA_VALUE_MAX => Check::fail(
                "startup_script",
                format!("renders to {} bytes; a metadata value holds at most {METADATA_VALUE_MAX}", s.len()),
            ),
            Ok(s) if s.len() + others > METADATA_TOTAL_MAX => Check::fail(
                "startup_script",
                format!(
                    "renders to {} bytes; with gcp_metadata ({others} bytes) over the {METADATA_TOTAL_MAX} bytes of metadata an instance holds",
                    s.len()
                ),
            ),
            Ok(s) => Check::pass(
                "startup_script",
                format!(
                    "renders to {} bytes with sample values under `{}`, {} below the metadata value limit",
                    s.len(),
                    c.gcp_startup_script_type.metadata_key_for(&s),
                    METADATA_VALUE_MAX - s.len()
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_and_subnetwork_paths() {
        assert_eq!(
            image_ref("projects/ubuntu-os-cloud/global/images/ubuntu-2204-jammy-v20240319", "p"),
            Some(("ubuntu-os-cloud", "ubuntu-2204-jammy-v20240319", false))
        );
        assert_eq!(
            image_ref(
                "https://www.googleapis.com/compute/v1/projects/debian-cloud/global/images/family/debian-12",
                "p"
            ),
            Some(("debian-cloud", "debian-12", true))
        );
        assert_eq!(image_ref("my-image", "p"), Some(("p", "my-image", false)));
        assert_eq!(
            subnetwork_ref("projects/p/regions/us-east4/subnetworks/default", "x", "y"),
            Some(("p", "us-east4", "default"))
        );
        assert_eq!(subnetwork_ref("default", "p", "r"), Some(("p", "r", "default")));
    }

    #[test]
    fn the_permissions_follow_the_calls_the_config_makes() {
        let mut c = crate::providers::gcp::tests::config();
        c.startup_script = String::new();
        c.gcp_metadata = Default::default();
        c.gcp_network_tags = Default::default();
        c.gcp_service_account = None;
        c.gcp_public_ip = false;
        let (project, subnetwork) = needed_permissions(&c);
        assert_eq!(
            project,
            [
                "compute.instances.create",
                "compute.instances.get",
                "compute.instances.list",
                "compute.instances.delete",
                "compute.zoneOperations.get",
                "compute.disks.create",
                "compute.instances.setLabels"
            ]
        );
        assert_eq!(subnetwork, ["compute.subnetworks.use"]);
        c.startup_script = "#!/bin/bash\n".into();
        c.gcp_public_ip = true;
        let (project, subnetwork) = needed_permissions(&c);
        assert!(project.contains(&"compute.instances.setMetadata"));
        assert_eq!(subnetwork, ["compute.subnetworks.use", "compute.subnetworks.useExternalIp"]);
        assert_eq!(missing(&["a", "b", "c"], &["b".to_string()]), ["a", "c"]);
    }
}
