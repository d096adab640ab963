use super::*;
use crate::config::json_text::YamlText;
use crate::config::{ProviderConfigCommon, SecretRef, VmProviderConfig};
use crate::model::{ClaimId, OsFamily};
use crate::providers::BuildEnv;
use crate::secrets::StaticSecrets;
use serde_json::Map;
use std::sync::Arc;

const CA_PEM: &str = include_str!("../kubevirt/fixtures/test-ca.pem");

fn ca_b64() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(CA_PEM)
}

fn config() -> HarvesterConfig {
    HarvesterConfig {
        name: "hv".into(),
        max_instances: 4,
        host: "https://harvester.example/k8s/clusters/local".into(),
        ssl_certificate: ca_b64(),
        api_token: SecretRef::Env("HV_TOKEN".into()),
        vm_namespace: "kasm".into(),
        vm_ssh_public_key: None,
        cores: 2,
        memory: 4,
        disk_image: "ubuntu".into(),
        disk_size: 40,
        network_type: KubeNetworkType::Pod,
        interface_type: KubeInterfaceType::Masquerade,
        network_name: None,
        startup_script: "#!/bin/bash\necho hi\n".into(),
        configuration_override: None,
        enable_tpm: false,
        enable_efi_boot: false,
        enable_secure_boot: false,
        endpoint_url: None,
        ca_bundle: None,
    }
}

fn provider(cfg: HarvesterConfig) -> HarvesterProvider {
    let env = BuildEnv::new(Arc::new(StaticSecrets::default()), "dep");
    HarvesterProvider::from_config(&cfg, &env).expect("built")
}

fn spec() -> VmSpec {
    VmSpec {
        claim: ClaimId("01jabcdefgh".into()),
        name: "kasm-01jabcdefgh".into(),
        labels: OwnerLabels {
            deployment: "dep".into(),
            autoscale_config: Some("cfg".into()),
            claim: Some(ClaimId("01jabcdefgh".into())),
        },
        os: OsFamily::Linux,
        startup_script: None,
    }
}

fn image() -> Image {
    Image { id: "default/ubuntu".into(), storage_class: "longhorn-ubuntu".into() }
}

#[test]
fn the_registry_builds_it() {
    let env = BuildEnv::new(Arc::new(StaticSecrets::default()), "dep");
    let p = crate::providers::registry::build(&VmProviderConfig::Harvester(config()), &env).expect("built");
    assert_eq!(p.name(), "harvester");
    let mut c = config();
    c.ssl_certificate = "not base64".into();
    assert!(HarvesterProvider::from_config(&c, &env).unwrap_err().to_string().contains("ssl_certificate"));
    let mut c = config();
    c.endpoint_url = Some("http://127.0.0.1:9000".into());
    assert_eq!(provider(c).engine.client.base_url(), "http://127.0.0.1:9000/");
    assert_eq!(provider(config()).engine.client.base_url(), "https://harvester.example/k8s/clusters/local");
}

#[test]
fn the_vm_from_the_fields_asks_harvester_for_a_disk_from_the_image() {
    let mut c = config();
    c.interface_type = KubeInterfaceType::Bridge;
    c.network_type = KubeNetworkType::Multus;
    c.network_name = Some("default/vlan100".into());
    c.enable_tpm = true;
    c.enable_efi_boot = true;
    c.enable_secure_boot = true;
    c.vm_ssh_public_key = Some("ssh-ed25519 AAAA op@x".into());
    let p = provider(c);
    let s = spec();
    let l = kvm::object_labels(&s).unwrap();
    let vm = p.vm_object(&s, Some(&image()), &l).unwrap();
    assert_eq!(vm["metadata"]["name"], "kasm-01jabcdefgh");
    assert_eq!(vm["metadata"]["namespace"], "kasm");
    assert_eq!(vm["metadata"]["labels"][VM_LABEL], "kasm-01jabcdefgh");
    assert_eq!(vm["spec"]["runStrategy"], "Always");
    let pvcs: Value = serde_json::from_str(vm["metadata"]["annotations"][VOLUME_CLAIM_TEMPLATES].as_str().unwrap())
        .expect("JSON text");
    assert_eq!(
        pvcs,
        json!([{
            "metadata": {"name": "kasm-01jabcdefgh-disk", "labels": l, "annotations": {IMAGE_ID: "default/ubuntu"}},
            "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "40Gi"}},
                     "volumeMode": "Block", "storageClassName": "longhorn-ubuntu"},
        }])
    );
    let t = &vm["spec"]["template"];
    assert_eq!(t["metadata"]["annotations"][SSH_NAMES], "[\"kasm/kasm-01jabcdefgh-sshkey\"]");
    assert_eq!(t["metadata"]["labels"]["kasm-autoscale-claim"], "v01jabcdefghv");
    let d = &t["spec"]["domain"];
    assert_eq!(d["cpu"]["cores"], 2);
    assert_eq!(d["memory"]["guest"], "4Gi");
    assert_eq!(d["devices"]["tpm"], json!({}));
    assert_eq!(d["firmware"]["bootloader"]["efi"]["secureBoot"], true);
    assert_eq!(d["features"]["smm"]["enabled"], true);
    assert_eq!(d["devices"]["interfaces"][0], json!({"name": "default", "bridge": {}}));
    assert_eq!(t["spec"]["networks"][0], json!({"name": "default", "multus": {"networkName": "default/vlan100"}}));
    assert_eq!(
        t["spec"]["volumes"],
        json!([
            {"name": "disk0", "persistentVolumeClaim": {"claimName": "kasm-01jabcdefgh-disk"}},
            {"name": CLOUDINIT_VOLUME, "cloudInitConfigDrive": {"secretRef": {"name": "kasm-01jabcdefgh-cloudinit"}}},
        ])
    );
    let kp = p.keypair(&s, &l).expect("a KeyPair with an SSH key");
    assert_eq!(kp.name, "kasm-01jabcdefgh-sshkey");
    assert_eq!(kp.body["spec"], json!({"publicKey": "ssh-ed25519 AAAA op@x"}));
    assert_eq!(kp.body["metadata"]["labels"]["kasm-autoscale-deployment"], "vdepv");
    // Defaults: masquerade on the pod network, no firmware blocks, no KeyPair.
    let p = provider(config());
    let vm = p.vm_object(&s, Some(&image()), &l).unwrap();
    let t = &vm["spec"]["template"];
    assert_eq!(t["spec"]["networks"][0], json!({"name": "default", "pod": {}}));
    assert_eq!(t["spec"]["domain"]["devices"]["interfaces"][0], json!({"name": "default", "masquerade": {}}));
    assert!(t["spec"]["domain"].get("firmware").is_none() && t["metadata"].get("annotations").is_none());
    assert!(p.keypair(&s, &l).is_none());
}

