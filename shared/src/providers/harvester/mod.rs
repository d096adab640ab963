//! The Harvester provider: one KubeVirt `VirtualMachine` per claim in the config's namespace of a
//! Harvester cluster, its boot disk a PVC made from a Harvester `VirtualMachineImage` the way
//! Harvester's own VM builder writes it, its startup script in a Secret, an optional `KeyPair` for the
//! SSH key, every object labelled with our ownership labels. It runs on the same Kubernetes client and
//! VM lifecycle as the KubeVirt provider ([`crate::providers::kube`], [`crate::providers::kube::vm`]):
//! "one Kubernetes client, two providers".
//!
//! # Objects and names
//! For a claim whose VM is named `N` (the claim's deterministic name, a DNS label), in `vm_namespace`:
//!
//! | object | API path | name |
//! |---|---|---|
//! | `Secret` (`stringData.userdata` = the rendered startup script) | `/api/v1/namespaces/{ns}/secrets` | `N-cloudinit` |
//! | `KeyPair` (`harvesterhci.io/v1beta1`, `spec.publicKey`; only with `vm_ssh_public_key`) | `/apis/harvesterhci.io/v1beta1/namespaces/{ns}/keypairs` | `N-sshkey` |
//! | `VirtualMachine` (`kubevirt.io/v1`) | `/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachines` | `N` |
//! | `PersistentVolumeClaim` (the boot disk) | made by Harvester's VM controller from the VM's annotation | `N-disk` |
//!
//! Every object carries our three ownership labels and [`VM_LABEL`] = `N`.
//!
//! # The disk from a Harvester image
//! `disk_image` names a `VirtualMachineImage` (`name`, in `vm_namespace`, or `namespace/name`). Before
//! creating, the provider reads it (`GET /apis/harvesterhci.io/v1beta1/namespaces/{ns}/virtualmachineimages/{name}`)
//! and needs its `Imported` condition `True` (condition names: Harvester
//! `pkg/apis/harvesterhci.io/v1beta1/image.go`, `ImageImported = "Imported"`) and its
//! `status.storageClassName` (CRD `harvesterhci.io_virtualmachineimages.yaml`; set by Harvester's image
//! operator, `pkg/image/common/operator.go`). The VM carries the annotation
//! `harvesterhci.io/volumeClaimTemplates` (Harvester `pkg/util/constants.go`), a JSON list with one PVC:
//! name `N-disk`, our labels, annotation `harvesterhci.io/imageId` = `<image namespace>/<image name>`,
//! `accessModes: [ReadWriteMany]`, `volumeMode: Block`, `storageClassName` = the image's storage class,
//! `resources.requests.storage` = `disk_size` Gi — the shape of Harvester's VM builder
//! (`pkg/builder/disk.go`, `PVCVolume`). Harvester's VM controller
//! (`pkg/controller/master/virtualmachine/vm_controller.go`, `createPVCsFromAnnotation`) creates that
//! PVC as written (labels included). The VM's volume `disk0` is `persistentVolumeClaim.claimName: N-disk`.
//! All of these are from Harvester's source at commit `3d63c2af15db747e4a803b18b7832049b88cb00e`, the
//! commit the spec folder was copied from.
//!
//! Images with `spec.backend: cdi` are refused (at create and in preflight): for them Harvester's
//! controller makes a CDI `DataVolume` instead (`createDataVolume`), without the template's labels, so
//! the disk could not be found and deleted by our labels.
//!
//! # The SSH key
//! With `vm_ssh_public_key`, a `KeyPair` `N-sshkey` (`spec.publicKey`, CRD
//! `harvesterhci.io_keypairs.yaml`) is created with the VM and the template carries the annotation
//! `harvesterhci.io/sshNames` = `["<ns>/N-sshkey"]` (Harvester `pkg/builder/vm.go`), so Harvester's UI
//! shows the key on the VM. The key reaches the guest through the startup script's `{ssh_key}`.
//!
//! # Create, state, list, delete, errors
//! As [`crate::providers::kube::vm`] does them for both providers: objects created by name (409
//! AlreadyExists → read and check our claim labels), `runStrategy: Always`, wait for
//! `printableStatus` Running, an unschedulable VMI is `OutOfCapacity` after a bounded wait (the VM
//! deleted), list by label selector across `continue` pages with leftovers of every dependent kind
//! (Secret, KeyPair, PVC) for the orphan sweep, and delete the VM (refusing one without our deployment
//! label) and then every dependent labelled [`VM_LABEL`] = `N`. Harvester does not make the PVCs from
//! the annotation owned by the VM (no ownerReference), so they are deleted explicitly. Errors map as
//! [`crate::providers::kube`] maps them.
//!
//! # VM spec and config override
//! `domain.cpu.cores` = `cores`, `domain.memory.guest` = `memory` Gi, a virtio disk `disk0`, one
//! interface `default` (`masquerade: {}` or `bridge: {}`) on the pod network or the Multus network
//! `network_name` (`multus.networkName`), the cloud-init config drive from the Secret, and TPM / EFI /
//! Secure Boot blocks as the KubeVirt provider writes them. A `configuration_override` manifest is
//! used instead as the KubeVirt provider does (name, namespace, labels, `runStrategy`, cloud-init
//! disk, `$KASM_NAME` replaced); our labels are also added to every PVC of its
//! `harvesterhci.io/volumeClaimTemplates` annotation, so its disks are deleted with the VM.
//!
//! # Startup script and Windows
//! As on KubeVirt: the rendered script is the Secret's `userdata` key on a `cloudInitConfigDrive`
//! volume, read by cloud-init (Linux) and cloudbase-init (Windows, PowerShell with a `#ps1_sysnative`
//! first line; the image must have cloudbase-init with its ConfigDrive service).

