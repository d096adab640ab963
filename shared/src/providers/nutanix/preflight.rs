//! `kasm-autoscale preflight` for Nutanix: every check an operator would otherwise discover from a
//! failed clone — the credentials and the API (v3, or v4's VMM v4.3 namespace), the VM candidate
//! (exists, unique), its cluster, and the startup script (rendered, packaged, within v4's user-data
//! limit) — read-only, one result per check.

use base64::Engine as _;

use super::{NutanixProvider, labels};
use crate::config::ProviderConfigCommon;
use crate::config::providers::{NutanixApiVersion, V4_USER_DATA_MAX};
use crate::model::OsFamily;
use crate::providers::Check;
use crate::script;

/// The names of every check, in the order they are reported.
pub const CHECKS: [&str; 4] = ["credentials", "vm_candidate", "cluster", "startup_script"];

impl NutanixProvider {
    /// Runs every check of [`CHECKS`], read-only. Credentials the API refuses fail `credentials` and
    /// leave the API checks not checked.
    pub async fn preflight(&self) -> Vec<Check> {
        if self.v4.is_some() {
            return self.preflight_v4().await;
        }
        let mut out = Vec::with_capacity(CHECKS.len());
        match self.client.probe().await {
            Ok(n) => out.push(Check::pass(
                "credentials",
                format!(
                    "user `{}` accepted and the v3 API answers (POST /api/nutanix/v3/vms/list: {n} VMs visible)",
                    self.config.username
                ),
            )),
            Err(e) => {
                let detail = match e.status() {
                    Some(404) => {
                        format!("{e}; is {} Prism Central with the v3 API (/api/nutanix/v3)?", self.client.base_url())
                    }
                    Some(403) => format!("{e}; the user's role must allow listing, cloning, updating and deleting VMs"),
                    _ => e.into_provider().to_string(),
                };
                out.push(Check::fail("credentials", detail));
                out.push(Check::fail("vm_candidate", "not checked: the API could not be used"));
                out.push(Check::fail("cluster", "not checked: the API could not be used"));
                out.push(self.check_script());
                return out;
            }
        }
        let candidate = match self.candidate().await {
            Ok(c) if labels::is_ours(c.description()) => {
                out.push(Check::fail(
                    "vm_candidate",
                    format!(
                        "`{}` ({}) is a VM kasm-autoscale made (its description carries our labels), not a template",
                        self.config.vm_candidate_name, c.metadata.uuid
                    ),
                ));
                None
            }
            Ok(c) => {
                out.push(Check::pass(
                    "vm_candidate",
                    format!(
                        "`{}` is VM {} (power state {})",
                        self.config.vm_candidate_name,
                        c.metadata.uuid,
                        if c.power_state().is_empty() { "unknown" } else { c.power_state() }
                    ),
                ));
                Some(c)
            }
            Err(e) => {
                out.push(Check::fail("vm_candidate", e.into_provider().to_string()));
                None
            }
        };
        out.push(match candidate.as_ref().map(|c| c.cluster().cloned()) {
            None => Check::fail("cluster", "not checked: no usable VM candidate"),
            Some(None) => Check::fail("cluster", "the VM candidate names no cluster_reference"),
            Some(Some(r)) => match self.client.clusters().await {
                Ok(cs) => match cs.iter().find(|c| c.metadata.uuid == r.uuid) {
                    None => Check::fail(
                        "cluster",
                        format!(
                            "the candidate's cluster {} is not listed by POST /api/nutanix/v3/clusters/list",
                            r.uuid
                        ),
                    ),
                    Some(c) => {
                        let name = c.status.as_ref().and_then(|s| s.name.clone()).unwrap_or_else(|| r.uuid.clone());
                        let state = c.status.as_ref().and_then(|s| s.state.clone()).unwrap_or_default();
                        if !state.is_empty() && state != "COMPLETE" {
                            Check::fail("cluster", format!("cluster `{name}` is in state {state}"))
                        } else {
                            // The v3 cluster entity carries no free memory or CPU figures
                            // (`ClusterDefStatus`), so room for one clone cannot be checked here.
                            Check::pass(
                                "cluster",
                                format!(
                                    "clones go to cluster `{name}` ({}); its free memory and CPU are not reported by \
                                     the v3 cluster API and are not checked",
                                    r.uuid
                                ),
                            )
                        }
                    }
                },
                Err(e) => Check::fail("cluster", e.into_provider().to_string()),
            },
        });
        out.push(self.check_script());
        out
    }