#[test]
fn the_override_labels_its_claim_templates() {
    let mut c = config();
    c.configuration_override = Some(
        serde_yaml_ng::from_str::<YamlText<Map<String, Value>>>(
            r#"|
  apiVersion: kubevirt.io/v1
  kind: VirtualMachine
  metadata:
    name: x
    annotations:
      harvesterhci.io/volumeClaimTemplates: '[{"metadata":{"name":"$KASM_NAME-root","annotations":{"harvesterhci.io/imageId":"default/win"}},"spec":{"accessModes":["ReadWriteMany"],"resources":{"requests":{"storage":"80Gi"}},"volumeMode":"Block","storageClassName":"longhorn-win"}}]'
  spec:
    template:
      spec:
        domain: {cpu: {cores: 4}, memory: {guest: 8Gi}, devices: {disks: [{name: root, disk: {bus: virtio}}]}}
        volumes: [{name: root, persistentVolumeClaim: {claimName: $KASM_NAME-root}}]
"#,
        )
        .expect("manifest"),
    );
    let p = provider(c);
    let s = spec();
    let l = kvm::object_labels(&s).unwrap();
    let vm = p.vm_object(&s, None, &l).unwrap();
    let pvcs: Value =
        serde_json::from_str(vm["metadata"]["annotations"][VOLUME_CLAIM_TEMPLATES].as_str().unwrap()).unwrap();
    assert_eq!(pvcs[0]["metadata"]["name"], "kasm-01jabcdefgh-root");
    assert_eq!(pvcs[0]["metadata"]["labels"][VM_LABEL], "kasm-01jabcdefgh");
    assert_eq!(pvcs[0]["metadata"]["annotations"][IMAGE_ID], "default/win");
    assert_eq!(vm["spec"]["runStrategy"], "Always");
    assert_eq!(
        vm["spec"]["template"]["spec"]["volumes"][1]["cloudInitConfigDrive"]["secretRef"]["name"],
        "kasm-01jabcdefgh-cloudinit"
    );
    let mut bad = vm.clone();
    bad["metadata"]["annotations"][VOLUME_CLAIM_TEMPLATES] = json!("not json");
    assert!(HarvesterProvider::label_claim_templates(&mut bad, &l).unwrap_err().contains("volumeClaimTemplates"));
}

#[test]
fn an_image_must_be_imported_with_a_storage_class_and_not_cdi() {
    let img = |backend: &str, status: &str, sc: &str| {
        json!({"metadata": {"name": "ubuntu"}, "spec": {"backend": backend, "displayName": "u", "sourceType": "download"},
               "status": {"storageClassName": sc, "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Imported", "status": status, "message": "importing"}]}})
    };
    assert_eq!(image_problem(&img("backingimage", "True", "longhorn-ubuntu")), None);
    assert!(
        image_problem(&img("backingimage", "Unknown", "longhorn-ubuntu"))
            .unwrap()
            .contains("Imported is Unknown: importing")
    );
    assert!(image_problem(&img("backingimage", "True", "")).unwrap().contains("storageClassName"));
    assert!(image_problem(&img("cdi", "True", "x")).unwrap().contains("cdi"));
    assert!(image_problem(&json!({"status": {}})).unwrap().contains("no Imported condition"));
}

#[test]
fn the_config_is_checked() {
    let fields = |c: &HarvesterConfig| c.check().iter().map(|(f, _)| f.clone()).collect::<Vec<_>>();
    assert!(fields(&config()).is_empty(), "{:?}", fields(&config()));
    let mut c = config();
    c.disk_image = "Ubuntu 22.04".into();
    c.network_type = KubeNetworkType::Multus;
    c.enable_secure_boot = true;
    c.vm_namespace = " ".into();
    c.disk_size = 0;
    let f = fields(&c);
    for want in ["disk_image", "network_name", "enable_secure_boot", "vm_namespace", "disk_size"] {
        assert!(f.iter().any(|x| x == want), "{want} in {f:?}");
    }
    let mut c = config();
    c.disk_image = "images/ubuntu-2204".into();
    assert!(fields(&c).is_empty());
    let r = config().script_rules();
    assert_eq!(r.windows, crate::script::WindowsScript::CloudbaseInit);
    assert_eq!(r.limit, Some(crate::script::Limit::Base64(1024 * 1024)));
}
