//! Startup scripts: Kasm's Python `str.format` rendering, validation, and per-provider wrapping/limits.
//! (Being implemented.)

use std::collections::BTreeMap;

use crate::config::ProviderKind;
use crate::model::OsFamily;

/// Every placeholder Kasm renders (KASM.md).
pub const PLACEHOLDERS: &[&str] = &[
    "server_id",
    "server_hostname",
    "server_external_fqdn",
    "manager_token",
    "upstream_auth_address",
    "provider_name",
    "connection_username",
    "connection_password",
    "checkin_jwt",
    "ad_join_credential",
    "domain",
    "ssh_key",
    "nginx_cert_in",
    "nginx_key_in",
];

/// Values for the placeholders; `None` renders as the text `None` like Python.
pub type Vars = BTreeMap<String, Option<String>>;

/// Why a template cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ScriptError {
    /// 1-based line of the template.
    pub line: usize,
    /// What is wrong, naming the placeholder.
    pub message: String,
}

/// Renders `template` with `vars`.
pub fn render(template: &str, vars: &Vars) -> Result<String, ScriptError> {
    let _ = vars;
    Ok(template.to_string())
}

/// Wraps a rendered script for a provider and OS, and checks the provider's size limit.
pub fn package(kind: ProviderKind, os: OsFamily, rendered: String) -> Result<String, ScriptError> {
    let _ = (kind, os);
    Ok(rendered)
}
