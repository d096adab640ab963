//! The VirtualMachine lifecycle both Kubernetes providers share (KubeVirt and Harvester run the same
//! KubeVirt `VirtualMachine` API): create by deterministic name with our labels, wait for
//! `printableStatus` Running (giving up as out of capacity when the VMI stays unschedulable), read the
//! state and address, list by label selector with leftovers of every dependent kind, and delete the VM
//! with every dependent carrying [`VM_LABEL`]. Each provider builds its own `VirtualMachine` object and
//! says which dependent kinds it makes.

use secrecy::SecretString;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::time::Instant;

use super::client::{self, Client};
use super::{Error, labels};
use crate::model::OwnerLabels;
use crate::providers::{Timings, Vm, VmSpec, VmState};

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
const HARVESTER: &[&str] = &["apis", "harvesterhci.io", "v1beta1", "namespaces"];

/// The kinds of object the providers make or read, with their collection path under a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// A build with one of the two providers makes only its own dependent kinds.
#[cfg_attr(not(all(feature = "kubevirt", feature = "harvester")), allow(dead_code))]
pub(crate) enum Kind {
    Secret,
    VirtualMachine,
    VirtualMachineInstance,
    DataVolume,
    PersistentVolumeClaim,
    /// Harvester's `KeyPair` (`harvesterhci.io/v1beta1`).
    KeyPair,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Secret => "Secret",
            Kind::VirtualMachine => "VirtualMachine",
            Kind::VirtualMachineInstance => "VirtualMachineInstance",
            Kind::DataVolume => "DataVolume",
            Kind::PersistentVolumeClaim => "PersistentVolumeClaim",
            Kind::KeyPair => "KeyPair",
        }
    }

    pub(crate) fn path<'a>(self, ns: &'a str, name: Option<&'a str>) -> Vec<&'a str> {
        let (root, plural) = match self {
            Kind::Secret => (CORE, "secrets"),
            Kind::PersistentVolumeClaim => (CORE, "persistentvolumeclaims"),
            Kind::VirtualMachine => (KUBEVIRT, "virtualmachines"),
            Kind::VirtualMachineInstance => (KUBEVIRT, "virtualmachineinstances"),
            Kind::DataVolume => (CDI, "datavolumes"),
            Kind::KeyPair => (HARVESTER, "keypairs"),
        };
        let mut p: Vec<&str> = root.to_vec();
        p.push(ns);
        p.push(plural);
        p.extend(name);
        p
    }
}

