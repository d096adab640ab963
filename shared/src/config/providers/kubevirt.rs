//! KubeVirt VM-provider config (fields from Kasm's documentation, "KubeVirt Settings").

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::check::{Found, is_blank, need};
use crate::config::json_text::YamlText;
use crate::config::kasm_names::{KasmColumn, KasmColumns, Unit, own_id, renamed, renamed_or_empty, same, size};
use crate::config::provider::{Endpoint, ProviderConfigCommon};
use crate::config::secret::SecretRef;
use crate::model::Resources;
use crate::script::{Limit, ScriptRules, WindowsScript};
use serde_json::{Map, Value};

/// How the VM's interface is connected (KubeVirt interface binding).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KubeInterfaceType {
    /// NAT behind the pod's address.
    #[default]
    Masquerade,
    /// Bridged onto the network.
    Bridge,
}

/// The network the VM joins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KubeNetworkType {
    /// The pod network.
    #[default]
    Pod,
    /// A Multus network (named by the network name field).
    Multus,
}

/// A complete VirtualMachine manifest (YAML text or a native mapping).
pub type KubeManifest = YamlText<serde_json::Map<String, serde_json::Value>>;

/// KubeVirt VM-provider settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubevirtConfig {
    /// A name to identify the config.
    pub name: String,
    /// Most KubeVirt VMs to run regardless of the need for more resources.
    pub max_instances: u32,
    /// Address of the Kubernetes API, e.g. `https://kubevirt.domain:5000`.
    #[serde(alias = "kubernetes_host")]
    pub host: String,
    /// The cluster's CA certificate: a PEM file, base64 encoded (as `certificate-authority-data` in a kubeconfig).
    #[serde(alias = "kubernetes_ssl_certificate")]
    pub ssl_certificate: String,
    /// The bearer token for the Kubernetes API (a secret reference).
    #[serde(alias = "kubernetes_api_token")]
    pub api_token: SecretRef,
    /// The namespace the VMs are created in. Do not change it while the provider is in use (its VMs would be
    /// orphaned); create a new provider instead.
    pub vm_namespace: String,
    /// The SSH public key given to the VM (`{ssh_key}` in the startup script).
    #[serde(default)]
    pub vm_ssh_public_key: Option<String>,
    /// CPU cores of each VM.
    pub vm_cores: u32,
    /// Memory of each VM in GiB.
    pub vm_memory: u32,
    /// Disk size of each VM in GiB.
    pub vm_disk_size: u32,
    /// Name of the source PVC holding a cloud-ready disk image, cloned for each VM's disk.
    pub vm_disk_source: String,
    /// Interface type: masquerade or bridge.
    #[serde(default)]
    pub vm_interface_type: KubeInterfaceType,
    /// Name of the network interface; for a Multus network, the name of that network.
    pub vm_network_name: String,
    /// Network type: pod or multus.
    #[serde(default)]
    pub vm_network_type: KubeNetworkType,
    /// Run when a VM is created; installs and configures the Kasm Agent (bash on Linux, PowerShell on Windows;
    /// a template).
    #[serde(default, alias = "vm_startup_script")]
    pub startup_script: String,
    /// "Configuration Override": a complete VirtualMachine manifest used instead of the fields above. Its name,
    /// namespace and labels are replaced, `runStrategy` is set to Always, a config-drive disk is appended and
    /// `$KASM_NAME` is replaced by the VM's unique name (use it for PVC / DataVolume names).
    #[serde(default, alias = "config_override")]
    pub configuration_override: Option<KubeManifest>,
    /// Enable a TPM for the VM.
    #[serde(default)]
    pub enable_tpm: bool,
    /// Enable the EFI boot loader.
    #[serde(default)]
    pub enable_efi_boot: bool,
    /// Enable Secure Boot (requires EFI boot).
    #[serde(default)]
    pub enable_secure_boot: bool,
    /// Our extension (not a Kasm field): the API's base URL instead of the provider's default, for private
    /// clouds, sovereign regions and test servers (like `AWS_ENDPOINT_URL`).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Our extension (not a Kasm field): PEM certificates trusted for the API's TLS in addition to the
    /// built-in roots (a private CA).
    #[serde(default)]
    pub ca_bundle: Option<String>,
}

/// Kasm's `kubevirt_vm_configs` columns.
impl KasmColumns for KubevirtConfig {
    const KASM_TABLE: &'static str = "kubevirt_vm_configs";
    const KASM_COLUMNS: &'static [KasmColumn] = &[
        own_id("config_id"),
        renamed("config_name", "name"),
        same("max_instances"),
        renamed("kube_host", "host"),
        renamed("kube_ssl_cert", "ssl_certificate"),
        renamed("kube_api_token", "api_token"),
        same("vm_namespace"),
        renamed("vm_public_ssh_key", "vm_ssh_public_key"),
        renamed("cores", "vm_cores"),
        size("memory_bytes", "vm_memory", Unit::Bytes, Unit::Gib, true),
        size("disk_size_bytes", "vm_disk_size", Unit::Bytes, Unit::Gib, true),
        renamed("disk_source", "vm_disk_source"),
        renamed("interface_type", "vm_interface_type"),
        renamed("network_name", "vm_network_name"),
        renamed("network_type", "vm_network_type"),
        same("startup_script"),
        renamed_or_empty("config_override", "configuration_override"),
        same("enable_tpm"),
        same("enable_efi_boot"),
        same("enable_secure_boot"),
    ];
}