mod builder;
mod preflight;

pub use preflight::{CHECKS, RBAC};

use async_trait::async_trait;
use serde_json::{Value, json};
use std::collections::BTreeMap;

use super::kube::vm::{self as kvm, Before, Engine, Kind};
pub use super::kube::vm::{CLOUDINIT_VOLUME, USERDATA_KEY, VM_LABEL};
use super::kube::{Error, client};
use super::{Capabilities, ProviderError, Vm, VmProvider, VmSpec};
use crate::config::providers::{HarvesterConfig, KubeInterfaceType, KubeNetworkType};
use crate::model::OwnerLabels;

/// The provider's short name.
pub const NAME: &str = "harvester";

/// Harvester's annotation listing the PVCs its VM controller creates for a VM
/// (`pkg/util/constants.go`, `AnnotationVolumeClaimTemplates`).
pub const VOLUME_CLAIM_TEMPLATES: &str = "harvesterhci.io/volumeClaimTemplates";

/// Harvester's annotation naming the image a PVC is made from, `<namespace>/<name>`
/// (`pkg/util/constants.go`, `AnnotationImageID`).
pub const IMAGE_ID: &str = "harvesterhci.io/imageId";

/// Harvester's VM template annotation naming its KeyPairs (`pkg/builder/vm.go`,
/// `AnnotationKeyVirtualMachineSSHNames`).
pub const SSH_NAMES: &str = "harvesterhci.io/sshNames";

/// The dependents deleted with a VM (and swept when left).
const DEPENDENTS: &[Kind] = &[Kind::Secret, Kind::KeyPair, Kind::PersistentVolumeClaim];

/// A Harvester [`VmProvider`] bound to one VM-provider config. Build it with
/// [`HarvesterProvider::from_config`].
#[derive(Debug)]
pub struct HarvesterProvider {
    engine: Engine,
    config: HarvesterConfig,
}

/// The image a disk is made from, as read from Harvester.
#[derive(Debug, Clone, PartialEq)]
struct Image {
    /// `<namespace>/<name>`.
    id: String,
    storage_class: String,
}

fn keypair_name(vm: &str) -> String {
    format!("{vm}-sshkey")
}

/// The `Imported` condition of a VirtualMachineImage: `(status, message)`.
fn imported(img: &Value) -> Option<(String, String)> {
    img.pointer("/status/conditions")?.as_array()?.iter().find_map(|c| {
        (c.get("type").and_then(Value::as_str) == Some("Imported")).then(|| {
            (
                c.get("status").and_then(Value::as_str).unwrap_or_default().to_string(),
                c.get("message").and_then(Value::as_str).unwrap_or_default().to_string(),
            )
        })
    })
}

