//! Nutanix (Prism Central) VM-provider config (fields from Kasm's documentation, "Nutanix Settings").

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::check::{Found, is_blank, need};
use crate::config::kasm_names::{KasmColumn, KasmColumns, Unit, own_id, renamed, same, size};
use crate::config::provider::{Endpoint, ProviderConfigCommon};
use crate::config::secret::SecretRef;
use crate::model::Resources;
use crate::script::{Limit, ScriptRules, WindowsScript};

/// The most cores we accept for one VM (AHV's own limit is higher; this catches a memory size typed
/// into the cores field).
pub const MAX_CORES: u32 = 512;
/// The most memory we accept for one VM, in GiB (4 TiB; the same kind of typo guard).
pub const MAX_MEMORY_GIB: u32 = 4096;
/// The longest v4 cloud-init user data, in base64 characters (`vmm.v4.ahv.config.Userdata.value`:
/// "max=128000 chars", from Nutanix's `ntnx-vmm-py-client` 4.3.2).
pub const V4_USER_DATA_MAX: usize = 128_000;
/// The longest VM name v4 takes (`CloneOverrideParams.name`: "length must be less than or equal to
/// `80`"); the candidate's name is matched against names of that length.
pub const V4_NAME_MAX: usize = 80;

fn port() -> u16 {
    9440
}
fn yes() -> bool {
    true
}

/// The Prism Central API version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NutanixApiVersion {
    /// v3 (recommended).
    #[default]
    V3,
    /// v4 (preview).
    V4,
}

/// Nutanix VM-provider settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NutanixConfig {
    /// A name to identify the config.
    pub name: String,
    /// Most autoscale VMs to run, regardless of other settings.
    pub max_instances: u32,
    /// IP or FQDN of the Prism Central server, e.g. `nutanix.example.com`.
    pub host: String,
    /// Port of the Prism Central server (usually 9440).
    #[serde(default = "port")]
    pub port: u16,
    /// The user kasm-autoscale signs in to Prism Central as.
    pub username: String,
    /// That user's password (a secret reference).
    pub password: SecretRef,
    /// Validate TLS certificates; turn off for self-signed certificates.
    #[serde(default = "yes")]
    pub verify_ssl: bool,
    /// The Prism Central API version: v3 (recommended) or v4 (preview).
    #[serde(default)]
    pub api_version: NutanixApiVersion,
    /// Name of the VM cloned to make new VMs.
    pub vm_candidate_name: String,
    /// CPU cores of each new VM.
    pub vm_cores: u32,
    /// Memory of each new VM in GiB.
    pub vm_memory: u32,
    /// Run when a VM is created; installs the Kasm Agent (Docker Agents) or the Kasm Desktop Service (Windows).
    /// Bash or cloud-config on Linux, PowerShell on Windows (a template).
    #[serde(default)]
    pub startup_script: String,
    /// Our extension (not a Kasm field): the API's base URL instead of the provider's default, for private
    /// clouds, sovereign regions and test servers (like `AWS_ENDPOINT_URL`).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Our extension (not a Kasm field): PEM certificates trusted for the API's TLS in addition to the
    /// built-in roots (a private CA).
    #[serde(default)]
    pub ca_bundle: Option<String>,
}

/// Kasm's `nutanix_vm_configs` columns.
impl KasmColumns for NutanixConfig {
    const KASM_TABLE: &'static str = "nutanix_vm_configs";
    const KASM_COLUMNS: &'static [KasmColumn] = &[
        own_id("config_id"),
        renamed("config_name", "name"),
        same("max_instances"),
        same("host"),
        same("port"),
        same("username"),
        same("password"),
        same("verify_ssl"),
        same("api_version"),
        renamed("vm_candidate", "vm_candidate_name"),
        renamed("cores", "vm_cores"),
        size("memory_bytes", "vm_memory", Unit::Bytes, Unit::Gib, true),
        same("startup_script"),
    ];
}

impl ProviderConfigCommon for NutanixConfig {
    fn name(&self) -> &str {
        &self.name
    }
    fn max_instances(&self) -> u32 {
        self.max_instances
    }
    fn startup_script(&self) -> &str {
        &self.startup_script
    }
    fn vm_size(&self) -> Option<Resources> {
        Some(Resources::new(f64::from(self.vm_cores), f64::from(self.vm_memory) * 1024.0, 0.0))
    }
    fn script_rules(&self) -> ScriptRules {
        // Nutanix guest customization: the script is the clone's cloud-init user data, base64-encoded,
        // which AHV hands to the guest on a ConfigDriveV2. Linux runs it with cloud-init; Windows with
        // cloudbase-init, whose first line names the format (`#ps1_sysnative` is added to PowerShell).
        // v3 (`GuestCustomizationCloudInit.user_data`): no size limit in the v3 structures or Kasm's
        // docs, so none is enforced. v4 (`vmm.v4.ahv.config.Userdata.value`): "must be base64 encoded",
        // at most 128000 characters (the SDK's constraint), checked at validate time.
        let limit = match self.api_version {
            NutanixApiVersion::V3 => None,
            NutanixApiVersion::V4 => Some(Limit::Base64(V4_USER_DATA_MAX)),
        };
        ScriptRules { provider: "nutanix", limit, windows: WindowsScript::CloudbaseInit, linux_cloud_init: true }
    }
    fn endpoint(&self) -> Endpoint<'_> {
        Endpoint { url: self.endpoint_url.as_deref(), ca_bundle: self.ca_bundle.as_deref() }
    }
    fn check(&self) -> Found {
        let mut f = Found::new();
        check_fields(&mut f, self);
        f
    }
}

