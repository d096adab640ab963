//! `kasm-autoscale preflight` for Proxmox: every check an operator would otherwise discover from a
//! failed provisioning — credentials, the token's privileges, the template, the target node, free
//! VMIDs and the startup script's size — read-only, one result per check.

use std::collections::BTreeSet;

use super::client::{Permissions, Resource};
use super::{FILE_WRITE_MAX, ProxmoxProvider};
use crate::config::ProviderConfigCommon;
use crate::config::providers::ProxmoxConfig;
use crate::providers::Check;
use crate::script;

/// The names of every check, in the order they are reported.
pub const CHECKS: [&str; 6] = ["credentials", "permissions", "template", "node", "vmid_range", "startup_script"];

/// The failed credentials check, the API checks as not checked, and the script check (no API needed).
fn not_checked(first: Check, config: &ProxmoxConfig) -> Vec<Check> {
    let mut out = vec![first];
    let api = &CHECKS[1..CHECKS.len() - 1];
    out.extend(api.iter().map(|n| Check::fail(n, "not checked: the API could not be used")));
    out.push(ProxmoxProvider::check_script(config));
    out
}

/// Whether `privilege` is granted on `path`: the closest path of the map at or above `path`
/// decides (what `/access/permissions` returns is already effective), and an ancestor's privilege
/// counts only when it propagates.
pub(crate) fn granted(perms: &Permissions, path: &str, privilege: &str) -> bool {
    let mut p = path.trim_end_matches('/').to_string();
    let mut exact = true;
    loop {
        let key = if p.is_empty() { "/" } else { p.as_str() };
        if let Some(privs) = perms.get(key) {
            return match privs.get(privilege) {
                None => false,
                Some(_) if exact => true,
                Some(v) => v.as_bool().unwrap_or_else(|| v.as_u64().is_some_and(|n| n != 0)),
            };
        }
        if p.is_empty() {
            return false;
        }
        p.truncate(p.rfind('/').unwrap_or(0));
        exact = false;
    }
}

/// Whether a VM config's `agent` value (`1`, `enabled=1,fstrim_cloned_disks=1`, `0`, absent)
/// enables the guest agent.
fn agent_enabled(v: Option<&serde_json::Value>) -> bool {
    match v {
        Some(serde_json::Value::Number(n)) => n.as_u64().is_some_and(|n| n != 0),
        Some(serde_json::Value::String(s)) => {
            s.split(',').any(|p| matches!(p.trim(), "1" | "enabled=1" | "enabled=true"))
        }
        _ => false,
    }
}

impl ProxmoxProvider {
    /// Runs every preflight check with this provider's endpoint and token.
    pub async fn preflight(&self) -> Vec<Check> {
        let version = match self.client.version().await {
            Ok(v) => v,
            Err(e) => return not_checked(Check::fail("credentials", e.into_provider().to_string()), &self.config),
        };
        let mut out = vec![Check::pass(
            "credentials",
            format!("Proxmox VE {} accepts token {}!{}", version.version, self.config.username, self.config.token_name),
        )];
        let vms = self.client.vms().await;
        let template = vms.as_ref().ok().and_then(|v| self.template(v).ok().cloned());
        out.push(match self.client.permissions().await {
            Ok(perms) => self.check_permissions(&perms, template.as_ref()),
            Err(e) => Check::fail("permissions", e.into_provider().to_string()),
        });
        out.push(match (&vms, &template) {
            (Err(e), _) => Check::fail("template", e.to_string()),
            (Ok(_), None) => Check::fail(
                "template",
                format!(
                    "no template named `{}` is visible to the token (convert the VM to a template, or grant VM.Audit)",
                    self.config.template_name
                ),
            ),
            (Ok(_), Some(t)) => self.check_template(t).await,
        });
        out.push(self.check_node(template.as_ref()).await);
        out.push(match &vms {
            Err(e) => Check::fail("vmid_range", e.to_string()),
            Ok(v) => self.check_range(v),
        });
        out.push(Self::check_script(&self.config));
        out
    }