/// Whether `name` is a DNS-1123 label of at most `max` characters.
pub(crate) fn is_dns_label(name: &str, max: usize) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// The normalised state of a VM object.
pub(crate) fn state(vm: &Value) -> VmState {
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
pub(crate) fn unschedulable(vm: &Value, vmi: Option<&Value>) -> Option<String> {
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
pub(crate) fn vmi_ip(vmi: &Value) -> Option<String> {
    vmi.pointer("/status/interfaces")?
        .as_array()?
        .iter()
        .find_map(|i| i.get("ipAddress").and_then(Value::as_str).filter(|a| !a.is_empty()).map(str::to_string))
}

pub(crate) fn to_vm(vm: &Value, vmi: Option<&Value>) -> Vm {
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
pub(crate) fn add_labels(
    obj: &mut Map<String, Value>,
    labels: &BTreeMap<String, String>,
    at: &str,
) -> Result<(), String> {
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
pub(crate) fn replace_name(v: &mut Value, name: &str) {
    match v {
        Value::String(s) if s.contains("$KASM_NAME") => *s = s.replace("$KASM_NAME", name),
        Value::Array(a) => a.iter_mut().for_each(|x| replace_name(x, name)),
        Value::Object(o) => o.values_mut().for_each(|x| replace_name(x, name)),
        _ => {}
    }
}

/// The object at `path` inside `v` as a mutable map, created (as `{}`) along the way.
pub(crate) fn object_at<'a>(v: &'a mut Value, path: &[&str]) -> Result<&'a mut Map<String, Value>, String> {
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
pub(crate) fn push_to(obj: &mut Map<String, Value>, key: &str, item: Value, at: &str) -> Result<(), String> {
    obj.entry(key.to_string())
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .ok_or_else(|| format!("{at}.{key} must be a list"))?
        .push(item);
    Ok(())
}

/// The VM's `domain`: `cpu.cores`, `memory.guest` (GiB), a virtio boot disk `disk0`, the interface
/// `binding`, and with the flags `devices.tpm: {}` and `firmware.bootloader.efi.secureBoot` (Secure Boot
/// also sets `features.smm.enabled`, which KubeVirt requires for it).
pub(crate) fn domain(
    cores: u32,
    memory_gib: u32,
    binding: Value,
    (tpm, efi, secure_boot): (bool, bool, bool),
) -> Value {
    let mut devices = json!({
        "disks": [{"name": "disk0", "disk": {"bus": "virtio"}}],
        "interfaces": [binding],
    });
    if tpm {
        devices["tpm"] = json!({});
    }
    let mut domain = json!({
        "cpu": {"cores": cores},
        "memory": {"guest": format!("{memory_gib}Gi")},
        "devices": devices,
    });
    if efi {
        domain["firmware"] = json!({"bootloader": {"efi": {"secureBoot": secure_boot}}});
        if secure_boot {
            domain["features"] = json!({"smm": {"enabled": true}});
        }
    }
    domain
}

/// The name of the cloud-init Secret of VM `vm`.
pub(crate) fn secret_name(vm: &str) -> String {
    format!("{vm}-cloudinit")
}

/// The name of the boot disk (DataVolume / PVC) of VM `vm`.
pub(crate) fn disk_name(vm: &str) -> String {
    format!("{vm}-disk")
}

/// The longest VM name: the Secret's name (`N-cloudinit`) must stay a DNS label.
pub(crate) const MAX_VM_NAME: usize = 63 - "-cloudinit".len();

/// Appends the cloud-init disk and volume (a config drive from the Secret `secret`) to `vm`'s template.
pub(crate) fn add_cloudinit(vm: &mut Value, secret: &str) -> Result<(), String> {
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

/// The VirtualMachine from an override manifest: every `$KASM_NAME` replaced by `name`, the name and
/// namespace set, our labels on the VM, its template and each `dataVolumeTemplates` entry,
/// `runStrategy: Always`, and the cloud-init disk appended.
pub(crate) fn vm_from_manifest(
    manifest: &Map<String, Value>,
    ns: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Result<Value, String> {
    let mut vm = Value::Object(manifest.clone());
    replace_name(&mut vm, name);
    {
        let meta = object_at(&mut vm, &["metadata"])?;
        meta.insert("name".into(), Value::from(name));
        meta.insert("namespace".into(), Value::from(ns));
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
    add_cloudinit(&mut vm, &secret_name(name))?;
    Ok(vm)
}

/// Our labels for the objects of the VM of `spec`: the ownership labels and [`VM_LABEL`].
pub(crate) fn object_labels(spec: &VmSpec) -> Result<BTreeMap<String, String>, Error> {
    let mut l = labels::for_owner(&spec.labels).map_err(|message| Error::Config { message })?;
    l.insert(VM_LABEL.to_string(), spec.name.clone());
    Ok(l)
}

/// An object created before the VM (its Secret, a KeyPair): kind, name, body, and a value to redact
/// from errors.
pub(crate) struct Before {
    pub(crate) kind: Kind,
    pub(crate) name: String,
    pub(crate) body: Value,
    pub(crate) secret: Option<SecretString>,
}

/// The VM lifecycle on one namespace of one Kubernetes API.
#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) client: Client,
    pub(crate) ns: String,
    pub(crate) timings: Timings,
    /// The dependent kinds deleted with a VM (by [`VM_LABEL`]) and swept when left.
    pub(crate) dependents: &'static [Kind],
}

impl Engine {
    /// The cloud-init Secret of `spec` holding the rendered startup script.
    pub(crate) fn cloudinit_secret(&self, spec: &VmSpec, labels: &BTreeMap<String, String>) -> Before {
        use secrecy::ExposeSecret as _;
        let script = spec.startup_script.as_ref().map(|s| s.expose_secret().to_string()).unwrap_or_default();
        let name = secret_name(&spec.name);
        let body = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": self.ns, "labels": labels},
            "type": "Opaque",
            "stringData": {USERDATA_KEY: script},
        });
        Before { kind: Kind::Secret, name, body, secret: Some(SecretString::from(script)) }
    }

    /// Creates `obj` of `kind` by name; when it exists (409), reads it and checks it is ours for this
    /// claim (our deployment and claim labels and [`VM_LABEL`]).
    pub(crate) async fn create_named(
        &self,
        kind: Kind,
        name: &str,
        obj: &Value,
        want: &BTreeMap<String, String>,
        secret: Option<&SecretString>,
    ) -> Result<Value, Error> {
        let ns = self.ns.as_str();
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

    /// Checks the VM name of `spec` can name every object of the VM.
    pub(crate) fn check_name(spec: &VmSpec) -> Result<(), Error> {
        if is_dns_label(&spec.name, MAX_VM_NAME) {
            return Ok(());
        }
        Err(Error::Config {
            message: format!(
                "the VM name `{}` is not a DNS label of at most {MAX_VM_NAME} characters (lowercase letters, digits, `-`)",
                spec.name
            ),
        })
    }

    /// Creates `before` (in order), then the VirtualMachine `vm`, each by name, and waits for it to run.
    pub(crate) async fn create(
        &self,
        spec: &VmSpec,
        labels: &BTreeMap<String, String>,
        before: Vec<Before>,
        vm: Value,
    ) -> Result<Vm, Error> {
        Self::check_name(spec)?;
        for b in before {
            self.create_named(b.kind, &b.name, &b.body, labels, b.secret.as_ref()).await?;
        }
        self.create_named(Kind::VirtualMachine, &spec.name, &vm, labels, None).await?;
        self.wait_running(&spec.name).await
    }

    async fn vmi(&self, name: &str) -> Result<Option<Value>, Error> {
        self.client
            .get_opt(
                &Kind::VirtualMachineInstance.path(&self.ns, Some(name)),
                &format!("read the VirtualMachineInstance {name}"),
            )
            .await
    }

    /// Waits for the VM to run (every [`Timings::poll`], at most [`Timings::operation_timeout`]); gives
    /// up as out of capacity when it stays unschedulable for [`UNSCHEDULABLE_GRACE`] (at most a quarter
    /// of the operation timeout), deleting it and its dependents.
    pub(crate) async fn wait_running(&self, name: &str) -> Result<Vm, Error> {
        let deadline = Instant::now() + self.timings.operation_timeout;
        let grace = UNSCHEDULABLE_GRACE.min(self.timings.operation_timeout / 4);
        let mut stuck_since: Option<Instant> = None;
        loop {
            let vm = self
                .client
                .get(&Kind::VirtualMachine.path(&self.ns, Some(name)), &format!("read the VirtualMachine {name}"))
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
                                self.ns,
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

    /// The VM `id`; `None` when there is none (or `id` cannot name one).
    pub(crate) async fn get(&self, id: &str) -> Result<Option<Vm>, Error> {
        if !is_dns_label(id, 63) {
            return Ok(None);
        }
        let Some(vm) = self
            .client
            .get_opt(&Kind::VirtualMachine.path(&self.ns, Some(id)), &format!("read the VirtualMachine {id}"))
            .await?
        else {
            return Ok(None);
        };
        let vmi = self.vmi(id).await?;
        Ok(Some(to_vm(&vm, vmi.as_ref())))
    }

    /// Deletes the VM `id` (refusing one without our deployment label) and every dependent labelled
    /// [`VM_LABEL`] = `id` that carries our deployment label. A missing VM is success.
    pub(crate) async fn delete(&self, id: &str) -> Result<(), Error> {
        // Not a VM name: no VM of ours has it.
        if !is_dns_label(id, 63) {
            return Ok(());
        }
        let ns = self.ns.as_str();
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
        for kind in self.dependents {
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

    /// Our VMs matching `owner` (with their VMIs' addresses), and one [`VmState::Deleted`] entry per VM
    /// whose dependents are left after it is gone, so the reaper's orphan sweep removes them.
    pub(crate) async fn list(&self, owner: &OwnerLabels) -> Result<Vec<Vm>, Error> {
        let ns = self.ns.as_str();
        let selector = labels::selector(owner).map_err(|message| Error::Config { message })?;
        let vms = self.client.list(&Kind::VirtualMachine.path(ns, None), &selector, "list VirtualMachines").await?;
        let vmis = self
            .client
            .list(&Kind::VirtualMachineInstance.path(ns, None), &selector, "list VirtualMachineInstances")
            .await?;
        let vmi_of: BTreeMap<&str, &Value> = vmis.iter().map(|v| (client::name(v), v)).collect();
        let mut out: Vec<Vm> = vms.iter().map(|vm| to_vm(vm, vmi_of.get(client::name(vm)).copied())).collect();
        let live: BTreeSet<String> = out.iter().map(|v| v.id.clone()).collect();
        let mut left: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for kind in self.dependents {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_statuses_and_vmi_conditions_normalise() {
        let vm = |s: &str| json!({"metadata": {"name": "n"}, "status": {"printableStatus": s}});
        assert_eq!(state(&json!({"metadata": {"name": "n"}})), VmState::Creating);
        assert_eq!(state(&vm("Running")), VmState::Running);
        assert_eq!(state(&vm("Provisioning")), VmState::Creating);
        assert_eq!(state(&vm("Starting")), VmState::Creating);
        assert_eq!(state(&vm("Stopped")), VmState::Stopped);
        assert_eq!(state(&vm("Terminating")), VmState::Deleting);
        assert_eq!(state(&vm("ErrorUnschedulable")), VmState::Failed);
        assert_eq!(state(&vm("CrashLoopBackOff")), VmState::Failed);
        assert_eq!(state(&vm("Something new")), VmState::Unknown);
        assert_eq!(
            state(
                &json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"printableStatus": "Running"}})
            ),
            VmState::Deleting
        );
        assert!(unschedulable(&vm("ErrorUnschedulable"), None).is_some());
        let vmi = json!({"status": {"phase": "Scheduling", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient memory."}
        ], "interfaces": [{"name": "default"}, {"name": "x", "ipAddress": "10.244.1.7"}]}});
        assert!(unschedulable(&vm("Starting"), Some(&vmi)).unwrap().contains("Insufficient memory"));
        assert_eq!(vmi_ip(&vmi).as_deref(), Some("10.244.1.7"));
        assert!(unschedulable(&vm("Starting"), Some(&json!({"status": {"conditions": []}}))).is_none());
    }

    #[test]
    fn names_must_be_dns_labels() {
        assert!(is_dns_label("kasm-01jabc", 53));
        assert!(!is_dns_label("Kasm", 53));
        assert!(!is_dns_label("-x", 53));
        assert!(!is_dns_label(&"a".repeat(54), 53));
        assert!(!is_dns_label("", 53));
        assert_eq!(MAX_VM_NAME, 53);
    }
}
