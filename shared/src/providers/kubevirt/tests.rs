use super::*;
use crate::config::json_text::YamlText;
use crate::config::{SecretRef, VmProviderConfig};
use crate::model::{ClaimId, OsFamily};
use crate::providers::{BuildEnv, ErrorClass};
use crate::secrets::StaticSecrets;
use serde_json::Map;
use std::sync::Arc;

pub(super) const CA_PEM: &str = include_str!("fixtures/test-ca.pem");

fn ca_b64() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(CA_PEM)
}

fn config() -> KubevirtConfig {
    KubevirtConfig {
        name: "kv".into(),
        max_instances: 2,
        host: "https://kube.example:6443".into(),
        ssl_certificate: ca_b64(),
        api_token: SecretRef::Env("KV_TOKEN_FOR_TEST".into()),
        vm_namespace: "kasm".into(),
        vm_ssh_public_key: None,
        vm_cores: 2,
        vm_memory: 4,
        vm_disk_size: 30,
        vm_disk_source: "ubuntu-src".into(),
        vm_interface_type: KubeInterfaceType::Masquerade,
        vm_network_name: "default".into(),
        vm_network_type: KubeNetworkType::Pod,
        startup_script: String::new(),
        configuration_override: None,
        enable_tpm: false,
        enable_efi_boot: false,
        enable_secure_boot: false,
        endpoint_url: None,
        ca_bundle: None,
    }
}

fn env(secrets: StaticSecrets) -> BuildEnv {
    BuildEnv::new(Arc::new(secrets), "dep")
}

fn provider(cfg: KubevirtConfig) -> KubevirtProvider {
    KubevirtProvider::from_config(&cfg, &env(StaticSecrets::default())).expect("built")
}

fn spec() -> VmSpec {
    let claim = ClaimId("01jabcdefgh".into());
    VmSpec {
        name: "kasm-01jabcdefgh".into(),
        labels: OwnerLabels {
            deployment: "dep".into(),
            autoscale_config: Some("cfg".into()),
            claim: Some(claim.clone()),
        },
        claim,
        os: OsFamily::Linux,
        startup_script: None,
    }
}

#[tokio::test]
async fn the_registry_builds_it_and_resolves_the_token_on_first_use() {
    let secrets = StaticSecrets([("env:KV_TOKEN_FOR_TEST".to_string(), "kube-s3cr3t-token".to_string())].into());
    let p = crate::providers::registry::build(&VmProviderConfig::Kubevirt(config()), &env(secrets)).expect("built");
    assert_eq!(p.name(), "kubevirt");
    assert!(!format!("{p:?}").contains("kube-s3cr3t-token"), "{p:?}");
    let p = crate::providers::registry::build(&VmProviderConfig::Kubevirt(config()), &env(StaticSecrets::default()))
        .expect("built without its secret");
    let err = p.get_vm("kasm-x").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth, "{err}");
    assert!(err.to_string().contains("api_token"), "{err}");
}

#[test]
fn the_endpoint_is_the_host_or_the_override_and_the_ca_must_parse() {
    let e = env(StaticSecrets::default());
    assert_eq!(provider(config()).engine.client.base_url(), "https://kube.example:6443/");
    let mut c = config();
    c.host = "https://rancher.example/k8s/clusters/local".into();
    assert_eq!(provider(c).engine.client.base_url(), "https://rancher.example/k8s/clusters/local");
    let mut c = config();
    c.endpoint_url = Some("http://127.0.0.1:9000".into());
    assert_eq!(provider(c).engine.client.base_url(), "http://127.0.0.1:9000/");
    let mut c = config();
    c.host = "not a url".into();
    let err = KubevirtProvider::from_config(&c, &e).unwrap_err();
    assert_eq!(err.class(), ErrorClass::Invalid);
    assert!(err.to_string().contains("host"), "{err}");
    let mut c = config();
    c.ssl_certificate = "%%%".into();
    assert!(KubevirtProvider::from_config(&c, &e).unwrap_err().to_string().contains("ssl_certificate"));
    let mut c = config();
    c.ssl_certificate = "bm90IGEgcGVt".into(); // base64 of "not a pem"
    let err = KubevirtProvider::from_config(&c, &e).unwrap_err();
    assert_eq!(err.class(), ErrorClass::Invalid);
    assert!(err.to_string().contains("ssl_certificate"), "{err}");
}