    fn check_permissions(&self, perms: &Permissions, template: Option<&Resource>) -> Check {
        let pool = self.config.resource_pool_name.as_deref().filter(|p| !p.is_empty());
        let pool_path = pool.map(|p| format!("/pool/{p}"));
        // Privileges on new VMs come from /vms or, for VMs cloned into it, the pool.
        let vm_paths: Vec<String> = std::iter::once("/vms".to_string()).chain(pool_path.clone()).collect();
        let template_paths: Vec<String> = match template {
            Some(t) => std::iter::once(format!("/vms/{}", t.vmid))
                .chain(t.pool.as_ref().map(|p| format!("/pool/{p}")))
                .collect(),
            None => vec!["/vms".into()],
        };
        let storage_path = match self.config.storage_pool_name.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => format!("/storage/{s}"),
            None => "/storage".into(),
        };
        let node =
            self.config.target_node_name.as_deref().filter(|n| !n.is_empty()).unwrap_or(&self.config.cluster_node_name);
        let mut need: Vec<(Vec<String>, Vec<&str>)> = vec![
            (template_paths, vec!["VM.Clone"]),
            (vm_paths.clone(), vec!["VM.Allocate"]),
            (vm_paths.clone(), vec!["VM.Config.CPU"]),
            (vm_paths.clone(), vec!["VM.Config.Memory"]),
            (vm_paths.clone(), vec!["VM.Config.Options"]),
            (vm_paths.clone(), vec!["VM.PowerMgmt"]),
            // Proxmox VE 9 split guest-agent access out of VM.Monitor.
            (vm_paths, vec!["VM.GuestAgent.Unrestricted", "VM.Monitor"]),
            // Every VM must be visible, or VMIDs in use elsewhere look free.
            (vec!["/vms".into()], vec!["VM.Audit"]),
            (vec![storage_path], vec!["Datastore.AllocateSpace"]),
            (vec![format!("/nodes/{node}")], vec!["Sys.Audit"]),
        ];
        if let Some(p) = pool_path {
            need.push((vec![p], vec!["Pool.Allocate"]));
        }
        let missing: Vec<String> = need
            .iter()
            .filter(|(paths, privs)| !paths.iter().any(|p| privs.iter().any(|v| granted(perms, p, v))))
            .map(|(paths, privs)| format!("{} on {}", privs.join(" or "), paths.join(" or ")))
            .collect();
        if missing.is_empty() {
            Check::pass("permissions", "the token holds every privilege provisioning needs")
        } else {
            Check::fail("permissions", format!("the token lacks {}", missing.join("; ")))
        }
    }

    /// The template exists (found by the caller) and has the QEMU guest agent enabled.
    async fn check_template(&self, t: &Resource) -> Check {
        let name = &self.config.template_name;
        let config = match self.client.vm_config(&t.node, t.vmid).await {
            Ok(c) => c,
            Err(e) => {
                return Check::fail(
                    "template",
                    format!("`{name}` is VMID {} but its config is unreadable: {e}", t.vmid),
                );
            }
        };
        if !agent_enabled(config.get("agent")) {
            return Check::fail(
                "template",
                format!(
                    "`{name}` (VMID {}) has the QEMU Guest Agent option off: the startup script could never be \
                     run; enable it (agent: 1) and install qemu-guest-agent in the template",
                    t.vmid
                ),
            );
        }
        let mut detail = format!("`{name}` is VMID {} on node {}, guest agent enabled", t.vmid, t.node);
        if t.node != self.config.cluster_node_name {
            detail.push_str(&format!(
                " (cluster_node_name says {}; the template's node is used)",
                self.config.cluster_node_name
            ));
        }
        Check::pass("template", detail)
    }

    async fn check_node(&self, template: Option<&Resource>) -> Check {
        let node = match (self.config.target_node_name.as_deref().filter(|n| !n.is_empty()), template) {
            (Some(n), _) => n.to_string(),
            (None, Some(t)) => t.node.clone(),
            (None, None) => self.config.cluster_node_name.clone(),
        };
        match self.client.nodes().await {
            Err(e) => Check::fail("node", e.to_string()),
            Ok(nodes) => match nodes.iter().find(|n| n.node == node) {
                Some(n) if n.status.as_deref() == Some("online") => Check::pass("node", format!("{node} is online")),
                Some(n) => Check::fail(
                    "node",
                    format!(
                        "{node} is {}; new VMs are created there",
                        n.status.as_deref().unwrap_or("in an unknown state")
                    ),
                ),
                None => Check::fail("node", format!("no node named {node} in the cluster")),
            },
        }
    }

    fn check_range(&self, vms: &[Resource]) -> Check {
        let used: BTreeSet<u32> = vms.iter().map(|r| r.vmid).filter(|id| self.range().contains(id)).collect();
        let total = u64::from(self.config.vmid_range_upper - self.config.vmid_range_lower) + 1;
        let free = total - used.len() as u64;
        let range = format!("{}..={}", self.config.vmid_range_lower, self.config.vmid_range_upper);
        if free == 0 {
            Check::fail("vmid_range", format!("all {total} VMIDs of {range} are in use"))
        } else if free < u64::from(self.config.max_instances) {
            Check::fail(
                "vmid_range",
                format!(
                    "{free} of {total} VMIDs of {range} are free, fewer than max_instances ({})",
                    self.config.max_instances
                ),
            )
        } else {
            Check::pass("vmid_range", format!("{free} of {total} VMIDs of {range} are free"))
        }
    }

    /// The startup script renders and fits the guest agent's file-write (needs no API).
    fn check_script(config: &ProxmoxConfig) -> Check {
        let template = &config.startup_script;
        if template.trim().is_empty() {
            return Check::pass(
                "startup_script",
                "empty: the template itself must install and register the Kasm agent",
            );
        }
        // Sample values: the real ones (tokens, certificates) can be longer; the margin says how much.
        let vars: script::Vars =
            script::PLACEHOLDERS.iter().map(|n| (n.to_string(), Some(format!("sample-{n}")))).collect();
        let rendered = match script::render(template, &vars) {
            Ok(r) => r,
            Err(e) => return Check::fail("startup_script", format!("does not render: {e}")),
        };
        match script::package(&config.script_rules(), config.installed_os_type, rendered) {
            Err(e) => Check::fail("startup_script", e.to_string()),
            Ok(s) if s.len() > FILE_WRITE_MAX => Check::fail(
                "startup_script",
                format!("renders to {} bytes; the guest agent's file-write takes at most {FILE_WRITE_MAX}", s.len()),
            ),
            Ok(s) => Check::pass(
                "startup_script",
                format!(
                    "renders to {} bytes with sample values, {} below the file-write limit of {FILE_WRITE_MAX}",
                    s.len(),
                    FILE_WRITE_MAX - s.len()
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn perms(v: serde_json::Value) -> Permissions {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn privileges_propagate_only_when_marked() {
        let p = perms(json!({
            "/": {"Sys.Audit": 1},
            "/vms": {"VM.Allocate": 1, "VM.Clone": 0},
            "/vms/9000": {"VM.Audit": 1},
            "/storage/local-lvm": {"Datastore.AllocateSpace": true},
        }));
        assert!(granted(&p, "/vms/123", "VM.Allocate"));
        assert!(!granted(&p, "/vms/123", "VM.Clone"), "not propagated");
        assert!(granted(&p, "/vms", "VM.Clone"), "exact path");
        // The closest path decides: /vms/9000 has its own entry without VM.Allocate.
        assert!(!granted(&p, "/vms/9000", "VM.Allocate"));
        assert!(granted(&p, "/nodes/pve1", "Sys.Audit"));
        assert!(granted(&p, "/storage/local-lvm", "Datastore.AllocateSpace"));
        assert!(!granted(&p, "/storage/other", "Datastore.AllocateSpace"));
        assert!(!granted(&perms(json!({})), "/vms", "VM.Audit"));
    }

    #[test]
    fn agent_option_shapes() {
        for (v, on) in [
            (json!("1"), true),
            (json!("enabled=1,fstrim_cloned_disks=1"), true),
            (json!("1,type=virtio"), true),
            (json!("0"), false),
            (json!("enabled=0"), false),
            (json!(1), true),
        ] {
            assert_eq!(agent_enabled(Some(&v)), on, "{v}");
        }
        assert!(!agent_enabled(None));
    }
}
