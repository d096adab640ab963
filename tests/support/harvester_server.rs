//! The Harvester test server: the Kubernetes/KubeVirt test server ([`crate::kubevirt_server`], one
//! server for the two providers as they share one Kubernetes client) in Harvester mode
//! ([`KubevirtTestServer::start_harvester`](crate::kubevirt_server::KubevirtTestServer::start_harvester): VirtualMachineImages, KeyPairs, and PVCs made from a VM's
//! `harvesterhci.io/volumeClaimTemplates` annotation as Harvester's VM controller makes them), with an
//! imported image [`IMAGE`] in [`IMAGE_NAMESPACE`] shaped like the `VirtualMachineImage` CRD
//! (`harvesterhci.io_virtualmachineimages.yaml` of the spec folder: `spec.displayName`,
//! `spec.sourceType`, `spec.backend`, `status.storageClassName`, `status.conditions`; condition names from
//! Harvester's `pkg/apis/harvesterhci.io/v1beta1/image.go`).

use serde_json::{Value, json};

pub use crate::kubevirt_server::{
    CA_PEM, KubevirtHarness as HarvesterHarness, KubevirtTestServer as HarvesterTestServer, NAD, NAMESPACE, Request,
    TOKEN, VOLUME_CLAIM_TEMPLATES, labels_of, status,
};

/// The imported image the tests use.
pub const IMAGE: &str = "image-ubuntu2204";
/// Its namespace (Harvester's UI puts images in `default`).
pub const IMAGE_NAMESPACE: &str = "default";
/// Its storage class (`longhorn-<image name>`, as Harvester names a backing-image image's class).
pub const IMAGE_STORAGE_CLASS: &str = "longhorn-image-ubuntu2204";

/// A VirtualMachineImage object in the CRD's shape.
pub fn image(name: &str, backend: &str, imported: &str, storage_class: &str) -> Value {
    json!({
        "apiVersion": "harvesterhci.io/v1beta1",
        "kind": "VirtualMachineImage",
        "metadata": {"name": name, "namespace": IMAGE_NAMESPACE, "annotations": {"harvesterhci.io/storageClassName": "longhorn"}},
        "spec": {"displayName": "ubuntu-22.04-server-cloudimg-amd64.img", "sourceType": "download", "backend": backend,
                 "url": "https://cloud-images.ubuntu.com/jammy/current/jammy-server-cloudimg-amd64.img", "retry": 3},
        "status": {
            "appliedUrl": "https://cloud-images.ubuntu.com/jammy/current/jammy-server-cloudimg-amd64.img",
            "progress": if imported == "True" { 100 } else { 42 },
            "size": 691_863_552_i64,
            "virtualSize": 2_361_393_152_i64,
            "storageClassName": storage_class,
            "conditions": [
                {"type": "Initialized", "status": "True", "lastUpdateTime": "2026-11-30T10:00:00Z"},
                {"type": "Imported", "status": imported, "reason": if imported == "True" { "Imported" } else { "Importing" },
                 "lastUpdateTime": "2026-11-30T10:04:00Z"},
            ],
        },
    })
}

/// Starts a Harvester server with the imported image [`IMAGE`].
pub async fn start() -> HarvesterTestServer {
    let s = HarvesterTestServer::start_harvester().await;
    s.put("virtualmachineimages", image(IMAGE, "backingimage", "True", IMAGE_STORAGE_CLASS));
    s
}
