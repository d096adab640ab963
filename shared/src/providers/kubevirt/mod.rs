//! The KubeVirt provider: one `VirtualMachine` per claim in the config's namespace, its disk a
//! DataVolume cloning the config's source PVC, its startup script in a Secret, every object labelled
//! with our ownership labels. It runs on the small Kubernetes client in [`crate::providers::kube`]
//! (plain `reqwest`, not the `kube` crate: see that module for why).
//!
//! # Objects and names
//! For a claim whose VM is named `N` (the claim's deterministic name, a DNS label):
//!
//! | object | API path (namespace `vm_namespace`) | name |
//! |---|---|---|
//! | `Secret` (`stringData.userdata` = the rendered startup script) | `/api/v1/namespaces/{ns}/secrets` | `N-cloudinit` |
//! | `VirtualMachine` (`kubevirt.io/v1`) | `/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachines` | `N` |
//! | `DataVolume` (`cdi.kubevirt.io/v1beta1`, a `dataVolumeTemplates` entry of the VM) | made by KubeVirt from the VM | `N-disk` |
//!
//! Every object carries our three ownership labels ([`crate::providers::kube::labels`]) and the label
//! [`VM_LABEL`] = `N`, so the dependents of a VM can be found by label after the VM is gone. The VMI
//! inherits the template's labels.
//!
//! # Create
//! 1. `POST` the Secret; 409 AlreadyExists → `GET` it and check it carries our claim's labels
//!    (else the create fails: not ours).
//! 2. `POST` the VirtualMachine (`runStrategy: Always`); 409 → `GET` and check the labels the same way.
//!    A lost answer is safe: the retry gets 409 and reads the VM. Nothing else is created by us: the
//!    DataVolume is a `dataVolumeTemplates` entry, created by KubeVirt and owned by the VM.
//! 3. Wait (every [`Timings::poll`], at most [`Timings::operation_timeout`]) for
//!    `status.printableStatus` `Running`. When the VMI stays unschedulable (its `PodScheduled`
//!    condition `False` with reason `Unschedulable`, or the VM's printable status `ErrorUnschedulable`)
//!    for [`UNSCHEDULABLE_GRACE`] (at most a quarter of the operation timeout), the VM and its
//!    dependents are deleted and the create fails as `OutOfCapacity`, so the config backs off.
//!
//! The VM's spec from the config: `domain.cpu.cores` = `vm_cores`, `domain.memory.guest` =
//! `vm_memory` Gi, a virtio disk on the DataVolume (`source.pvc` = `vm_namespace`/`vm_disk_source`,
//! `storage.resources.requests.storage` = `vm_disk_size` Gi), one interface (`masquerade: {}` or
//! `bridge: {}`) named `vm_network_name` on the pod network (`pod: {}`) or a Multus network
//! (`multus.networkName` = `vm_network_name`), the cloud-init disk, and with the flags
//! `devices.tpm: {}`, `firmware.bootloader.efi.secureBoot` (Secure Boot also sets `features.smm.enabled`,
//! which KubeVirt requires for it).
//!
//! # Config override
//! A complete VirtualMachine manifest (checked at validate time). Every `$KASM_NAME` in it becomes `N`;
//! `metadata.name` becomes `N` and `metadata.namespace` the config's; our labels are added to the VM,
//! its template and each `dataVolumeTemplates` entry; `runStrategy` is set to `Always`; the cloud-init
//! disk and volume are appended.
//!
//! # Startup script and Windows
//! The rendered script is the Secret's `userdata` key, attached as a `cloudInitConfigDrive` volume
//! (`secretRef`). Config drive is read both by cloud-init (Linux) and by cloudbase-init (Windows), so one
//! form serves both: a Windows image must have cloudbase-init installed with its ConfigDrive metadata
//! service enabled (its default), and the script is PowerShell as cloudbase-init runs it
//! (`#ps1_sysnative` first line). The key name `userdata` is KubeVirt's documented key for a user-data
//! Secret (KubeVirt user guide, "Startup scripts"); the swagger only says the Secret "contains config
//! drive userdata".
//!
//! # State and addresses
//! `status.printableStatus` of the VM (values from KubeVirt's `VirtualMachinePrintableStatus`; the
//! swagger gives the field, not the values): `Running`/`Migrating` → Running; `Provisioning`,
//! `Starting`, `WaitingForVolumeBinding`, no status yet → Creating; `Stopped`, `Paused`, `Stopping` →
//! Stopped; `Terminating` (or a `deletionTimestamp`) → Deleting; the `Error…`, `CrashLoopBackOff`,
//! `DataVolumeError` and image-pull statuses → Failed; anything else Unknown. The private IP is the
//! first `status.interfaces[].ipAddress` of the VMI.
//!
//! # List and delete
//! `list_vms` lists VMs (and VMIs, for addresses) by label selector in the namespace, every
//! `continue` page. Secrets, DataVolumes and PVCs carrying our labels whose VM no longer exists are
//! listed too, as a [`VmState::Deleted`] entry named after their VM, so the reaper's orphan sweep
//! deletes leftovers of all three kinds. `delete_vm(N)` reads the VM (refusing one without our
//! deployment label), deletes it (`propagationPolicy: Background`), then deletes every Secret,
//! DataVolume and PVC labelled [`VM_LABEL`] = `N` that carries our deployment label (404s are success). A missing VM is success.
//!
//! # Errors
//! As [`crate::providers::kube`] maps them; 403 names the verb and resource the Role lacks.

