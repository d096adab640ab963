//! Wrapping, size limits and warnings for a rendered startup script, driven by the [`ScriptRules`] each
//! provider config declares (`ProviderConfigCommon::script_rules`, beside the config); nothing here names a
//! provider.
//!
//! Each provider's limits and their sources (checked 2026-11) are beside its rules, in
//! `config/providers/<name>.rs`.

use crate::model::OsFamily;

use super::ScriptError;

/// How a provider measures its size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// At most this many bytes of the script as sent (before base64).
    Raw(usize),
    /// At most this many characters once base64-encoded.
    Base64(usize),
}

impl Limit {
    /// Whether a script of `bytes` bytes fits.
    pub fn fits(self, bytes: usize) -> bool {
        match self {
            Limit::Raw(max) => bytes <= max,
            Limit::Base64(max) => base64_len(bytes) <= max,
        }
    }
}

/// What a provider does with a Windows startup script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowsScript {
    /// Runs it as given (guest-agent / guest-operations upload, GCP metadata keys).
    AsIs,
    /// EC2Launch: PowerShell must be wrapped in `<powershell>…</powershell>` (or batch in `<script>`).
    Ec2Launch,
    /// cloudbase-init: the first line must name the format (`#ps1_sysnative`, `rem cmd`, ...).
    CloudbaseInit,
    /// Saved to this path on the VM but not run (the image must run it).
    SavedNotRun(&'static str),
}

/// The startup-script rules of one provider: declared by its config, read by [`package`] and [`warnings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptRules {
    /// The provider's short name, for messages.
    pub provider: &'static str,
    /// The size limit of its startup-script field, if it has one we enforce.
    pub limit: Option<Limit>,
    /// What it does with Windows scripts.
    pub windows: WindowsScript,
    /// Linux scripts are handed to cloud-init (which runs only `#!` scripts and cloud-init formats).
    pub linux_cloud_init: bool,
}

/// Wraps a rendered script as `rules` say for `os`, and checks the size limit.
///
/// # Behavior
/// - [`WindowsScript::Ec2Launch`]: wrapped in `<powershell>…</powershell>` unless it already starts with
///   `<powershell>` or `<script>` (EC2Launch's batch tag).
/// - [`WindowsScript::CloudbaseInit`]: `#ps1_sysnative` is prepended unless the first line already names a
///   cloudbase-init format (`#ps1…`, `rem cmd`, `#cloud-config`, a MIME `Content-Type:`).
/// - With a [`ScriptRules::limit`]: a script over it is an error naming its size and the limit (measured
///   after wrapping).
pub fn package(rules: &ScriptRules, os: OsFamily, rendered: String) -> Result<String, ScriptError> {
    let script = match (rules.windows, os) {
        (WindowsScript::Ec2Launch, OsFamily::Windows) if !ec2launch_wrapped(&rendered) => {
            let newline = if rendered.ends_with('\n') { "" } else { "\n" };
            format!("<powershell>\n{rendered}{newline}</powershell>\n")
        }
        (WindowsScript::CloudbaseInit, OsFamily::Windows) if !cloudbase_marked(&rendered) => {
            format!("#ps1_sysnative\n{rendered}")
        }
        _ => rendered,
    };
    let bytes = script.len();
    let kind = rules.provider;
    match rules.limit {
        Some(l @ Limit::Raw(max)) if !l.fits(bytes) => Err(ScriptError::whole(format!(
            "the startup script for {kind} is {bytes} bytes; {kind} accepts at most {max} bytes"
        ))),
        Some(l @ Limit::Base64(max)) if !l.fits(bytes) => Err(ScriptError::whole(format!(
            "the startup script for {kind} is {bytes} bytes, {} once base64-encoded; {kind} accepts at most {max} \
             base64 characters",
            base64_len(bytes)
        ))),
        _ => Ok(script),
    }
}

/// Things that will not fail the API call but probably not do what the author wants.
///
/// # Behavior
/// - [`WindowsScript::SavedNotRun`]: the script is saved, not executed.
/// - Windows where the provider is not EC2Launch: `<powershell>` tags are EC2 syntax and break the script.
/// - Linux on cloud-init providers: cloud-init only runs user data starting with `#!` or a cloud-init
///   header such as `#cloud-config`.
pub fn warnings(rules: &ScriptRules, os: OsFamily, script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let kind = rules.provider;
    match os {
        OsFamily::Windows => {
            if let WindowsScript::SavedNotRun(path) = rules.windows {
                out.push(format!(
                    "{kind} does not run the startup script on Windows by default: it is only saved to {path}; \
                     the image must run it (e.g. a scheduled task) or use an extension that does"
                ));
            }
            if rules.windows != WindowsScript::Ec2Launch && ec2launch_wrapped(script) {
                out.push(format!(
                    "<powershell>/<script> tags are EC2 user-data syntax; {kind} passes the script as is, so \
                     PowerShell will fail on the first line"
                ));
            }
        }
        OsFamily::Linux => {
            if rules.linux_cloud_init && !cloud_init_header(script) {
                out.push(format!(
                    "{kind} hands the script to cloud-init, which runs it only if it starts with '#!' (e.g. \
                     #!/bin/bash) or a cloud-init header such as #cloud-config"
                ));
            }
        }
    }
    out
}

/// `4 * ceil(n / 3)`.
fn base64_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

/// The first non-blank line of `script`, trimmed.
pub fn first_line(script: &str) -> &str {
    script.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("")
}

fn ec2launch_wrapped(script: &str) -> bool {
    let start = script.trim_start().get(..12).unwrap_or(script.trim_start()).to_ascii_lowercase();
    start.starts_with("<powershell>") || start.starts_with("<script>")
}

fn cloudbase_marked(script: &str) -> bool {
    let first = first_line(script).to_ascii_lowercase();
    ["#ps1", "rem cmd", "#cloud-config", "content-type:", "#!"].iter().any(|m| first.starts_with(m))
}

fn cloud_init_header(script: &str) -> bool {
    let start = script.trim_start_matches('\u{feff}');
    ["#!", "#cloud-", "#include", "#part-handler", "## template: jinja", "content-type:"]
        .iter()
        .any(|h| start.get(..h.len()).is_some_and(|s| s.eq_ignore_ascii_case(h)))
}