/// Why the image cannot give disks, `None` when it can: it must be `Imported` and have a storage
/// class, and not use the CDI backend.
fn image_problem(img: &Value) -> Option<String> {
    if img.pointer("/spec/backend").and_then(Value::as_str) == Some("cdi") {
        return Some("uses the cdi backend, whose disks Harvester makes without our labels (not supported)".into());
    }
    match imported(img) {
        Some((s, _)) if s == "True" => {}
        Some((s, m)) => {
            return Some(format!(
                "is not imported yet (condition Imported is {s}{})",
                if m.is_empty() { String::new() } else { format!(": {m}") }
            ));
        }
        None => return Some("has no Imported condition yet".into()),
    }
    if img.pointer("/status/storageClassName").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Some("has no status.storageClassName".into());
    }
    None
}

impl HarvesterProvider {
    fn ns(&self) -> &str {
        &self.engine.ns
    }

    /// `(namespace, name)` of `disk_image`.
    fn image_ref(&self) -> (&str, &str) {
        let d = self.config.disk_image.trim();
        d.split_once('/').unwrap_or((self.ns(), d))
    }

    /// Reads the image and checks it can give disks.
    async fn image(&self) -> Result<Image, Error> {
        let (ns, name) = self.image_ref();
        let path = ["apis", "harvesterhci.io", "v1beta1", "namespaces", ns, "virtualmachineimages", name];
        let img =
            self.engine.client.get_opt(&path, &format!("read the VirtualMachineImage {ns}/{name}")).await?.ok_or_else(
                || Error::Config {
                    message: format!("disk_image: no VirtualMachineImage `{name}` in namespace `{ns}`"),
                },
            )?;
        if let Some(why) = image_problem(&img) {
            return Err(Error::Config { message: format!("disk_image: VirtualMachineImage `{ns}/{name}` {why}") });
        }
        let storage_class =
            img.pointer("/status/storageClassName").and_then(Value::as_str).unwrap_or_default().to_string();
        Ok(Image { id: format!("{ns}/{}", client::name(&img)), storage_class })
    }