mod builder;
mod preflight;

pub use preflight::CHECKS;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::time::Instant;

use super::kube::client::{self, Client};
use super::kube::{Error, labels};
use super::{Capabilities, ProviderError, Timings, Vm, VmProvider, VmSpec, VmState};
use crate::config::providers::{KubeInterfaceType, KubeNetworkType, KubevirtConfig};
use crate::model::OwnerLabels;

/// The provider's short name.
pub const NAME: &str = "kubevirt";

/// The label naming the VM an object belongs to (its value is the VM's name, a DNS label).
pub const VM_LABEL: &str = "kasm-autoscale-vm";

/// How long a VMI may stay unschedulable before the create gives up as out of capacity.
pub const UNSCHEDULABLE_GRACE: Duration = Duration::from_secs(120);

/// The key of the user data in the cloud-init Secret.
pub const USERDATA_KEY: &str = "userdata";

/// The name of the cloud-init disk and volume we add.
pub const CLOUDINIT_VOLUME: &str = "kasm-cloudinit";

const CORE: &[&str] = &["api", "v1", "namespaces"];
const KUBEVIRT: &[&str] = &["apis", "kubevirt.io", "v1", "namespaces"];
const CDI: &[&str] = &["apis", "cdi.kubevirt.io", "v1beta1", "namespaces"];

/// A KubeVirt [`VmProvider`] bound to one VM-provider config. Build it with
/// [`KubevirtProvider::from_config`].
#[derive(Debug)]
pub struct KubevirtProvider {
    client: Client,
    config: KubevirtConfig,
    timings: Timings,
}

/// The kinds of object we make, with their collection path under a namespace.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Secret,
    VirtualMachine,
    VirtualMachineInstance,
    DataVolume,
    PersistentVolumeClaim,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Secret => "Secret",
            Kind::VirtualMachine => "VirtualMachine",
            Kind::VirtualMachineInstance => "VirtualMachineInstance",
            Kind::DataVolume => "DataVolume",
            Kind::PersistentVolumeClaim => "PersistentVolumeClaim",
        }
    }

    fn path<'a>(self, ns: &'a str, name: Option<&'a str>) -> Vec<&'a str> {
        let (root, plural) = match self {
            Kind::Secret => (CORE, "secrets"),
            Kind::PersistentVolumeClaim => (CORE, "persistentvolumeclaims"),
            Kind::VirtualMachine => (KUBEVIRT, "virtualmachines"),
            Kind::VirtualMachineInstance => (KUBEVIRT, "virtualmachineinstances"),
            Kind::DataVolume => (CDI, "datavolumes"),
        };
        let mut p: Vec<&str> = root.to_vec();
        p.push(ns);
        p.push(plural);
        p.extend(name);
        p
    }
}

