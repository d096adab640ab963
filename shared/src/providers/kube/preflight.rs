//! The preflight checks both Kubernetes providers make, read-only: the token and CA work
//! (`GET /version`), the namespace exists, the token's RBAC allows what the provider does
//! (`SelfSubjectAccessReview` per verb and resource), a Multus network's
//! `NetworkAttachmentDefinition` exists, and the startup script renders and fits a Secret.

use serde_json::{Value, json};

use super::client::Client;
use crate::model::OsFamily;
use crate::providers::Check;
use crate::script::{self, ScriptRules};

/// `credentials`: `GET /version` with the token; `Err` (a failed check) when the API refuses it.
pub(crate) async fn credentials(client: &Client, provider: &'static str) -> Result<Check, Check> {
    match client.get(&["version"], "read the API server version").await {
        Ok(v) => Ok(Check::pass(
            "credentials",
            format!(
                "token and CA accepted (GET /version: Kubernetes {})",
                v.get("gitVersion").and_then(Value::as_str).unwrap_or("of unknown version")
            ),
        )),
        Err(e) => Err(Check::fail("credentials", e.into_provider(provider).to_string())),
    }
}

/// `namespace`: the VM namespace exists.
pub(crate) async fn namespace(client: &Client, ns: &str, provider: &'static str) -> Check {
    match client.get_opt(&["api", "v1", "namespaces", ns], "read the namespace").await {
        Ok(Some(_)) => Check::pass("namespace", format!("namespace `{ns}` exists")),
        Ok(None) => Check::fail("namespace", format!("vm_namespace `{ns}` does not exist")),
        // A token scoped to its namespace may not read namespaces: the RBAC check says more.
        Err(e) if e.status() == Some(403) => {
            Check::pass("namespace", format!("namespace `{ns}` not readable by this token (403); not checked"))
        }
        Err(e) => Check::fail("namespace", e.into_provider(provider).to_string()),
    }
}

/// `permissions`: one `SelfSubjectAccessReview` per (API group, resource, verb) of `rules`.
pub(crate) async fn rbac(client: &Client, ns: &str, rules: &[(&str, &str, &[&str])], provider: &'static str) -> Check {
    let mut denied = Vec::new();
    for (group, resource, verbs) in rules {
        for verb in *verbs {
            let body = json!({
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {"namespace": ns, "verb": verb, "group": group, "resource": resource}},
            });
            let path = ["apis", "authorization.k8s.io", "v1", "selfsubjectaccessreviews"];
            match client.post(&path, &body, "review the token's access", None).await {
                Ok(v) if v.pointer("/status/allowed").and_then(Value::as_bool) == Some(true) => {}
                Ok(_) => denied.push(if group.is_empty() {
                    format!("{verb} {resource}")
                } else {
                    format!("{verb} {resource}.{group}")
                }),
                Err(e) => return Check::fail("permissions", e.into_provider(provider).to_string()),
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

/// `network`: for a Multus network `name` (`name` in the VM namespace, or `namespace/name`), its
/// NetworkAttachmentDefinition exists; `field` names the config field.
pub(crate) async fn network(
    client: &Client,
    ns: &str,
    multus: Option<&str>,
    field: &str,
    provider: &'static str,
) -> Check {
    let Some(name) = multus else {
        return Check::pass("network", "pod network (nothing to look up)");
    };
    let (ns, n) = name.split_once('/').unwrap_or((ns, name));
    let path = ["apis", "k8s.cni.cncf.io", "v1", "namespaces", ns, "network-attachment-definitions", n];
    match client.get_opt(&path, "read the NetworkAttachmentDefinition").await {
        Ok(Some(_)) => Check::pass("network", format!("NetworkAttachmentDefinition `{ns}/{n}` exists")),
        Ok(None) => Check::fail("network", format!("{field}: no NetworkAttachmentDefinition `{ns}/{n}`")),
        Err(e) => Check::fail("network", e.into_provider(provider).to_string()),
    }
}

/// `startup_script`: renders (with sample values) and fits the Secret's limit.
pub(crate) fn startup_script(template: &str, rules: &ScriptRules) -> Check {
    if template.trim().is_empty() {
        return Check::pass("startup_script", "empty: the image itself must install and register the Kasm agent");
    }
    let vars: script::Vars =
        script::PLACEHOLDERS.iter().map(|n| (n.to_string(), Some(format!("sample-{n}")))).collect();
    let rendered = match script::render(template, &vars) {
        Ok(r) => r,
        Err(e) => return Check::fail("startup_script", format!("does not render: {e}")),
    };
    match script::package(rules, OsFamily::Linux, rendered) {
        Err(e) => Check::fail("startup_script", e.to_string()),
        Ok(s) => Check::pass(
            "startup_script",
            format!("renders to {} bytes with sample values (a Secret holds at most 1 MiB)", s.len()),
        ),
    }
}
