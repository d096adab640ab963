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
//! 3. Wait (every [`Timings::poll`](crate::providers::Timings::poll), at most [`Timings::operation_timeout`](crate::providers::Timings::operation_timeout)) for
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
//! listed too, as a [`VmState::Deleted`](crate::providers::VmState::Deleted) entry named after their VM, so the reaper's orphan sweep
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
use serde_json::{Value, json};
use std::collections::BTreeMap;

use super::kube::Error;
pub use super::kube::vm::{CLOUDINIT_VOLUME, UNSCHEDULABLE_GRACE, USERDATA_KEY, VM_LABEL};
use super::kube::vm::{Engine, Kind};
use super::{Capabilities, ProviderError, Vm, VmProvider, VmSpec};
use crate::config::providers::{KubeInterfaceType, KubeNetworkType, KubevirtConfig};
use crate::model::OwnerLabels;

/// The provider's short name.
pub const NAME: &str = "kubevirt";

/// The dependents deleted with a VM (and swept when left).
const DEPENDENTS: &[Kind] = &[Kind::Secret, Kind::DataVolume, Kind::PersistentVolumeClaim];

/// A KubeVirt [`VmProvider`] bound to one VM-provider config. Build it with
/// [`KubevirtProvider::from_config`].
#[derive(Debug)]
pub struct KubevirtProvider {
    engine: Engine,
    config: KubevirtConfig,
}

impl KubevirtProvider {
    fn ns(&self) -> &str {
        &self.engine.ns
    }

    /// Our labels for the objects of VM `spec.name`.
    fn object_labels(&self, spec: &VmSpec) -> Result<BTreeMap<String, String>, Error> {
        super::kube::vm::object_labels(spec)
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
        let domain = super::kube::vm::domain(
            c.vm_cores,
            c.vm_memory,
            binding,
            (c.enable_tpm, c.enable_efi_boot, c.enable_secure_boot),
        );
        let disk = super::kube::vm::disk_name(name);
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

    /// The VirtualMachine object for `spec`.
    fn vm_object(&self, spec: &VmSpec, labels: &BTreeMap<String, String>) -> Result<Value, Error> {
        let config = |message: String| Error::Config { message };
        match &self.config.configuration_override {
            Some(m) => super::kube::vm::vm_from_manifest(&m.0, self.ns(), &spec.name, labels).map_err(config),
            None => {
                let mut vm = self.vm_from_fields(&spec.name, labels);
                super::kube::vm::add_cloudinit(&mut vm, &super::kube::vm::secret_name(&spec.name)).map_err(config)?;
                Ok(vm)
            }
        }
    }

    async fn create(&self, spec: &VmSpec) -> Result<Vm, Error> {
        Engine::check_name(spec)?;
        let labels = self.object_labels(spec)?;
        let secret = self.engine.cloudinit_secret(spec, &labels);
        let vm = self.vm_object(spec, &labels)?;
        self.engine.create(spec, &labels, vec![secret], vm).await
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
        match self.engine.get(id).await {
            Ok(Some(vm)) => Ok(vm),
            Ok(None) => Err(ProviderError::NotFound { provider: NAME, id: id.to_string() }),
            Err(e) => Err(e.into_provider(NAME)),
        }
    }

    async fn delete_vm(&self, id: &str) -> Result<(), ProviderError> {
        self.engine.delete(id).await.map_err(|e| e.into_provider(NAME))
    }

    async fn list_vms(&self, labels: &OwnerLabels) -> Result<Vec<Vm>, ProviderError> {
        self.engine.list(labels).await.map_err(|e| e.into_provider(NAME))
    }
}

#[cfg(test)]
mod tests;
