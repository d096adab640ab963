//! VMware vSphere VM-provider config (fields from Kasm's documentation, "VMware vSphere Settings").

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::check::{Found, is_blank, need};
use crate::config::kasm_names::{Accept, KasmColumn, KasmColumns, Unit, no_field, own_id, renamed, same, size};
use crate::config::provider::{Endpoint, ProviderConfigCommon};
use crate::config::secret::SecretRef;
use crate::model::{OsFamily, Resources};
use crate::script::{Limit, ScriptRules, WindowsScript};

fn port() -> u16 {
    443
}

/// The largest cloud-init user data (or metadata) a guest customization takes, in bytes (VMware's
/// reference for `Guest.CloudinitConfiguration`).
pub const CLOUD_INIT_USERDATA_MAX: usize = 524_288;

/// How a new VM is made from the template (Kasm 1.19's `vsphere_clone_type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VsphereCloneType {
    /// A full clone of the template (`POST /api/vcenter/vm?action=clone`).
    #[default]
    #[serde(alias = "FULL", alias = "Full")]
    Full,
    /// A linked clone from the template's snapshot `vm_snapshot_name`: vim25's `CloneVM_Task` with
    /// the snapshot and `diskMoveType: createNewChildDiskBacking` (the vSphere Automation REST clone,
    /// `VM.clone_spec`, has no snapshot or disk-backing field; an instant clone is not a linked clone
    /// from a snapshot). The clone's disks are children of the snapshot's: fast to make, small.
    #[serde(alias = "LINKED", alias = "Linked")]
    Linked,
}

/// How the startup script reaches the guest (Kasm 1.19's `vsphere_startup_script_method`; Kasm documents
/// no values for it, so these are ours and any other value is refused naming the field).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VsphereStartupScriptMethod {
    /// After power-on, through VMware Tools guest operations as `guest_vm_username` (upload, run, read
    /// the exit code): Linux and Windows guests.
    #[default]
    GuestOperations,
    /// As raw cloud-init user data of a guest customization set while the clone is off (`PUT
    /// /api/vcenter/vm/{vm}/guest/customization`, `cloud_config.type: CLOUDINIT`; vSphere 7.0.3 or
    /// later) and applied at its first power-on: Linux guests with cloud-init, no guest credentials
    /// used, no network path to the ESXi hosts needed; the script's exit code is not seen (the agent
    /// checking in is what counts).
    CloudInit,
}