/// The dependents deleted with a VM (and swept when left).
const DEPENDENTS: [Kind; 3] = [Kind::Secret, Kind::DataVolume, Kind::PersistentVolumeClaim];

/// Whether `name` is a DNS-1123 label of at most `max` characters.
fn is_dns_label(name: &str, max: usize) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// The normalised state of a VM object.
fn state(vm: &Value) -> VmState {
    if vm.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null()) {
        return VmState::Deleting;
    }
    match vm.pointer("/status/printableStatus").and_then(Value::as_str) {
        None | Some("") => VmState::Creating,
        Some("Running" | "Migrating") => VmState::Running,
        Some("Provisioning" | "Starting" | "WaitingForVolumeBinding" | "WaitingForReceiver") => VmState::Creating,
        Some("Stopped" | "Paused" | "Stopping") => VmState::Stopped,
        Some("Terminating") => VmState::Deleting,
        Some(s) if s.starts_with("Err") || s.ends_with("BackOff") || s == "DataVolumeError" => VmState::Failed,
        Some(_) => VmState::Unknown,
    }
}

/// Whether the VM or its VMI says the VMI cannot be scheduled (no node has room for it).
fn unschedulable(vm: &Value, vmi: Option<&Value>) -> Option<String> {
    let conds = vmi.and_then(|v| v.pointer("/status/conditions")).and_then(Value::as_array);
    let scheduler = conds.into_iter().flatten().find(|c| {
        c.get("type").and_then(Value::as_str) == Some("PodScheduled")
            && c.get("status").and_then(Value::as_str) == Some("False")
            && c.get("reason").and_then(Value::as_str) == Some("Unschedulable")
    });
    if let Some(c) = scheduler {
        return Some(format!(
            "the VMI cannot be scheduled: {}",
            c.get("message").and_then(Value::as_str).unwrap_or("no node has room for it")
        ));
    }
    (vm.pointer("/status/printableStatus").and_then(Value::as_str) == Some("ErrorUnschedulable"))
        .then(|| "the VM's status is ErrorUnschedulable".to_string())
}

/// The first interface address of a VMI.
fn vmi_ip(vmi: &Value) -> Option<String> {
    vmi.pointer("/status/interfaces")?
        .as_array()?
        .iter()
        .find_map(|i| i.get("ipAddress").and_then(Value::as_str).filter(|a| !a.is_empty()).map(str::to_string))
}

fn to_vm(vm: &Value, vmi: Option<&Value>) -> Vm {
    Vm {
        id: client::name(vm).to_string(),
        name: client::name(vm).to_string(),
        state: state(vm),
        labels: labels::owner_labels(&client::labels(vm)),
        private_ip: vmi.and_then(vmi_ip),
        public_ip: None,
        created_at: vm
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc)),
    }
}

/// Adds `labels` to the object's `metadata.labels` (creating both).
fn add_labels(obj: &mut Map<String, Value>, labels: &BTreeMap<String, String>, at: &str) -> Result<(), String> {
    let meta = obj.entry("metadata").or_insert_with(|| json!({}));
    let meta = meta.as_object_mut().ok_or_else(|| format!("{at}.metadata must be a mapping"))?;
    let l = meta.entry("labels").or_insert_with(|| json!({}));
    let l = l.as_object_mut().ok_or_else(|| format!("{at}.metadata.labels must be a mapping"))?;
    for (k, v) in labels {
        l.insert(k.clone(), Value::from(v.clone()));
    }
    Ok(())
}

/// Every string of `v` with `$KASM_NAME` replaced by `name`.
fn replace_name(v: &mut Value, name: &str) {
    match v {
        Value::String(s) if s.contains("$KASM_NAME") => *s = s.replace("$KASM_NAME", name),
        Value::Array(a) => a.iter_mut().for_each(|x| replace_name(x, name)),
        Value::Object(o) => o.values_mut().for_each(|x| replace_name(x, name)),
        _ => {}
    }
}

