//! `kasm-autoscale preflight` for Harvester, read-only, one result per check: the token and CA work
//! (`GET /version`), the namespace exists, the token's RBAC allows what the provider does
//! (`SelfSubjectAccessReview` per verb and resource), the `disk_image` VirtualMachineImage exists, is
//! imported and has a storage class, a Multus network's `NetworkAttachmentDefinition` exists, and the
//! startup script renders and fits a Secret (the shared checks are in [`crate::providers::kube`]).

use super::{HarvesterProvider, NAME};
use crate::config::ProviderConfigCommon;
use crate::config::providers::KubeNetworkType;
use crate::providers::Check;
use crate::providers::kube::preflight as kube;

/// The names of every check, in the order they are reported.
pub const CHECKS: [&str; 6] = ["credentials", "namespace", "permissions", "disk_image", "network", "startup_script"];

/// What the provider does, as (API group, resource, verbs): create/get/list/delete on the kinds it
/// makes (the PVCs are made by Harvester's controller, and deleted and listed by us), get/list on the
/// VMIs it reads, get on the images.
pub const RBAC: [(&str, &str, &[&str]); 6] = [
    ("kubevirt.io", "virtualmachines", &["create", "get", "list", "delete"]),
    ("kubevirt.io", "virtualmachineinstances", &["get", "list"]),
    ("", "secrets", &["create", "get", "list", "delete"]),
    ("harvesterhci.io", "keypairs", &["create", "get", "list", "delete"]),
    ("", "persistentvolumeclaims", &["get", "list", "delete"]),
    ("harvesterhci.io", "virtualmachineimages", &["get"]),
];

impl HarvesterProvider {
    /// Runs every check of [`CHECKS`]. A token or CA the API refuses fails `credentials` and leaves the
    /// others not checked.
    pub async fn preflight(&self) -> Vec<Check> {
        let client = &self.engine.client;
        let script = kube::startup_script(&self.config.startup_script, &self.config.script_rules());
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
                out.push(script);
                return out;
            }
        }
        let ns = self.ns();
        out.push(kube::namespace(client, ns, NAME).await);
        let rules: &[(&str, &str, &[&str])] = if self.config.vm_ssh_public_key.is_some() {
            &RBAC
        } else {
            // No KeyPairs are made without an SSH key.
            &[RBAC[0], RBAC[1], RBAC[2], RBAC[4], RBAC[5]]
        };
        out.push(kube::rbac(client, ns, rules, NAME).await);
        out.push(if self.config.configuration_override.is_some() {
            Check::pass("disk_image", "configuration_override gives the disks; disk_image not used")
        } else {
            match self.image().await {
                Ok(img) => Check::pass(
                    "disk_image",
                    format!("VirtualMachineImage `{}` is imported (storage class `{}`)", img.id, img.storage_class),
                ),
                Err(e) => Check::fail("disk_image", e.into_provider(NAME).to_string()),
            }
        });
        let multus = (self.config.network_type == KubeNetworkType::Multus
            && self.config.configuration_override.is_none())
        .then(|| self.config.network_name.as_deref().unwrap_or_default().trim());
        out.push(kube::network(client, ns, multus, "network_name", NAME).await);
        out.push(script);
        out
    }
}
