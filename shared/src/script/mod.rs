//! Startup scripts: Kasm's Python `str.format` rendering, validation, and per-provider wrapping/limits.
//!
//! Kasm renders a provider's Startup Script with `template.format(**values)` (KASM.md, "Startup scripts").
//! [`render`] reproduces CPython 3.11's output byte for byte for `str`/`None` values, including conversions
//! (`!s`, `!r`, `!a`), string format specs (`{name:>10.3}`), indexing (`{name[0]}`) and nested specs
//! (`{name:{other}}`); the private `format` module lists the few cases where we return an error although Python
//! would print something. [`check`] validates a template when the config is loaded, and [`package`] /
//! [`warnings`] adapt the rendered script to the [`ScriptRules`] a provider config declares.

mod format;
mod package;

#[cfg(test)]
mod python_diff;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use format::MAX_WIDTH;
pub use package::{Limit, ScriptRules, WindowsScript, first_line, package, warnings};

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

/// The placeholders that are always set; every other one may render as `None` (no DNS, no AD join, no
/// static credentials, no SSH key, or removed in Kasm 1.17).
pub const ALWAYS_SET: &[&str] = &["server_id", "manager_token", "upstream_auth_address", "provider_name"];

/// Values for the placeholders; `None` renders as the text `None` like Python.
pub type Vars = BTreeMap<String, Option<String>>;

/// Why a template cannot be rendered or packaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    /// 1-based line of the template; 0 when the error is about the whole script (a size limit).
    pub line: usize,
    /// What is wrong, naming the placeholder.
    pub message: String,
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 { f.write_str(&self.message) } else { write!(f, "line {}: {}", self.line, self.message) }
    }
}

impl std::error::Error for ScriptError {}

impl ScriptError {
    /// An error about the whole script rather than one line.
    pub(crate) fn whole(message: String) -> Self {
        ScriptError { line: 0, message }
    }
}

/// Renders `template` with `vars` exactly like Python's `template.format(**vars)`.
///
/// `vars` is the whole keyword set: start from [`unset_vars`] so every Kasm placeholder is known (a missing
/// key is an unknown placeholder, as in Python).
///
/// # Behavior
/// - `{name}` is replaced by the value; a `None` value renders as `None`.
/// - `{{` and `}}` are literal braces; a single `{` or `}` is an error at its line.
/// - A placeholder that is not a key of `vars` is an error naming it, its line and the known names.
/// - Positional fields (`{}`, `{0}`) are errors: Kasm passes keyword arguments only.
/// - Errors are reported in Python's order: the first one Python would raise wins.
pub fn render(template: &str, vars: &Vars) -> Result<String, ScriptError> {
    format::format(template, vars).map_err(|f| ScriptError { line: line_of(template, f.at), message: f.message })
}

/// Validates a template as Kasm will render it: every placeholder known, every spec valid.
///
/// Renders twice: once with every placeholder set to a representative string, once with the placeholders
/// that can be absent set to `None` (so `{server_external_fqdn:>30}` is rejected: Python cannot apply a
/// spec to `None`).
pub fn check(template: &str) -> Result<(), ScriptError> {
    let sample = |name: &str| match name {
        "server_id" => "3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b".to_string(),
        "provider_name" => "aws".to_string(),
        _ => format!("sample-{name}"),
    };
    let mut vars: Vars = PLACEHOLDERS.iter().map(|n| (n.to_string(), Some(sample(n)))).collect();
    render(template, &vars)?;
    for (name, value) in vars.iter_mut() {
        if !ALWAYS_SET.contains(&name.as_str()) {
            *value = None;
        }
    }
    render(template, &vars).map(drop)
}

/// Every placeholder, unset (each renders `None`), ready to be filled in.
pub fn unset_vars() -> Vars {
    PLACEHOLDERS.iter().map(|n| (n.to_string(), None)).collect()
}

/// 1-based line of byte offset `at`.
fn line_of(template: &str, at: usize) -> usize {
    1 + template.as_bytes()[..at.min(template.len())].iter().filter(|&&b| b == b'\n').count()
}