    /// [`CHECKS`] through the v4 APIs.
    async fn preflight_v4(&self) -> Vec<Check> {
        let mut out = Vec::with_capacity(CHECKS.len());
        let v4 = self.v4.as_ref().expect("a v4 client");
        match v4.probe().await {
            Ok(n) => out.push(Check::pass(
                "credentials",
                format!(
                    "user `{}` accepted and the VMM v4.3 API answers (GET /api/vmm/v4.3/ahv/config/vms: {} VMs visible)",
                    self.config.username,
                    n.map_or_else(|| "some".to_string(), |n| n.to_string())
                ),
            )),
            Err(e) => {
                let detail = match e.status() {
                    Some(404) => format!(
                        "{e}; does Prism Central {} serve the VMM v4.3 and Prism v4.4 APIs (/api/vmm/v4.3, \
                         /api/prism/v4.4)? Older versions: use api_version v3",
                        self.client.base_url()
                    ),
                    Some(403) => format!("{e}; the user's role must allow listing, cloning, updating and deleting VMs"),
                    _ => e.into_provider().to_string(),
                };
                out.push(Check::fail("credentials", detail));
                out.push(Check::fail("vm_candidate", "not checked: the API could not be used"));
                out.push(Check::fail("cluster", "not checked: the API could not be used"));
                out.push(self.check_script());
                return out;
            }
        }
        let candidate = match self.candidate_v4().await {
            Ok(c) if labels::is_ours(c.description()) => {
                out.push(Check::fail(
                    "vm_candidate",
                    format!(
                        "`{}` ({}) is a VM kasm-autoscale made (its description carries our labels), not a template",
                        self.config.vm_candidate_name, c.ext_id
                    ),
                ));
                None
            }
            Ok(c) => {
                out.push(Check::pass(
                    "vm_candidate",
                    format!(
                        "`{}` is VM {} (power state {})",
                        self.config.vm_candidate_name,
                        c.ext_id,
                        if c.power_state().is_empty() { "unknown" } else { c.power_state() }
                    ),
                ));
                Some(c)
            }
            Err(e) => {
                out.push(Check::fail("vm_candidate", e.into_provider().to_string()));
                None
            }
        };
        out.push(match candidate.as_ref().map(|c| c.cluster().map(str::to_string)) {
            None => Check::fail("cluster", "not checked: no usable VM candidate"),
            Some(None) => Check::fail("cluster", "the VM candidate names no cluster (its `cluster.extId`)"),
            // The cluster's free memory and CPU are in the v4 clustermgmt API, which this version does
            // not call (its spec is not among the ones we follow), so room for one clone is not checked.
            Some(Some(id)) => Check::pass(
                "cluster",
                format!(
                    "clones go to the candidate's cluster {id}; its free memory and CPU are not checked (the v4 \
                     clustermgmt API is not used)"
                ),
            ),
        });
        out.push(self.check_script());
        out
    }

    fn check_script(&self) -> Check {
        let template = &self.config.startup_script;
        if template.trim().is_empty() {
            return Check::pass(
                "startup_script",
                "empty: the VM candidate itself must install and register the Kasm agent",
            );
        }
        let vars: script::Vars =
            script::PLACEHOLDERS.iter().map(|n| (n.to_string(), Some(format!("sample-{n}")))).collect();
        let rendered = match script::render(template, &vars) {
            Ok(r) => r,
            Err(e) => return Check::fail("startup_script", format!("does not render: {e}")),
        };
        let rules = self.config.script_rules();
        let mut notes = Vec::new();
        for os in [OsFamily::Linux, OsFamily::Windows] {
            match script::package(&rules, os, rendered.clone()) {
                Err(e) => return Check::fail("startup_script", e.to_string()),
                Ok(s) => notes.push(format!(
                    "{os:?}: {} bytes, {} as base64 user_data",
                    s.len(),
                    base64::engine::general_purpose::STANDARD.encode(s.as_bytes()).len()
                )),
            }
        }
        let limit = match self.config.api_version {
            NutanixApiVersion::V3 => "the v3 structures document no size limit".to_string(),
            NutanixApiVersion::V4 => format!("v4 takes at most {V4_USER_DATA_MAX} base64 characters"),
        };
        Check::pass("startup_script", format!("renders with sample values ({}); {limit}", notes.join("; ")))
    }
}