#[test]
fn the_vm_from_the_fields_follows_the_spec() {
    let mut c = config();
    c.vm_interface_type = KubeInterfaceType::Bridge;
    c.vm_network_type = KubeNetworkType::Multus;
    c.vm_network_name = "vlan10".into();
    c.enable_tpm = true;
    c.enable_efi_boot = true;
    c.enable_secure_boot = true;
    let p = provider(c);
    let s = spec();
    let l = p.object_labels(&s).unwrap();
    let vm = p.vm_object(&s, &l).unwrap();
    assert_eq!(vm["metadata"]["name"], "kasm-01jabcdefgh");
    assert_eq!(vm["metadata"]["namespace"], "kasm");
    assert_eq!(vm["metadata"]["labels"][VM_LABEL], "kasm-01jabcdefgh");
    assert_eq!(vm["metadata"]["labels"]["kasm-autoscale-deployment"], "vdepv");
    assert_eq!(vm["spec"]["runStrategy"], "Always");
    let dv = &vm["spec"]["dataVolumeTemplates"][0];
    assert_eq!(dv["metadata"]["name"], "kasm-01jabcdefgh-disk");
    assert_eq!(dv["metadata"]["labels"]["kasm-autoscale-claim"], "v01jabcdefghv");
    assert_eq!(dv["spec"]["source"]["pvc"], json!({"namespace": "kasm", "name": "ubuntu-src"}));
    assert_eq!(dv["spec"]["storage"]["resources"]["requests"]["storage"], "30Gi");
    let t = &vm["spec"]["template"];
    assert_eq!(t["metadata"]["labels"]["kasm-autoscale-config"], "vcfgv");
    let d = &t["spec"]["domain"];
    assert_eq!(d["cpu"]["cores"], 2);
    assert_eq!(d["memory"]["guest"], "4Gi");
    assert_eq!(d["devices"]["tpm"], json!({}));
    assert_eq!(d["firmware"]["bootloader"]["efi"]["secureBoot"], true);
    assert_eq!(d["features"]["smm"]["enabled"], true);
    assert_eq!(d["devices"]["interfaces"][0], json!({"name": "vlan10", "bridge": {}}));
    assert_eq!(t["spec"]["networks"][0], json!({"name": "vlan10", "multus": {"networkName": "vlan10"}}));
    assert_eq!(d["devices"]["disks"][1]["name"], CLOUDINIT_VOLUME);
    assert_eq!(
        t["spec"]["volumes"],
        json!([
            {"name": "disk0", "dataVolume": {"name": "kasm-01jabcdefgh-disk"}},
            {"name": CLOUDINIT_VOLUME, "cloudInitConfigDrive": {"secretRef": {"name": "kasm-01jabcdefgh-cloudinit"}}},
        ])
    );
    // Plain defaults: no TPM/firmware blocks, masquerade on the pod network.
    let p = provider(config());
    let vm = p.vm_object(&s, &l).unwrap();
    let d = &vm["spec"]["template"]["spec"]["domain"];
    assert!(d.get("firmware").is_none() && d["devices"].get("tpm").is_none() && d.get("features").is_none());
    assert_eq!(d["devices"]["interfaces"][0], json!({"name": "default", "masquerade": {}}));
    assert_eq!(vm["spec"]["template"]["spec"]["networks"][0], json!({"name": "default", "pod": {}}));
}

#[test]
fn the_override_manifest_gets_the_name_labels_run_strategy_and_cloud_init() {
    let mut c = config();
    c.configuration_override = Some(
        serde_yaml_ng::from_str::<YamlText<Map<String, Value>>>(
            r#"|
  apiVersion: kubevirt.io/v1
  kind: VirtualMachine
  metadata: {name: whatever, labels: {team: vdi}}
  spec:
    dataVolumeTemplates:
      - metadata: {name: $KASM_NAME-dv}
        spec: {source: {pvc: {namespace: kasm, name: src}}, storage: {resources: {requests: {storage: 30Gi}}}}
    template:
      spec:
        domain: {devices: {disks: [{name: d, disk: {bus: virtio}}]}}
        volumes: [{name: d, persistentVolumeClaim: {claimName: $KASM_NAME-dv}}]
"#,
        )
        .expect("manifest"),
    );
    let p = provider(c);
    let s = spec();
    let l = p.object_labels(&s).unwrap();
    let vm = p.vm_object(&s, &l).unwrap();
    assert_eq!(vm["metadata"]["name"], "kasm-01jabcdefgh");
    assert_eq!(vm["metadata"]["namespace"], "kasm");
    assert_eq!(vm["metadata"]["labels"]["team"], "vdi");
    assert_eq!(vm["metadata"]["labels"]["kasm-autoscale-deployment"], "vdepv");
    assert_eq!(vm["spec"]["runStrategy"], "Always");
    assert_eq!(vm["spec"]["dataVolumeTemplates"][0]["metadata"]["name"], "kasm-01jabcdefgh-dv");
    assert_eq!(vm["spec"]["dataVolumeTemplates"][0]["metadata"]["labels"][VM_LABEL], "kasm-01jabcdefgh");
    assert_eq!(vm["spec"]["template"]["metadata"]["labels"]["kasm-autoscale-claim"], "v01jabcdefghv");
    let vols = vm["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    assert_eq!(vols[0]["persistentVolumeClaim"]["claimName"], "kasm-01jabcdefgh-dv");
    assert_eq!(vols[1]["cloudInitConfigDrive"]["secretRef"]["name"], "kasm-01jabcdefgh-cloudinit");
    assert_eq!(vm["spec"]["template"]["spec"]["domain"]["devices"]["disks"][1]["name"], CLOUDINIT_VOLUME);
}
