//! Per-provider wrapping, size limits and warnings for a rendered startup script.
//!
//! Limits (sources checked 2026-11):
//! - AWS EC2 user data: 16 KB "in raw form, before it is base64-encoded" (EC2 User Guide).
//! - Azure custom data: "The size can't exceed 64 KB" (Azure docs); the API rejects more than 87,380 base64
//!   characters ("Custom data in OSProfile must be in Base64 encoding and with a maximum length of 87380
//!   characters"), i.e. 65,535 raw bytes. Not run on Windows: saved to `%SYSTEMDRIVE%\AzureData\CustomData.bin`.
//! - DigitalOcean `user_data`: 64 KiB (API reference).
//! - GCP: a metadata value holds at most 256 KB (larger scripts need `startup-script-url`).
//! - OCI: `metadata` + `extendedMetadata` together at most 32,000 bytes; `user_data` is stored base64-encoded
//!   there, so its encoded size is the bound we can check.
//! - OpenStack Nova: user data "must be base64 encoded and is restricted to 65535 bytes".
//! - Harvester, KubeVirt (cloud-init in a Secret or inline), Nutanix (guest customization), Proxmox and
//!   vSphere (guest-agent / guest-operations file transfer): no documented limit we enforce.

use crate::config::ProviderKind;
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

/// The size limit of `kind`'s startup-script field, if it has one we enforce.
pub fn limit(kind: ProviderKind) -> Option<Limit> {
    match kind {
        ProviderKind::Aws => Some(Limit::Raw(16 * 1024)),
        ProviderKind::Azure => Some(Limit::Base64(87_380)),
        ProviderKind::DigitalOcean => Some(Limit::Raw(64 * 1024)),
        ProviderKind::Gcp => Some(Limit::Raw(256 * 1024)),
        ProviderKind::Oci => Some(Limit::Base64(32_000)),
        ProviderKind::Openstack => Some(Limit::Base64(65_535)),
        ProviderKind::Harvester
        | ProviderKind::Kubevirt
        | ProviderKind::Nutanix
        | ProviderKind::Proxmox
        | ProviderKind::Vsphere => None,
    }
}

/// Wraps a rendered script for a provider and OS, and checks the provider's size limit.
///
/// # Behavior
/// - AWS Windows: wrapped in `<powershell>…</powershell>` unless it already starts with `<powershell>` or
///   `<script>` (EC2Launch's batch tag).
/// - OCI Windows: `#ps1_sysnative` is prepended unless the first line already names a cloudbase-init format
///   (`#ps1…`, `rem cmd`, `#cloud-config`, a MIME `Content-Type:`).
/// - Every provider with a [`limit`]: a script over it is an error naming its size and the limit
///   (measured after wrapping).
pub fn package(kind: ProviderKind, os: OsFamily, rendered: String) -> Result<String, ScriptError> {
    let script = match (kind, os) {
        (ProviderKind::Aws, OsFamily::Windows) if !aws_wrapped(&rendered) => {
            let newline = if rendered.ends_with('\n') { "" } else { "\n" };
            format!("<powershell>\n{rendered}{newline}</powershell>\n")
        }
        (ProviderKind::Oci, OsFamily::Windows) if !cloudbase_marked(&rendered) => {
            format!("#ps1_sysnative\n{rendered}")
        }
        _ => rendered,
    };
    let bytes = script.len();
    match limit(kind) {
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
/// - Azure Windows: custom data is saved, not executed.
/// - Windows on any provider but AWS: `<powershell>` tags are EC2 syntax and break the script elsewhere.
/// - Linux on cloud-init providers: cloud-init only runs user data starting with `#!` or a cloud-init
///   header such as `#cloud-config`.
pub fn warnings(kind: ProviderKind, os: OsFamily, script: &str) -> Vec<String> {
    let mut out = Vec::new();
    match os {
        OsFamily::Windows => {
            if kind == ProviderKind::Azure {
                out.push(
                    "Azure does not run custom data on Windows by default: it is only saved to \
                     C:\\AzureData\\CustomData.bin; the image must run it (e.g. a scheduled task) or use the \
                     Custom Script Extension"
                        .to_string(),
                );
            }
            if kind != ProviderKind::Aws && aws_wrapped(script) {
                out.push(format!(
                    "<powershell>/<script> tags are EC2 user-data syntax; {kind} passes the script as is, so \
                     PowerShell will fail on the first line"
                ));
            }
        }
        OsFamily::Linux => {
            let cloud_init = matches!(
                kind,
                ProviderKind::Aws
                    | ProviderKind::Azure
                    | ProviderKind::DigitalOcean
                    | ProviderKind::Oci
                    | ProviderKind::Openstack
                    | ProviderKind::Harvester
                    | ProviderKind::Kubevirt
                    | ProviderKind::Nutanix
            );
            if cloud_init && !cloud_init_header(script) {
                out.push(format!(
                    "{kind} hands the script to cloud-init, which runs it only if it starts with '#!' (e.g. \
                     #!/bin/bash) or a cloud-init header such as #cloud-config"
                ));
            }
        }
    }
    out
}

/// The GCP instance-metadata key the script goes under.
///
/// Linux: `startup-script`. Windows: `windows-startup-script-cmd` when the first line looks like batch
/// (`@echo off`, `rem …`, `:: …`), else `windows-startup-script-ps1`; when the first line contains the
/// marker `sysprep-specialize` (e.g. `# sysprep-specialize`), the `sysprep-specialize-script-ps1`/`-cmd`
/// key instead, which GCP runs once, during Windows setup, before the first boot completes.
pub fn gcp_metadata_key(os: OsFamily, script: &str) -> &'static str {
    if os == OsFamily::Linux {
        return "startup-script";
    }
    let first = first_line(script).to_ascii_lowercase();
    let cmd = first.starts_with('@')
        || first.starts_with("::")
        || first == "rem"
        || first.starts_with("rem ")
        || first.starts_with("echo off");
    match (first.contains("sysprep-specialize"), cmd) {
        (true, true) => "sysprep-specialize-script-cmd",
        (true, false) => "sysprep-specialize-script-ps1",
        (false, true) => "windows-startup-script-cmd",
        (false, false) => "windows-startup-script-ps1",
    }
}

/// `4 * ceil(n / 3)`.
fn base64_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

/// The first non-blank line, trimmed.
fn first_line(script: &str) -> &str {
    script.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("")
}

fn aws_wrapped(script: &str) -> bool {
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
