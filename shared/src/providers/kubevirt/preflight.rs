//! `kasm-autoscale preflight` for KubeVirt, read-only, one result per check: the token and CA work
//! (`GET /version`), the namespace exists, the token's RBAC allows what the provider does
//! (`SelfSubjectAccessReview` per verb and resource), the source PVC exists and is bound, and a Multus
//! network's `NetworkAttachmentDefinition` exists, and the startup script renders and fits a Secret.

use serde_json::{Value, json};

use super::{KubevirtProvider, NAME};
use crate::config::ProviderConfigCommon;
use crate::config::providers::KubeNetworkType;
use crate::model::OsFamily;
use crate::providers::Check;
use crate::script;

/// The names of every check, in the order they are reported.
pub const CHECKS: [&str; 6] = ["credentials", "namespace", "permissions", "disk_source", "network", "startup_script"];

/// What the provider does, as (API group, resource, verbs): create/get/list/delete on the three kinds it
/// makes, and get/list on the VMIs it reads.
pub const RBAC: [(&str, &str, &[&str]); 5] = [
    ("kubevirt.io", "virtualmachines", &["create", "get", "list", "delete"]),
    ("kubevirt.io", "virtualmachineinstances", &["get", "list"]),
    ("", "secrets", &["create", "get", "list", "delete"]),
    ("cdi.kubevirt.io", "datavolumes", &["create", "get", "list", "delete"]),
    ("", "persistentvolumeclaims", &["get", "list", "delete"]),
];

impl KubevirtProvider {
    /// Runs every check of [`CHECKS`]. A token or CA the API refuses fails `credentials` and leaves the
    /// others not checked.
    pub async fn preflight(&self) -> Vec<Check> {
        let mut out = Vec::with_capacity(CHECKS.len());
        match self.client.get(&["version"], "read the API server version").await {
            Ok(v) => out.push(Check::pass(
                "credentials",
                format!(
                    "token and CA accepted (GET /version: Kubernetes {})",
                    v.get("gitVersion").and_then(Value::as_str).unwrap_or("of unknown version")
                ),
            )),
            Err(e) => {
                out.push(Check::fail("credentials", e.into_provider(NAME).to_string()));
                out.extend(
                    CHECKS[1..CHECKS.len() - 1]
                        .iter()
                        .map(|n| Check::fail(n, "not checked: the API could not be used")),
                );
                out.push(self.check_script());
                return out;
            }
        }
        let ns = self.ns();
        out.push(match self.client.get_opt(&["api", "v1", "namespaces", ns], "read the namespace").await {
            Ok(Some(_)) => Check::pass("namespace", format!("namespace `{ns}` exists")),
            Ok(None) => Check::fail("namespace", format!("vm_namespace `{ns}` does not exist")),
            // A token scoped to its namespace may not read namespaces: the RBAC check below says more.
            Err(e) if e.status() == Some(403) => {
                Check::pass("namespace", format!("namespace `{ns}` not readable by this token (403); not checked"))
            }
            Err(e) => Check::fail("namespace", e.into_provider(NAME).to_string()),
        });
        out.push(self.check_rbac().await);
        let src = self.config.vm_disk_source.trim();
        out.push(if self.config.configuration_override.is_some() {
            Check::pass("disk_source", "configuration_override gives the disks; vm_disk_source not used")
        } else {
            match self
                .client
                .get_opt(&["api", "v1", "namespaces", ns, "persistentvolumeclaims", src], "read the source PVC")
                .await
            {
                Ok(Some(pvc)) => match pvc.pointer("/status/phase").and_then(Value::as_str) {
                    Some("Bound") => Check::pass("disk_source", format!("PVC `{ns}/{src}` exists and is Bound")),
                    other => Check::fail(
                        "disk_source",
                        format!(
                            "PVC `{ns}/{src}` is {} (must be Bound to be cloned)",
                            other.unwrap_or("without a phase")
                        ),
                    ),
                },
                Ok(None) => Check::fail("disk_source", format!("vm_disk_source: no PVC `{src}` in namespace `{ns}`")),
                Err(e) => Check::fail("disk_source", e.into_provider(NAME).to_string()),
            }
        });
        out.push(self.check_network().await);
        out.push(self.check_script());
        out
    }

    /// The startup script renders (with sample values) and fits the Secret's limit.
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
                format!("renders to {} bytes with sample values (a Secret holds at most 1 MiB)", s.len()),
            ),
        }
    }

    async fn check_rbac(&self) -> Check {
        let ns = self.ns();
        let mut denied = Vec::new();
        for (group, resource, verbs) in RBAC {
            for verb in verbs {
                let body = json!({
                    "apiVersion": "authorization.k8s.io/v1",
                    "kind": "SelfSubjectAccessReview",
                    "spec": {"resourceAttributes": {"namespace": ns, "verb": verb, "group": group, "resource": resource}},
                });
                let path = ["apis", "authorization.k8s.io", "v1", "selfsubjectaccessreviews"];
                match self.client.post(&path, &body, "review the token's access", None).await {
                    Ok(v) if v.pointer("/status/allowed").and_then(Value::as_bool) == Some(true) => {}
                    Ok(_) => denied.push(if group.is_empty() {
                        format!("{verb} {resource}")
                    } else {
                        format!("{verb} {resource}.{group}")
                    }),
                    Err(e) => return Check::fail("permissions", e.into_provider(NAME).to_string()),
                }
            }
        }
        if denied.is_empty() {
            Check::pass("permissions", format!("the token may do everything the provider does in `{ns}`"))
        } else {
            Check::fail(
                "permissions",
                format!("the token's Role in `{ns}` lacks: {} (see the README's minimal Role)", denied.join(", ")),
            )
        }
    }

    async fn check_network(&self) -> Check {
        let name = self.config.vm_network_name.trim();
        if self.config.vm_network_type != KubeNetworkType::Multus || self.config.configuration_override.is_some() {
            return Check::pass("network", "pod network (nothing to look up)");
        }
        // A Multus network name is `name` (the VM's namespace) or `namespace/name`.
        let (ns, n) = name.split_once('/').unwrap_or((self.ns(), name));
        let path = ["apis", "k8s.cni.cncf.io", "v1", "namespaces", ns, "network-attachment-definitions", n];
        match self.client.get_opt(&path, "read the NetworkAttachmentDefinition").await {
            Ok(Some(_)) => Check::pass("network", format!("NetworkAttachmentDefinition `{ns}/{n}` exists")),
            Ok(None) => Check::fail("network", format!("vm_network_name: no NetworkAttachmentDefinition `{ns}/{n}`")),
            Err(e) => Check::fail("network", e.into_provider(NAME).to_string()),
        }
    }
}