impl ProviderConfigCommon for KubevirtConfig {
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
    fn vm_size(&self) -> Option<Resources> {
        Some(Resources::new(f64::from(self.vm_cores), f64::from(self.vm_memory) * 1024.0, 0.0))
    }
    fn script_rules(&self) -> ScriptRules {
        // KubeVirt: the user data is a Secret's `userdata` key, read from a config drive by cloud-init
        // (Linux) or cloudbase-init (Windows, which needs the `#ps1_sysnative` first line). A Secret
        // holds at most 1 MiB (Kubernetes documentation, "Secrets": "Individual Secrets are limited to
        // 1MiB in size"); base64 in `data` counts against it.
        ScriptRules {
            provider: "kubevirt",
            limit: Some(Limit::Base64(1024 * 1024)),
            windows: WindowsScript::CloudbaseInit,
            linux_cloud_init: true,
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

pub(crate) fn check_kube(f: &mut Found, cert: &str, (efi, secure_boot): (bool, bool)) {
    need(f, efi || !secure_boot, "enable_secure_boot", "requires enable_efi_boot");
    use base64::Engine as _;
    let pem =
        base64::engine::general_purpose::STANDARD.decode(cert.trim()).ok().and_then(|b| String::from_utf8(b).ok());
    need(
        f,
        pem.is_some_and(|p| p.contains("-----BEGIN CERTIFICATE-----")),
        "ssl_certificate",
        "must be a base64-encoded PEM certificate (certificate-authority-data of the kubeconfig)",
    );
}

/// KubeVirt / Harvester: a complete VirtualMachine manifest.
pub fn kube_manifest(m: &Map<String, Value>, field: &str) -> Found {
    let mut f = Found::new();
    let api = m.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if !api.starts_with("kubevirt.io/") {
        f.push((format!("{field}.apiVersion"), "must be a kubevirt.io API version, e.g. kubevirt.io/v1".into()));
    }
    if m.get("kind").and_then(Value::as_str) != Some("VirtualMachine") {
        f.push((format!("{field}.kind"), "must be VirtualMachine".into()));
    }
    let spec = m.get("spec").and_then(Value::as_object);
    match spec {
        None => f.push((format!("{field}.spec"), "is required".into())),
        Some(spec) => {
            if !spec.get("template").and_then(|t| t.get("spec")).is_some_and(Value::is_object) {
                f.push((
                    format!("{field}.spec.template.spec"),
                    "is required (the VM's domain, disks and volumes)".into(),
                ));
            }
            if spec.contains_key("running") {
                f.push((
                    format!("{field}.spec.running"),
                    "conflicts with runStrategy Always, which the provider sets".into(),
                ));
            }
            // Every VM made from the manifest needs its own disk: a fixed PVC name would be shared by all.
            let volumes = spec.get("template").and_then(|t| t.pointer("/spec/volumes")).and_then(Value::as_array);
            for (i, vol) in volumes.into_iter().flatten().enumerate() {
                if let Some(claim) = vol.pointer("/persistentVolumeClaim/claimName").and_then(Value::as_str)
                    && !claim.contains("$KASM_NAME")
                {
                    f.push((
                        format!("{field}.spec.template.spec.volumes[{i}].persistentVolumeClaim.claimName"),
                        "must contain $KASM_NAME, or every VM would share one disk".into(),
                    ));
                }
            }
        }
    }
    f
}

fn check_fields(f: &mut Found, c: &KubevirtConfig) {
    check_kube(f, &c.ssl_certificate, (c.enable_efi_boot, c.enable_secure_boot));
    for (k, v) in ["vm_cores", "vm_memory", "vm_disk_size"].iter().zip([c.vm_cores, c.vm_memory, c.vm_disk_size]) {
        need(f, v >= 1, k, "must be at least 1");
    }
    need(f, !is_blank(&c.vm_network_name), "vm_network_name", "must not be empty");
    if let Some(m) = &c.configuration_override {
        f.extend(kube_manifest(&m.0, "configuration_override"));
    }
}

#[cfg(test)]
mod override_tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn fields(found: &Found) -> Vec<&str> {
        found.iter().map(|(f, _)| f.as_str()).collect()
    }

    #[test]
    fn kube_manifest_must_be_a_virtual_machine_with_unique_disks() {
        let ok = obj(json!({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "spec": {"template": {"spec": {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "$KASM_NAME-pvc"}}]}}}
        }));
        assert!(kube_manifest(&ok, "o").is_empty());
        let bad = obj(json!({
            "apiVersion": "v1", "kind": "Pod",
            "spec": {"running": true, "template": {"spec": {"volumes": [{"persistentVolumeClaim": {"claimName": "disk"}}]}}}
        }));
        assert_eq!(
            fields(&kube_manifest(&bad, "o")),
            [
                "o.apiVersion",
                "o.kind",
                "o.spec.running",
                "o.spec.template.spec.volumes[0].persistentVolumeClaim.claimName"
            ]
        );
        assert_eq!(
            fields(&kube_manifest(&obj(json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine"})), "o")),
            ["o.spec"]
        );
    }
}