/// The object at `ptr` inside `v` as a mutable map, created (as `{}`) along the way.
fn object_at<'a>(v: &'a mut Value, path: &[&str]) -> Result<&'a mut Map<String, Value>, String> {
    let mut cur = v;
    let mut at = String::new();
    for p in path {
        at.push('.');
        at.push_str(p);
        let o =
            cur.as_object_mut().ok_or_else(|| format!("configuration_override{at}: the parent is not a mapping"))?;
        cur = o.entry(p.to_string()).or_insert_with(|| json!({}));
    }
    cur.as_object_mut().ok_or_else(|| format!("configuration_override{at} must be a mapping"))
}

/// Appends `item` to the array `key` of `obj` (creating it).
fn push_to(obj: &mut Map<String, Value>, key: &str, item: Value, at: &str) -> Result<(), String> {
    obj.entry(key.to_string())
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .ok_or_else(|| format!("{at}.{key} must be a list"))?
        .push(item);
    Ok(())
}

impl KubevirtProvider {
    fn ns(&self) -> &str {
        self.config.vm_namespace.trim()
    }

    fn secret_name(vm: &str) -> String {
        format!("{vm}-cloudinit")
    }

    fn disk_name(vm: &str) -> String {
        format!("{vm}-disk")
    }

    /// Our labels for the objects of VM `vm`.
    fn object_labels(&self, spec: &VmSpec) -> Result<BTreeMap<String, String>, Error> {
        let mut l = labels::for_owner(&spec.labels).map_err(|message| Error::Config { message })?;
        l.insert(VM_LABEL.to_string(), spec.name.clone());
        Ok(l)
    }