/// VMware vSphere VM-provider settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VsphereConfig {
    /// A name to identify the config.
    pub name: String,
    /// IP or FQDN of the vCenter server.
    pub vsphere_vcenter_address: String,
    /// Management port of vCenter (typically 443).
    #[serde(default = "port")]
    pub vsphere_vcenter_port: u16,
    /// Username for vCenter.
    pub vsphere_vcenter_username: String,
    /// Password for vCenter (a secret reference).
    pub vsphere_vcenter_password: SecretRef,
    /// Name of the template VM cloned to make new VMs.
    pub vm_template_name: String,
    /// Most vSphere VMs to run regardless of the need for free capacity.
    pub max_instances: u32,
    /// The datacenter the clones are made in.
    pub datacenter_name: String,
    /// VM folder of the clones (default: the template's).
    #[serde(default)]
    pub vm_folder: Option<String>,
    /// Datastore of the clones (default: the template's).
    #[serde(default)]
    pub datastore_name: Option<String>,
    /// Cluster of the clones (default: the template's).
    #[serde(default)]
    pub cluster_name: Option<String>,
    /// Resource pool of the clones (default: the template's).
    #[serde(default)]
    pub resource_pool: Option<String>,
    /// Datastore cluster (Storage DRS pod) of the clones, a `/` path below the datacenter's datastore
    /// folder; Storage DRS picks the datastore (vim25 `RecommendDatastores`). Not with `datastore_name`.
    #[serde(default)]
    pub datastore_cluster_name: Option<String>,
    /// Kasm's `vsphere_use_datastore_cluster`: `false` leaves `datastore_cluster_name` unused (a Kasm
    /// row may keep a cluster name it does not use), `true` needs `datastore_cluster_name`; unset = the
    /// cluster is used when it is named. Our reading of the column's name and type (Kasm's schema has
    /// only `BOOLEAN`); see [`VsphereConfig::datastore_cluster`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_datastore_cluster: Option<bool>,
    /// Guest OS account the startup script runs as; it needs the privileges the script uses.
    pub guest_vm_username: String,
    /// Password of the guest account (a secret reference).
    pub guest_vm_password: SecretRef,
    /// CPUs of each new VM (independent of the template).
    pub number_of_guest_cpus: u32,
    /// Memory of each new VM in GiB (independent of the template).
    #[serde(alias = "amount_of_guest_memory")]
    pub amount_of_guest_memory_gib: u32,
    /// "What family of OS is installed in the VM": Linux or Windows; decides how the script is run.
    #[serde(default)]
    pub os_family: OsFamily,
    /// Kasm 1.19: full clone of the template, or a linked clone from `vm_snapshot_name` (see
    /// [`VsphereCloneType::Linked`]).
    #[serde(default)]
    pub clone_type: VsphereCloneType,
    /// Kasm 1.19: the name of the template's snapshot a linked clone is made from (required with
    /// `clone_type: linked`, refused otherwise); unique in the template's snapshot tree.
    #[serde(default)]
    pub vm_snapshot_name: Option<String>,
    /// Run when a VM is created (bash on Linux, PowerShell on Windows, through VMware Tools; or as
    /// cloud-init user data, see `startup_script_method`); installs and configures the Kasm Agent (a
    /// template).
    #[serde(default)]
    pub startup_script: String,
    /// Kasm 1.19's `vsphere_startup_script_method`, with our values: `guest_operations` (the default)
    /// or `cloud_init` (see [`VsphereStartupScriptMethod`]).
    #[serde(default)]
    pub startup_script_method: VsphereStartupScriptMethod,
    /// Kasm 1.19's `vm_public_ssh_key`: an OpenSSH public key (`ssh-ed25519 AAAA… comment`) installed for
    /// `guest_vm_username` (appended to `~/.ssh/authorized_keys` once, through VMware Tools guest
    /// operations, before the startup script runs) and given to the script as `{ssh_key}`. Linux guests
    /// only. Kasm documents no meaning of the field for vSphere; this is ours (README, vSphere).
    #[serde(default)]
    pub vm_ssh_public_key: Option<String>,
    /// Our extension (not a Kasm field): the API's base URL instead of the provider's default, for private
    /// clouds, sovereign regions and test servers (like `AWS_ENDPOINT_URL`).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Our extension (not a Kasm field): PEM certificates trusted for the API's TLS in addition to the
    /// built-in roots (a private CA).
    #[serde(default)]
    pub ca_bundle: Option<String>,
}