    /// The boot disk's PVC template (see the module docs).
    fn disk_template(&self, name: &str, image: &Image, labels: &BTreeMap<String, String>) -> Value {
        json!({
            "metadata": {
                "name": kvm::disk_name(name),
                "labels": labels,
                "annotations": {IMAGE_ID: image.id},
            },
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": format!("{}Gi", self.config.disk_size)}},
                "volumeMode": "Block",
                "storageClassName": image.storage_class,
            },
        })
    }

    /// The VirtualMachine for `name` from the config's fields.
    fn vm_from_fields(&self, name: &str, image: &Image, labels: &BTreeMap<String, String>) -> Result<Value, Error> {
        let c = &self.config;
        let binding = match c.interface_type {
            KubeInterfaceType::Masquerade => json!({"name": "default", "masquerade": {}}),
            KubeInterfaceType::Bridge => json!({"name": "default", "bridge": {}}),
        };
        let network = match c.network_type {
            KubeNetworkType::Pod => json!({"name": "default", "pod": {}}),
            KubeNetworkType::Multus => {
                json!({"name": "default", "multus": {"networkName": c.network_name.as_deref().unwrap_or_default().trim()}})
            }
        };
        let domain = kvm::domain(c.cores, c.memory, binding, (c.enable_tpm, c.enable_efi_boot, c.enable_secure_boot));
        let templates = serde_json::to_string(&[self.disk_template(name, image, labels)])
            .map_err(|e| Error::Config { message: format!("the disk template does not serialise: {e}") })?;
        Ok(json!({
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachine",
            "metadata": {
                "name": name,
                "namespace": self.ns(),
                "labels": labels,
                "annotations": {VOLUME_CLAIM_TEMPLATES: templates},
            },
            "spec": {
                "runStrategy": "Always",
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "domain": domain,
                        "networks": [network],
                        "volumes": [{"name": "disk0", "persistentVolumeClaim": {"claimName": kvm::disk_name(name)}}],
                    },
                },
            },
        }))
    }

    /// Adds our labels to every PVC of the VM's volumeClaimTemplates annotation (override manifests).
    fn label_claim_templates(vm: &mut Value, labels: &BTreeMap<String, String>) -> Result<(), String> {
        let at = format!("configuration_override.metadata.annotations[{VOLUME_CLAIM_TEMPLATES}]");
        let Some(text) = vm.pointer(&format!("/metadata/annotations/{}", VOLUME_CLAIM_TEMPLATES.replace('/', "~1")))
        else {
            return Ok(());
        };
        let text = text.as_str().ok_or_else(|| format!("{at} must be a string (JSON text)"))?;
        let mut pvcs: Vec<Value> =
            serde_json::from_str(text).map_err(|e| format!("{at} is not a JSON list of PVCs: {e}"))?;
        for (i, pvc) in pvcs.iter_mut().enumerate() {
            let pvc = pvc.as_object_mut().ok_or_else(|| format!("{at}[{i}] must be an object"))?;
            kvm::add_labels(pvc, labels, &format!("{at}[{i}]"))?;
        }
        let text = serde_json::to_string(&pvcs).map_err(|e| format!("{at}: {e}"))?;
        kvm::object_at(vm, &["metadata", "annotations"])?.insert(VOLUME_CLAIM_TEMPLATES.into(), Value::from(text));
        Ok(())
    }

    /// The VirtualMachine object for `spec` (`image` is read only without an override).
    fn vm_object(
        &self,
        spec: &VmSpec,
        image: Option<&Image>,
        labels: &BTreeMap<String, String>,
    ) -> Result<Value, Error> {
        let config = |message: String| Error::Config { message };
        let mut vm = match (&self.config.configuration_override, image) {
            (Some(m), _) => {
                let mut vm = kvm::vm_from_manifest(&m.0, self.ns(), &spec.name, labels).map_err(config)?;
                Self::label_claim_templates(&mut vm, labels).map_err(config)?;
                vm
            }
            (None, Some(image)) => {
                let mut vm = self.vm_from_fields(&spec.name, image, labels)?;
                kvm::add_cloudinit(&mut vm, &kvm::secret_name(&spec.name)).map_err(config)?;
                vm
            }
            (None, None) => return Err(config("no image for the VM's disk".into())),
        };
        if self.ssh_key().is_some() {
            let names = json!([format!("{}/{}", self.ns(), keypair_name(&spec.name))]).to_string();
            kvm::object_at(&mut vm, &["spec", "template", "metadata", "annotations"])
                .map_err(config)?
                .insert(SSH_NAMES.into(), Value::from(names));
        }
        Ok(vm)
    }

    fn ssh_key(&self) -> Option<&str> {
        self.config.vm_ssh_public_key.as_deref().map(str::trim).filter(|k| !k.is_empty())
    }

    /// The KeyPair of `spec` when the config has an SSH key.
    fn keypair(&self, spec: &VmSpec, labels: &BTreeMap<String, String>) -> Option<Before> {
        let key = self.ssh_key()?;
        let name = keypair_name(&spec.name);
        Some(Before {
            kind: Kind::KeyPair,
            body: json!({
                "apiVersion": "harvesterhci.io/v1beta1",
                "kind": "KeyPair",
                "metadata": {"name": name, "namespace": self.ns(), "labels": labels},
                "spec": {"publicKey": key},
            }),
            name,
            secret: None,
        })
    }

    async fn create(&self, spec: &VmSpec) -> Result<Vm, Error> {
        Engine::check_name(spec)?;
        let labels = kvm::object_labels(spec)?;
        let image = match self.config.configuration_override {
            Some(_) => None,
            None => Some(self.image().await?),
        };
        let vm = self.vm_object(spec, image.as_ref(), &labels)?;
        let mut before = vec![self.engine.cloudinit_secret(spec, &labels)];
        before.extend(self.keypair(spec, &labels));
        self.engine.create(spec, &labels, before, vm).await
    }
}

#[async_trait]
impl VmProvider for HarvesterProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn preflight(&self) -> Vec<super::Check> {
        HarvesterProvider::preflight(self).await
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