    /// The VirtualMachine for `spec` from the config's fields.
    fn vm_from_fields(&self, name: &str, labels: &BTreeMap<String, String>) -> Value {
        let c = &self.config;
        let net = c.vm_network_name.trim();
        let binding = match c.vm_interface_type {
            KubeInterfaceType::Masquerade => json!({"name": net, "masquerade": {}}),
            KubeInterfaceType::Bridge => json!({"name": net, "bridge": {}}),
        };
        let network = match c.vm_network_type {
            KubeNetworkType::Pod => json!({"name": net, "pod": {}}),
            KubeNetworkType::Multus => json!({"name": net, "multus": {"networkName": net}}),
        };
        let mut devices = json!({
            "disks": [
                {"name": "disk0", "disk": {"bus": "virtio"}},
            ],
            "interfaces": [binding],
        });
        if c.enable_tpm {
            devices["tpm"] = json!({});
        }
        let mut domain = json!({
            "cpu": {"cores": c.vm_cores},
            "memory": {"guest": format!("{}Gi", c.vm_memory)},
            "devices": devices,
        });
        if c.enable_efi_boot {
            domain["firmware"] = json!({"bootloader": {"efi": {"secureBoot": c.enable_secure_boot}}});
            if c.enable_secure_boot {
                domain["features"] = json!({"smm": {"enabled": true}});
            }
        }
        let disk = Self::disk_name(name);
        json!({
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachine",
            "metadata": {"name": name, "namespace": self.ns(), "labels": labels},
            "spec": {
                "runStrategy": "Always",
                "dataVolumeTemplates": [{
                    "metadata": {"name": disk, "labels": labels},
                    "spec": {
                        "source": {"pvc": {"namespace": self.ns(), "name": c.vm_disk_source.trim()}},
                        "storage": {"resources": {"requests": {"storage": format!("{}Gi", c.vm_disk_size)}}},
                    },
                }],
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "domain": domain,
                        "networks": [network],
                        "volumes": [{"name": "disk0", "dataVolume": {"name": disk}}],
                    },
                },
            },
        })
    }

    /// The VirtualMachine from the override manifest (see the module docs).
    fn vm_from_manifest(
        &self,
        manifest: &Map<String, Value>,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Value, String> {
        let mut vm = Value::Object(manifest.clone());
        replace_name(&mut vm, name);
        {
            let meta = object_at(&mut vm, &["metadata"])?;
            meta.insert("name".into(), Value::from(name));
            meta.insert("namespace".into(), Value::from(self.ns()));
        }
        add_labels(object_at(&mut vm, &[])?, labels, "configuration_override")?;
        object_at(&mut vm, &["spec"])?.insert("runStrategy".into(), Value::from("Always"));
        add_labels(object_at(&mut vm, &["spec", "template"])?, labels, "configuration_override.spec.template")?;
        if let Some(dvs) = vm.pointer_mut("/spec/dataVolumeTemplates") {
            let dvs = dvs
                .as_array_mut()
                .ok_or_else(|| "configuration_override.spec.dataVolumeTemplates must be a list".to_string())?;
            for (i, dv) in dvs.iter_mut().enumerate() {
                let at = format!("configuration_override.spec.dataVolumeTemplates[{i}]");
                let dv = dv.as_object_mut().ok_or_else(|| format!("{at} must be a mapping"))?;
                add_labels(dv, labels, &at)?;
            }
        }
        Self::add_cloudinit(&mut vm, &Self::secret_name(name))?;
        Ok(vm)
    }

    /// Appends the cloud-init disk and volume to `vm`'s template.
    fn add_cloudinit(vm: &mut Value, secret: &str) -> Result<(), String> {
        let at = "spec.template.spec";
        let devices = object_at(vm, &["spec", "template", "spec", "domain", "devices"])?;
        push_to(devices, "disks", json!({"name": CLOUDINIT_VOLUME, "disk": {"bus": "virtio"}}), at)?;
        let tspec = object_at(vm, &["spec", "template", "spec"])?;
        push_to(
            tspec,
            "volumes",
            json!({"name": CLOUDINIT_VOLUME, "cloudInitConfigDrive": {"secretRef": {"name": secret}}}),
            at,
        )
    }

    /// The VirtualMachine object for `spec`.
    fn vm_object(&self, spec: &VmSpec, labels: &BTreeMap<String, String>) -> Result<Value, Error> {
        let config = |message: String| Error::Config { message };
        match &self.config.configuration_override {
            Some(m) => self.vm_from_manifest(&m.0, &spec.name, labels).map_err(config),
            None => {
                let mut vm = self.vm_from_fields(&spec.name, labels);
                Self::add_cloudinit(&mut vm, &Self::secret_name(&spec.name)).map_err(config)?;
                Ok(vm)
            }
        }
    }

    /// Creates `obj` of `kind` by name; when it exists (409), reads it and checks it is ours for this
    /// claim (our deployment and claim labels and [`VM_LABEL`]).
    async fn create_named(
        &self,
        kind: Kind,
        name: &str,
        obj: &Value,
        want: &BTreeMap<String, String>,
        secret: Option<&SecretString>,
    ) -> Result<Value, Error> {
        let ns = self.ns();
        let what = format!("create the {} {name}", kind.name());
        match self.client.post(&kind.path(ns, None), obj, &what, secret).await {
            Ok(v) => {
                tracing::info!(kind = kind.name(), name, "created");
                Ok(v)
            }
            Err(e) if e.status() == Some(409) && e.reason().as_deref() == Some("AlreadyExists") => {
                let found =
                    self.client.get(&kind.path(ns, Some(name)), &format!("read the {} {name}", kind.name())).await?;
                let have = client::labels(&found);
                let same = [OwnerLabels::DEPLOYMENT, OwnerLabels::CLAIM, VM_LABEL]
                    .iter()
                    .all(|k| have.contains_key(*k) && have.get(*k) == want.get(*k));
                if !same {
                    return Err(Error::NotOurs { kind: kind.name(), name: name.to_string() });
                }
                tracing::info!(kind = kind.name(), name, "exists for this claim; resuming");
                Ok(found)
            }
            Err(e) => Err(e),
        }
    }

    async fn vmi(&self, name: &str) -> Result<Option<Value>, Error> {
        self.client
            .get_opt(
                &Kind::VirtualMachineInstance.path(self.ns(), Some(name)),
                &format!("read the VirtualMachineInstance {name}"),
            )
            .await
    }

    /// Waits for the VM to run (see the module docs); gives up as out of capacity when it stays
    /// unschedulable, deleting it.
    async fn wait_running(&self, name: &str) -> Result<Vm, Error> {
        let deadline = Instant::now() + self.timings.operation_timeout;
        let grace = UNSCHEDULABLE_GRACE.min(self.timings.operation_timeout / 4);
        let mut stuck_since: Option<Instant> = None;
        loop {
            let vm = self
                .client
                .get(&Kind::VirtualMachine.path(self.ns(), Some(name)), &format!("read the VirtualMachine {name}"))
                .await?;
            let vmi = self.vmi(name).await?;
            match state(&vm) {
                VmState::Running => return Ok(to_vm(&vm, vmi.as_ref())),
                VmState::Failed if unschedulable(&vm, vmi.as_ref()).is_none() => {
                    // A failed VM is returned as it is: the engine's health checks act on it.
                    return Ok(to_vm(&vm, vmi.as_ref()));
                }
                VmState::Deleting => {
                    return Err(Error::Timeout {
                        message: format!("VirtualMachine {name} is being deleted while being created"),
                    });
                }
                _ => {}
            }
            match unschedulable(&vm, vmi.as_ref()) {
                Some(why) => {
                    let since = *stuck_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= grace {
                        tracing::warn!(vm = name, reason = %why, "the VM cannot be scheduled; deleting it");
                        self.delete(name).await?;
                        return Err(Error::NoCapacity {
                            message: format!(
                                "VirtualMachine {name} in namespace {}: {why} (for {} s); deleted it",
                                self.ns(),
                                grace.as_secs()
                            ),
                        });
                    }
                }
                None => stuck_since = None,
            }
            if Instant::now() + self.timings.poll > deadline {
                return Err(Error::Timeout {
                    message: format!(
                        "VirtualMachine {name} is not running after {} s (status {})",
                        self.timings.operation_timeout.as_secs(),
                        vm.pointer("/status/printableStatus").and_then(Value::as_str).unwrap_or("none yet")
                    ),
                });
            }
            tokio::time::sleep(self.timings.poll).await;
        }
    }

    async fn create(&self, spec: &VmSpec) -> Result<Vm, Error> {
        if !is_dns_label(&spec.name, 63 - "-cloudinit".len()) {
            return Err(Error::Config {
                message: format!(
                    "the VM name `{}` is not a DNS label of at most {} characters (lowercase letters, digits, `-`)",
                    spec.name,
                    63 - "-cloudinit".len()
                ),
            });
        }
        let labels = self.object_labels(spec)?;
        let script = spec.startup_script.as_ref().map(|s| s.expose_secret().to_string()).unwrap_or_default();
        let secret_name = Self::secret_name(&spec.name);
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret_name, "namespace": self.ns(), "labels": labels},
            "type": "Opaque",
            "stringData": {USERDATA_KEY: script},
        });
        let redact = SecretString::from(script);
        self.create_named(Kind::Secret, &secret_name, &secret, &labels, Some(&redact)).await?;
        let vm = self.vm_object(spec, &labels)?;
        self.create_named(Kind::VirtualMachine, &spec.name, &vm, &labels, None).await?;
        self.wait_running(&spec.name).await
    }

    async fn get(&self, id: &str) -> Result<Option<Vm>, Error> {
        if !is_dns_label(id, 63) {
            return Ok(None);
        }
        let Some(vm) = self
            .client
            .get_opt(&Kind::VirtualMachine.path(self.ns(), Some(id)), &format!("read the VirtualMachine {id}"))
            .await?
        else {
            return Ok(None);
        };
        let vmi = self.vmi(id).await?;
        Ok(Some(to_vm(&vm, vmi.as_ref())))
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        // Not a VM name: no VM of ours has it.
        if !is_dns_label(id, 63) {
            return Ok(());
        }
        let ns = self.ns();
        if let Some(vm) = self
            .client
            .get_opt(&Kind::VirtualMachine.path(ns, Some(id)), &format!("read the VirtualMachine {id}"))
            .await?
        {
            if !labels::is_ours(&client::labels(&vm)) {
                return Err(Error::NotOurs { kind: "VirtualMachine", name: id.to_string() });
            }
            if self
                .client
                .delete(&Kind::VirtualMachine.path(ns, Some(id)), &format!("delete the VirtualMachine {id}"))
                .await?
            {
                tracing::info!(vm = id, "VirtualMachine deleted");
            }
        }
        // The dependents by label: this VM's name (each checked to carry a deployment label of ours).
        let selector = format!("{VM_LABEL}={id}");
        for kind in DEPENDENTS {
            let what = format!("list the {}s of VirtualMachine {id}", kind.name());
            for obj in self.client.list(&kind.path(ns, None), &selector, &what).await? {
                let name = client::name(&obj);
                if name.is_empty() || !labels::is_ours(&client::labels(&obj)) {
                    continue;
                }
                if self.client.delete(&kind.path(ns, Some(name)), &format!("delete the {} {name}", kind.name())).await?
                {
                    tracing::info!(kind = kind.name(), name, vm = id, "dependent deleted");
                }
            }
        }
        Ok(())
    }

    async fn list(&self, owner: &OwnerLabels) -> Result<Vec<Vm>, Error> {
        let ns = self.ns();
        let selector = labels::selector(owner).map_err(|message| Error::Config { message })?;
        let vms = self.client.list(&Kind::VirtualMachine.path(ns, None), &selector, "list VirtualMachines").await?;
        let vmis = self
            .client
            .list(&Kind::VirtualMachineInstance.path(ns, None), &selector, "list VirtualMachineInstances")
            .await?;
        let vmi_of: BTreeMap<&str, &Value> = vmis.iter().map(|v| (client::name(v), v)).collect();
        let mut out: Vec<Vm> = vms.iter().map(|vm| to_vm(vm, vmi_of.get(client::name(vm)).copied())).collect();
        // Dependents whose VM is gone: one Deleted entry per VM name, so the orphan sweep removes them.
        let live: BTreeSet<String> = out.iter().map(|v| v.id.clone()).collect();
        let mut left: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for kind in DEPENDENTS {
            let what = format!("list {}s", kind.name());
            for obj in self.client.list(&kind.path(ns, None), &selector, &what).await? {
                let l = client::labels(&obj);
                let Some(vm) = l.get(VM_LABEL).filter(|v| !live.contains(*v)) else { continue };
                left.entry(vm.clone()).or_insert_with(|| labels::owner_labels(&l));
            }
        }
        out.extend(left.into_iter().map(|(name, labels)| Vm {
            id: name.clone(),
            name,
            state: VmState::Deleted,
            labels,
            private_ip: None,
            public_ip: None,
            created_at: None,
        }));
        Ok(out.into_iter().filter(|vm| owner.matches(&vm.labels)).collect())
    }
}

