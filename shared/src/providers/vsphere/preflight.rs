//! `kasm-autoscale preflight` for vSphere: every check an operator would otherwise discover from a
//! failed clone — the vCenter session, the datacenter, the template and its VMware Tools, a linked
//! clone's snapshot, each named placement object, the datastore cluster, and the startup script —
//! read-only, one result per check.
//!
//! Privileges: the vSphere Automation REST API (the operations in VMware's API metadata) has no
//! operation that reports the session's privileges, so they are not checked here; the README lists
//! the ones the flow needs, and a missing one fails its call as PermissionDenied naming the call.

use super::{Error, Template, VsphereProvider, vim25};
use crate::config::ProviderConfigCommon;
use crate::config::providers::VsphereCloneType;
use crate::model::OsFamily;
use crate::providers::Check;
use crate::script;

/// The names of every check, in the order they are reported.
pub const CHECKS: [&str; 7] =
    ["credentials", "datacenter", "template", "snapshot", "placement", "datastore_cluster", "startup_script"];

impl VsphereProvider {
    /// Runs every check of [`CHECKS`], read-only. A refused session fails `credentials` and leaves
    /// the API checks not checked.
    pub async fn preflight(&self) -> Vec<Check> {
        let mut out = Vec::with_capacity(CHECKS.len());
        let not_checked = |name, why: &str| Check::fail(name, format!("not checked: {why}"));
        match self.client.session_user().await {
            Ok(user) => out.push(Check::pass(
                "credentials",
                format!("session created for `{user}` (POST /api/session); privileges are not reported by the API"),
            )),
            Err(e) => {
                let detail = match e.status() {
                    Some(404) => {
                        format!("{e}; is {} vCenter 7.0 U2 or later (the /api surface)?", self.client.base_url())
                    }
                    _ => e.into_provider().to_string(),
                };
                out.push(Check::fail("credentials", detail));
                for n in ["datacenter", "template", "snapshot", "placement", "datastore_cluster"] {
                    out.push(not_checked(n, "no vCenter session"));
                }
                out.push(self.check_script());
                return out;
            }
        }
        let dc = match self.datacenter().await {
            Ok(dc) => {
                out.push(Check::pass("datacenter", format!("`{}` is {dc}", self.config.datacenter_name)));
                dc
            }
            Err(e) => {
                out.push(Check::fail("datacenter", e.into_provider().to_string()));
                for n in ["template", "snapshot", "placement", "datastore_cluster"] {
                    out.push(not_checked(n, "no datacenter"));
                }
                out.push(self.check_script());
                return out;
            }
        };
        let template = self.template(&dc).await;
        out.push(match &template {
            Err(e) => Check::fail("template", e.to_string()),
            Ok(Template::Library(item)) => Check::pass(
                "template",
                format!(
                    "`{}` is the content-library VM template item {item} (deployed, not cloned); its VMware Tools \
                     cannot be read before a VM is deployed from it",
                    self.config.vm_template_name
                ),
            ),
            Ok(Template::Vm(vm)) => match self.client.tools(vm).await {
                Ok(t) if t.version_status.as_deref() == Some("NOT_INSTALLED") => Check::fail(
                    "template",
                    format!(
                        "`{}` ({vm}) has no VMware Tools; the startup script runs through them",
                        self.config.vm_template_name
                    ),
                ),
                Ok(t) => Check::pass(
                    "template",
                    format!(
                        "`{}` is {vm}; VMware Tools {} ({})",
                        self.config.vm_template_name,
                        t.version.as_deref().unwrap_or("of unknown version"),
                        t.version_status.as_deref().unwrap_or("status not reported")
                    ),
                ),
                Err(e) => Check::fail("template", e.into_provider().to_string()),
            },
        });
        out.push(self.check_snapshot(&template).await);
        out.push(match self.placement(&dc).await {
            Ok(p) => {
                let mut parts = Vec::new();
                for (field, v) in [
                    ("folder", &p.folder),
                    ("cluster", &p.cluster),
                    ("resource pool", &p.resource_pool),
                    ("datastore", &p.datastore),
                ] {
                    parts.push(format!("{field} {}", v.as_deref().unwrap_or("of the template")));
                }
                Check::pass("placement", parts.join(", "))
            }
            Err(e) => Check::fail("placement", e.into_provider().to_string()),
        });
        out.push(self.check_pod(&dc).await);
        out.push(self.check_script());
        out
    }

    /// `snapshot`: with `clone_type: linked`, `vm_snapshot_name` is one snapshot of the template
    /// (read over vim25: the template's `snapshot` tree).
    async fn check_snapshot(&self, template: &Result<Template, Error>) -> Check {
        let Some(name) =
            self.config.vm_snapshot_name.as_deref().filter(|_| self.config.clone_type == VsphereCloneType::Linked)
        else {
            return Check::pass("snapshot", "not used: full clones (clone_type: full)");
        };
        match template {
            Err(_) => Check::fail("snapshot", "not checked: no template"),
            Ok(Template::Library(item)) => Check::fail(
                "snapshot",
                format!("vm_template_name names the content-library item {item}, which has no snapshots"),
            ),
            Ok(Template::Vm(vm)) => match self.vim_snapshot(vm).await {
                Ok(s) => Check::pass(
                    "snapshot",
                    format!(
                        "`{name}` is {} of {vm} (linked clones over vim25, SOAPAction {})",
                        s.value,
                        vim25::SOAP_ACTION
                    ),
                ),
                Err(e) => Check::fail("snapshot", e.into_provider().to_string()),
            },
        }
    }

    /// `datastore_cluster`: `datastore_cluster_name` is a datastore cluster (StoragePod) of the
    /// datacenter (over vim25).
    async fn check_pod(&self, dc: &str) -> Check {
        let Some(name) = self.config.datastore_cluster_name.as_deref() else {
            return Check::pass("datastore_cluster", "not used (no datastore_cluster_name)");
        };
        match self.vim_pod(dc).await {
            Ok(p) => Check::pass(
                "datastore_cluster",
                format!("`{name}` is the datastore cluster {} (Storage DRS places each clone)", p.value),
            ),
            Err(e) => Check::fail("datastore_cluster", e.into_provider().to_string()),
        }
    }

    fn check_script(&self) -> Check {
        let template = &self.config.startup_script;
        if template.trim().is_empty() {
            return Check::pass(
                "startup_script",
                "empty: the template itself must install and register the Kasm agent",
            );
        }
        let vars: script::Vars =
            script::PLACEHOLDERS.iter().map(|n| (n.to_string(), Some(format!("sample-{n}")))).collect();
        let rendered = match script::render(template, &vars) {
            Ok(r) => r,
            Err(e) => return Check::fail("startup_script", format!("does not render: {e}")),
        };
        let os = self.config.os_family;
        match script::package(&self.config.script_rules(), os, rendered) {
            Err(e) => Check::fail("startup_script", e.to_string()),
            Ok(s) => Check::pass(
                "startup_script",
                format!(
                    "renders with sample values ({} bytes, run by {} as guest user `{}`); guest operations document no size limit",
                    s.len(),
                    if os == OsFamily::Windows { "PowerShell" } else { "/bin/bash" },
                    self.config.guest_vm_username
                ),
            ),
        }
    }
}