/// Kasm's `vsphere_vm_configs` columns; Kasm 1.15's API writes `vsphere_datastore`,
/// `vsphere_datastore_cluster_name` and `vsphere_memoryMB` (MiB) instead.
impl KasmColumns for VsphereConfig {
    const KASM_TABLE: &'static str = "vsphere_vm_configs";
    const KASM_COLUMNS: &'static [KasmColumn] = &[
        own_id("config_id"),
        renamed("config_name", "name"),
        same("max_instances"),
        same("vsphere_vcenter_address"),
        same("vsphere_vcenter_port"),
        same("vsphere_vcenter_username"),
        same("vsphere_vcenter_password"),
        renamed("vsphere_template_name", "vm_template_name"),
        renamed("vsphere_datacenter_name", "datacenter_name"),
        renamed("vsphere_vm_folder", "vm_folder"),
        renamed("vsphere_datastore_name", "datastore_name"),
        renamed("vsphere_datastore", "datastore_name"),
        renamed("vsphere_datastore_cluster_name", "datastore_cluster_name"),
        renamed("vsphere_cluster_name", "cluster_name"),
        renamed("vsphere_resource_pool", "resource_pool"),
        renamed("vsphere_os_username", "guest_vm_username"),
        renamed("vsphere_os_password", "guest_vm_password"),
        renamed("vsphere_cpus", "number_of_guest_cpus"),
        size("vsphere_memory_bytes", "amount_of_guest_memory_gib", Unit::Bytes, Unit::Gib, true),
        size("vsphere_memoryMB", "amount_of_guest_memory_gib", Unit::Mib, Unit::Gib, true),
        renamed("vsphere_installed_OS_type", "os_family"),
        same("startup_script"),
        renamed("vsphere_use_datastore_cluster", "use_datastore_cluster"),
        renamed("vsphere_clone_type", "clone_type"),
        renamed("vsphere_vm_snapshot_name", "vm_snapshot_name"),
        no_field("vsphere_vm_name", "kasm-autoscale names the VMs itself (by claim)", Accept::Unset),
        renamed("vsphere_startup_script_method", "startup_script_method"),
        renamed("vm_public_ssh_key", "vm_ssh_public_key"),
    ];
}

impl VsphereConfig {
    /// The datastore cluster the clones are placed in: `datastore_cluster_name`, unless
    /// `use_datastore_cluster` is `false`.
    pub fn datastore_cluster(&self) -> Option<&str> {
        match self.use_datastore_cluster {
            Some(false) => None,
            _ => self.datastore_cluster_name.as_deref(),
        }
    }

    /// Whether the startup script goes in as cloud-init user data (`startup_script_method:
    /// cloud_init`), not through guest operations.
    pub fn cloud_init(&self) -> bool {
        self.startup_script_method == VsphereStartupScriptMethod::CloudInit
    }
}

impl ProviderConfigCommon for VsphereConfig {
    fn ssh_public_key(&self) -> Option<&str> {
        self.vm_ssh_public_key.as_deref()
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn max_instances(&self) -> u32 {
        self.max_instances
    }
    fn startup_script(&self) -> &str {
        &self.startup_script
    }
    fn os(&self) -> OsFamily {
        self.os_family
    }
    fn vm_size(&self) -> Option<Resources> {
        Some(Resources::new(
            f64::from(self.number_of_guest_cpus),
            f64::from(self.amount_of_guest_memory_gib) * 1024.0,
            0.0,
        ))
    }
    fn script_rules(&self) -> ScriptRules {
        match self.startup_script_method {
            // Guest-operations file transfer: no documented limit we enforce; run as is.
            VsphereStartupScriptMethod::GuestOperations => {
                ScriptRules { provider: "vsphere", limit: None, windows: WindowsScript::AsIs, linux_cloud_init: false }
            }
            // Cloud-init user data: "The max size of the userdata is 524288 bytes" (the API's
            // `CloudinitConfiguration.userdata`).
            VsphereStartupScriptMethod::CloudInit => ScriptRules {
                provider: "vsphere",
                limit: Some(Limit::Raw(CLOUD_INIT_USERDATA_MAX)),
                windows: WindowsScript::AsIs,
                linux_cloud_init: true,
            },
        }
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

/// Whether `s` is a host name or address without scheme, path or port (`vcenter.example.com`,
/// `10.0.0.5`, `[fd00::5]`).
fn is_host(s: &str) -> bool {
    let s = s.trim();
    if s.is_empty() || s.contains("://") || s.contains('/') || s.chars().any(char::is_whitespace) {
        return false;
    }
    // A port is `vsphere_vcenter_port`'s: no `:` outside an IPv6 literal's brackets.
    let port_free = if s.starts_with('[') { s.ends_with(']') } else { !s.contains(':') };
    port_free && url::Url::parse(&format!("https://{s}")).is_ok_and(|u| u.host_str().is_some())
}

/// Whether `k` is one OpenSSH public key line (`<type> <base64> [comment]`, sshd's `authorized_keys`
/// format without options) made of printable ASCII without `'` — it is passed to the guest inside a
/// single-quoted shell word.
pub fn is_openssh_public_key(k: &str) -> bool {
    let mut parts = k.split(' ');
    let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else { return false };
    let kind_ok = ["ssh-", "ecdsa-sha2-", "sk-"].iter().any(|p| kind.starts_with(p))
        && kind.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'@'));
    let blob_ok =
        blob.len() >= 16 && blob.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    kind_ok && blob_ok && k.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\'')
}