#[async_trait]
impl VmProvider for KubevirtProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn preflight(&self) -> Vec<super::Check> {
        KubevirtProvider::preflight(self).await
    }

    fn capabilities(&self) -> Capabilities {
        // Create by deterministic name (409 → read); lists by label selector.
        Capabilities { idempotency_token: false, windows_password: false, server_side_label_filter: true }
    }

    async fn create_vm(&self, spec: &VmSpec) -> Result<Vm, ProviderError> {
        self.create(spec).await.map_err(|e| e.into_provider(NAME))
    }

    async fn get_vm(&self, id: &str) -> Result<Vm, ProviderError> {
        match self.get(id).await {
            Ok(Some(vm)) => Ok(vm),
            Ok(None) => Err(ProviderError::NotFound { provider: NAME, id: id.to_string() }),
            Err(e) => Err(e.into_provider(NAME)),
        }
    }

    async fn delete_vm(&self, id: &str) -> Result<(), ProviderError> {
        self.delete(id).await.map_err(|e| e.into_provider(NAME))
    }

    async fn list_vms(&self, labels: &OwnerLabels) -> Result<Vec<Vm>, ProviderError> {
        self.list(labels).await.map_err(|e| e.into_provider(NAME))
    }
}

#[cfg(test)]
mod tests;
