//! `kasm-autoscale preflight` for KubeVirt, read-only, one result per check: the token and CA work
//! (`GET /version`), the namespace exists, the token's RBAC allows what the provider does
//! (`SelfSubjectAccessReview` per verb and resource), the source PVC exists and is bound, and a Multus
//! network's `NetworkAttachmentDefinition` exists, and the startup script renders and fits a Secret
//! (the shared checks are in [`crate::providers::kube`]).

use serde_json::Value;

use super::{KubevirtProvider, NAME};
use crate::config::ProviderConfigCommon;
use crate::config::providers::KubeNetworkType;
use crate::providers::Check;
use crate::providers::kube::preflight as kube;

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
        let client = &self.engine.client;
        let mut out = Vec::with_capacity(CHECKS.len());
        match kube::credentials(client, NAME).await {
            Ok(c) => out.push(c),
            Err(c) => {
                out.push(c);
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
        out.push(kube::namespace(client, ns, NAME).await);
        out.push(kube::rbac(client, ns, &RBAC, NAME).await);
        let src = self.config.vm_disk_source.trim();
        out.push(if self.config.configuration_override.is_some() {
            Check::pass("disk_source", "configuration_override gives the disks; vm_disk_source not used")
        } else {
            match client
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
        let multus = (self.config.vm_network_type == KubeNetworkType::Multus
            && self.config.configuration_override.is_none())
        .then(|| self.config.vm_network_name.trim());
        out.push(kube::network(client, ns, multus, "vm_network_name", NAME).await);
        out.push(self.check_script());
        out
    }

    /// The startup script renders (with sample values) and fits the Secret's limit.
    fn check_script(&self) -> Check {
        kube::startup_script(&self.config.startup_script, &self.config.script_rules())
    }
}