/// Whether `host` is a bare IP or FQDN (no scheme, port, path or spaces; IPv6 in brackets).
fn is_bare_host(host: &str) -> bool {
    let h = host.trim();
    if h.is_empty() || h != host || h.contains("://") || h.contains('/') || h.contains(char::is_whitespace) {
        return false;
    }
    if let Some(v6) = h.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !h.contains(':') && url::Url::parse(&format!("https://{h}:9440/")).is_ok_and(|u| u.host_str().is_some())
}

fn check_fields(f: &mut Found, c: &NutanixConfig) {
    need(
        f,
        is_bare_host(&c.host),
        "host",
        "must be the IP or FQDN of Prism Central only, e.g. nutanix.example.com (no https://, port or path; the port is `port`)",
    );
    need(f, c.port >= 1, "port", "must be a port in 1..=65535");
    need(f, !is_blank(&c.username), "username", "must name the Prism Central user");
    need(f, !c.username.contains(':'), "username", "must not contain `:` (HTTP Basic authentication cannot carry it)");
    need(f, !is_blank(&c.vm_candidate_name), "vm_candidate_name", "must name the VM to clone");
    need(
        f,
        c.vm_candidate_name.trim() == c.vm_candidate_name,
        "vm_candidate_name",
        "must not start or end with spaces (the name is matched exactly)",
    );
    need(f, (1..=MAX_CORES).contains(&c.vm_cores), "vm_cores", format!("must be between 1 and {MAX_CORES}"));
    need(
        f,
        (1..=MAX_MEMORY_GIB).contains(&c.vm_memory),
        "vm_memory",
        format!("must be between 1 and {MAX_MEMORY_GIB} GiB"),
    );
    // v4 (Kasm's preview) clones by `vmm.v4.ahv.config.CloneOverrideParams`, whose `name` holds at
    // most 80 characters: a longer candidate name cannot be the name of any v4 VM.
    need(
        f,
        c.api_version == NutanixApiVersion::V3 || c.vm_candidate_name.chars().count() <= V4_NAME_MAX,
        "vm_candidate_name",
        format!("must be at most {V4_NAME_MAX} characters with api_version v4 (a v4 VM name's limit)"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn config() -> NutanixConfig {
        NutanixConfig {
            name: "ntnx".into(),
            max_instances: 2,
            host: "prism.example.com".into(),
            port: 9440,
            username: "kasm".into(),
            password: SecretRef::Env("NUTANIX_PASSWORD".into()),
            verify_ssl: true,
            api_version: NutanixApiVersion::V3,
            vm_candidate_name: "kasm-agent-template".into(),
            vm_cores: 4,
            vm_memory: 8,
            startup_script: String::new(),
            endpoint_url: None,
            ca_bundle: None,
        }
    }

    #[test]
    fn the_rules_name_their_field() {
        assert!(config().check().is_empty(), "{:?}", config().check());
        for host in ["10.0.0.5", "[fd00::5]", "nutanix-pc.lab.example.com"] {
            let mut c = config();
            c.host = host.into();
            assert!(c.check().is_empty(), "{host}: {:?}", c.check());
        }
        let mut c = config();
        c.host = "https://prism.example.com:9440".into();
        c.port = 0;
        c.username = "a:b".into();
        c.vm_candidate_name = " tmpl".into();
        c.vm_cores = 0;
        c.vm_memory = 5000;
        let fields: Vec<String> = c.check().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["host", "port", "username", "vm_candidate_name", "vm_cores", "vm_memory"]);
        for host in ["", "prism.example.com:9440", "prism/x", "pri sm"] {
            let mut c = config();
            c.host = host.into();
            assert_eq!(c.check().len(), 1, "{host}");
        }
        let mut c = config();
        c.vm_candidate_name = String::new();
        c.username = " ".into();
        let fields: Vec<String> = c.check().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["username", "vm_candidate_name"]);
    }

    #[test]
    fn v4_is_accepted_with_its_name_and_user_data_limits() {
        let mut c = config();
        c.api_version = NutanixApiVersion::V4;
        assert!(c.check().is_empty(), "{:?}", c.check());
        c.vm_candidate_name = "t".repeat(81);
        let fields: Vec<String> = c.check().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["vm_candidate_name"]);
        c.api_version = NutanixApiVersion::V3;
        assert!(c.check().is_empty(), "v3 names are not limited here");

        // 96000 bytes are 128000 base64 characters: the most v4 takes.
        let mut c = config();
        c.api_version = NutanixApiVersion::V4;
        let rules = c.script_rules();
        let os = crate::model::OsFamily::Linux;
        assert!(crate::script::package(&rules, os, "x".repeat(96_000)).is_ok());
        let e = crate::script::package(&rules, os, "x".repeat(96_001)).unwrap_err().to_string();
        assert!(e.contains("128000"), "{e}");
        assert!(crate::script::package(&config().script_rules(), os, "x".repeat(200_000)).is_ok(), "v3: no limit");
    }

    #[test]
    fn windows_scripts_are_marked_for_cloudbase_init() {
        let rules = config().script_rules();
        let s = crate::script::package(&rules, crate::model::OsFamily::Windows, "Write-Host hi\n".into()).unwrap();
        assert!(s.starts_with("#ps1_sysnative\n"), "{s}");
        let s = crate::script::package(&rules, crate::model::OsFamily::Linux, "#!/bin/bash\n".into()).unwrap();
        assert_eq!(s, "#!/bin/bash\n");
    }
}