/// An optional name given as an empty string.
fn blank_opt(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(is_blank)
}

fn check_fields(f: &mut Found, c: &VsphereConfig) {
    need(
        f,
        is_host(&c.vsphere_vcenter_address),
        "vsphere_vcenter_address",
        "must be vCenter's host name or IP address, without scheme, port or path (the port is `vsphere_vcenter_port`)",
    );
    need(f, c.vsphere_vcenter_port >= 1, "vsphere_vcenter_port", "must be a port in 1..=65535");
    need(f, !is_blank(&c.vsphere_vcenter_username), "vsphere_vcenter_username", "must not be empty");
    need(f, !is_blank(&c.vm_template_name), "vm_template_name", "must name the template VM");
    need(f, !is_blank(&c.datacenter_name), "datacenter_name", "must name the datacenter");
    let guest_ops = !c.cloud_init();
    need(
        f,
        !guest_ops || !is_blank(&c.guest_vm_username),
        "guest_vm_username",
        "must name the guest OS account the startup script runs as",
    );
    need(
        f,
        guest_ops || c.os_family != OsFamily::Windows,
        "startup_script_method",
        "is cloud_init, which vSphere's guest customization offers for Linux guests only: use guest_operations for \
         Windows",
    );
    need(
        f,
        guest_ops || c.vm_ssh_public_key.is_none(),
        "vm_ssh_public_key",
        "is installed through guest operations, which startup_script_method cloud_init does not use: install the \
         key from the startup script (`{ssh_key}`)",
    );
    for (field, v) in [
        ("vm_folder", &c.vm_folder),
        ("datastore_name", &c.datastore_name),
        ("cluster_name", &c.cluster_name),
        ("resource_pool", &c.resource_pool),
        ("datastore_cluster_name", &c.datastore_cluster_name),
    ] {
        need(f, !blank_opt(v), field, "is empty: leave it out to use the template's");
    }
    if let Some(k) = &c.vm_ssh_public_key {
        need(
            f,
            is_openssh_public_key(k),
            "vm_ssh_public_key",
            "must be one OpenSSH public key line: `<type> <base64> [comment]` (type `ssh-…`, `ecdsa-sha2-…` or \
             `sk-…`), printable ASCII without `'`",
        );
        need(
            f,
            c.os_family != OsFamily::Windows,
            "vm_ssh_public_key",
            "is installed for the guest user on Linux guests only (Windows' OpenSSH keeps administrators' keys \
             elsewhere): install it from the startup script",
        );
    }
    need(f, c.number_of_guest_cpus >= 1, "number_of_guest_cpus", "must be at least 1");
    need(f, c.amount_of_guest_memory_gib >= 1, "amount_of_guest_memory_gib", "must be at least 1 GiB");
    // vSphere's largest VM memory is 24 TiB (vSphere 8 configuration maximums); size_MiB is an integer.
    need(f, c.amount_of_guest_memory_gib <= 24 * 1024, "amount_of_guest_memory_gib", "must be at most 24576 GiB");
    match c.clone_type {
        VsphereCloneType::Full => need(
            f,
            c.vm_snapshot_name.is_none(),
            "vm_snapshot_name",
            "is only used by linked clones (`clone_type: linked`); a full clone copies the template's current state",
        ),
        VsphereCloneType::Linked => need(
            f,
            c.vm_snapshot_name.as_deref().is_some_and(|n| !is_blank(n)),
            "vm_snapshot_name",
            "must name the template's snapshot a linked clone (`clone_type: linked`) is made from",
        ),
    }
    need(
        f,
        c.use_datastore_cluster != Some(true) || c.datastore_cluster_name.is_some(),
        "use_datastore_cluster",
        "is true: name the datastore cluster in datastore_cluster_name",
    );
    need(
        f,
        c.datastore_name.is_none() || c.datastore_cluster().is_none(),
        "datastore_cluster_name",
        "and datastore_name are exclusive: Storage DRS picks the datastore of the cluster",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretRef;

    pub(crate) fn config() -> VsphereConfig {
        VsphereConfig {
            name: "vs".into(),
            vsphere_vcenter_address: "vcenter.example.com".into(),
            vsphere_vcenter_port: 443,
            vsphere_vcenter_username: "kasm@vsphere.local".into(),
            vsphere_vcenter_password: SecretRef::Env("VC_PASSWORD".into()),
            vm_template_name: "tmpl".into(),
            max_instances: 2,
            datacenter_name: "DC1".into(),
            vm_folder: None,
            datastore_name: None,
            cluster_name: None,
            resource_pool: None,
            datastore_cluster_name: None,
            use_datastore_cluster: None,
            guest_vm_username: "kasm".into(),
            guest_vm_password: SecretRef::Env("GUEST_PASSWORD".into()),
            number_of_guest_cpus: 2,
            amount_of_guest_memory_gib: 4,
            os_family: OsFamily::Linux,
            clone_type: VsphereCloneType::Full,
            vm_snapshot_name: None,
            startup_script: String::new(),
            startup_script_method: VsphereStartupScriptMethod::GuestOperations,
            vm_ssh_public_key: None,
            endpoint_url: None,
            ca_bundle: None,
        }
    }

    fn fields(c: &VsphereConfig) -> Vec<String> {
        c.check().into_iter().map(|(f, _)| f).collect()
    }

    #[test]
    fn a_good_config_passes_and_each_rule_names_its_field() {
        assert!(fields(&config()).is_empty(), "{:?}", config().check());
        for (addr, ok) in [
            ("vcenter.example.com", true),
            ("10.0.0.5", true),
            ("[fd00::5]", true),
            ("https://vcenter.example.com", false),
            ("vcenter.example.com:443", false),
            ("vcenter.example.com/ui", false),
            ("", false),
        ] {
            let mut c = config();
            c.vsphere_vcenter_address = addr.into();
            assert_eq!(fields(&c).is_empty(), ok, "{addr}");
        }
        let mut c = config();
        c.vm_template_name = " ".into();
        c.datacenter_name = String::new();
        c.guest_vm_username = String::new();
        c.vsphere_vcenter_username = String::new();
        c.vm_folder = Some(String::new());
        c.number_of_guest_cpus = 0;
        c.amount_of_guest_memory_gib = 0;
        assert_eq!(
            fields(&c),
            [
                "vsphere_vcenter_username",
                "vm_template_name",
                "datacenter_name",
                "guest_vm_username",
                "vm_folder",
                "number_of_guest_cpus",
                "amount_of_guest_memory_gib"
            ]
        );
    }

    #[test]
    fn the_ssh_key_is_one_openssh_line_for_linux_guests() {
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxRa6b7 ops@example";
        let mut c = config();
        c.vm_ssh_public_key = Some(key.into());
        assert!(fields(&c).is_empty(), "{:?}", c.check());
        assert_eq!(c.ssh_public_key(), Some(key));
        for good in [
            "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ",
            "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAy a comment with spaces",
            "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9w",
        ] {
            assert!(is_openssh_public_key(good), "{good}");
        }
        for bad in [
            "",
            "AAAAC3NzaC1lZDI1NTE5AAAAIGxRa6b7",
            "ssh-ed25519",
            "ssh-ed25519 short",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxRa6b7 it's mine",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxRa6b7\nssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxRa6b7 $(reboot)\t",
            "command=\"x\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxRa6b7",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA;IGxRa6b7",
        ] {
            assert!(!is_openssh_public_key(bad), "{bad:?}");
            c.vm_ssh_public_key = Some(bad.into());
            assert_eq!(fields(&c), ["vm_ssh_public_key"], "{bad:?}");
        }
        c.vm_ssh_public_key = Some(key.into());
        c.os_family = OsFamily::Windows;
        assert_eq!(fields(&c), ["vm_ssh_public_key"]);
        assert!(c.check()[0].1.contains("Linux guests only"), "{:?}", c.check());
    }

    #[test]
    fn cloud_init_is_for_linux_without_guest_credentials_or_a_key_and_limits_the_script() {
        let mut c = config();
        c.startup_script_method = VsphereStartupScriptMethod::CloudInit;
        c.guest_vm_username = String::new();
        assert!(fields(&c).is_empty(), "no guest account is used: {:?}", c.check());
        c.vm_ssh_public_key = Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxRa6b7 ops@example".into());
        assert_eq!(fields(&c), ["vm_ssh_public_key"]);
        assert!(c.check()[0].1.contains("{ssh_key}"), "{:?}", c.check());
        c.vm_ssh_public_key = None;
        c.os_family = OsFamily::Windows;
        assert_eq!(fields(&c), ["startup_script_method"]);
        let rules = config().script_rules();
        assert!(!rules.linux_cloud_init && rules.limit.is_none());
        c.os_family = OsFamily::Linux;
        let rules = c.script_rules();
        assert!(rules.linux_cloud_init && matches!(rules.limit, Some(Limit::Raw(CLOUD_INIT_USERDATA_MAX))));
        for (text, want) in [
            ("guest_operations", VsphereStartupScriptMethod::GuestOperations),
            ("cloud_init", VsphereStartupScriptMethod::CloudInit),
        ] {
            assert_eq!(serde_json::from_value::<VsphereStartupScriptMethod>(serde_json::json!(text)).unwrap(), want);
        }
        assert!(serde_json::from_value::<VsphereStartupScriptMethod>(serde_json::json!("vmtools")).is_err());
    }

    #[test]
    fn linked_clones_need_a_snapshot_and_a_snapshot_needs_them() {
        let mut c = config();
        c.clone_type = VsphereCloneType::Linked;
        c.vm_snapshot_name = Some("base".into());
        assert!(fields(&c).is_empty(), "{:?}", c.check());
        c.vm_snapshot_name = None;
        assert_eq!(fields(&c), ["vm_snapshot_name"]);
        c.vm_snapshot_name = Some(" ".into());
        assert_eq!(fields(&c), ["vm_snapshot_name"]);
        let mut c = config();
        c.vm_snapshot_name = Some("base".into());
        assert_eq!(fields(&c), ["vm_snapshot_name"]);
        let mut c = config();
        c.datastore_cluster_name = Some("pod-1".into());
        assert!(fields(&c).is_empty(), "{:?}", c.check());
        c.datastore_name = Some("ssd-01".into());
        assert_eq!(fields(&c), ["datastore_cluster_name"]);
        // Kasm's flag: false leaves a named cluster unused (then a datastore may be named too); true
        // needs the name.
        c.use_datastore_cluster = Some(false);
        assert!(fields(&c).is_empty(), "{:?}", c.check());
        assert_eq!(c.datastore_cluster(), None);
        c.use_datastore_cluster = Some(true);
        assert_eq!(fields(&c), ["datastore_cluster_name"]);
        c.datastore_name = None;
        assert_eq!(c.datastore_cluster(), Some("pod-1"));
        c.datastore_cluster_name = None;
        assert_eq!(fields(&c), ["use_datastore_cluster"]);
        for (text, want) in [("full", VsphereCloneType::Full), ("LINKED", VsphereCloneType::Linked)] {
            assert_eq!(serde_json::from_value::<VsphereCloneType>(serde_json::json!(text)).unwrap(), want);
        }
        assert!(serde_json::from_value::<VsphereCloneType>(serde_json::json!("instant")).is_err());
    }
}
