//! The Harvester provider against the Harvester test server over HTTP (the Kubernetes/KubeVirt test
//! server in Harvester mode): the shared conformance suite with faults, the create flow and its request
//! bodies against the specs (the disk PVC from the image as Harvester's VM controller makes it, the
//! KeyPair), resumption by name, delete and what it leaves, leftovers for the orphan sweep, images that
//! cannot give disks, an unschedulable VM as out of capacity, the token, and preflight. `daemon`: the
//! whole loop through the real `kasm-autoscale run`; `lambda`: the whole loop through the real Lambda
//! functions.

mod daemon;
mod lambda;

use integration_tests::fake_api::Fault;
use integration_tests::harvester_server::{
    self as hs, CA_PEM, HarvesterHarness, HarvesterTestServer, IMAGE, IMAGE_NAMESPACE, IMAGE_STORAGE_CLASS, NAD,
    NAMESPACE, Request, TOKEN, VOLUME_CLAIM_TEMPLATES, labels_of, status,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

use shared::config::SecretRef;
use shared::config::providers::{HarvesterConfig, KubeInterfaceType, KubeNetworkType};
use shared::http::RetryConfig;
use shared::model::{ClaimId, OsFamily, OwnerLabels};
use shared::providers::harvester::{HarvesterProvider, IMAGE_ID, SSH_NAMES, VM_LABEL};
use shared::providers::{BuildEnv, ErrorClass, Timings, VmProvider, VmSpec, VmState};
use shared::secrets::StaticSecrets;

const SCRIPT: &str = "#cloud-config\nruncmd:\n  - [bash, -c, \"install kasm agent --token mgr-token-0123456789\"]\n";
const SSH_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKasmTestKey op@example";

fn ca_b64() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(CA_PEM)
}

fn config(server: &HarvesterTestServer) -> HarvesterConfig {
    HarvesterConfig {
        name: "hv-pool".into(),
        max_instances: 10,
        host: "https://harvester.invalid/k8s/clusters/local".into(),
        ssl_certificate: ca_b64(),
        api_token: SecretRef::Env("HV_TOKEN".into()),
        vm_namespace: NAMESPACE.into(),
        vm_ssh_public_key: None,
        cores: 2,
        memory: 4,
        disk_image: format!("{IMAGE_NAMESPACE}/{IMAGE}"),
        disk_size: 40,
        network_type: KubeNetworkType::Pod,
        interface_type: KubeInterfaceType::Masquerade,
        network_name: None,
        startup_script: SCRIPT.into(),
        configuration_override: None,
        enable_tpm: false,
        enable_efi_boot: false,
        enable_secure_boot: false,
        endpoint_url: Some(server.url.clone()),
        ca_bundle: None,
    }
}

fn fast_timings() -> Timings {
    Timings {
        poll: Duration::from_millis(5),
        operation_timeout: Duration::from_secs(4),
        guest_poll: Duration::from_millis(5),
        guest_wait: Duration::from_millis(300),
    }
}

fn env(secret: &str, retry: RetryConfig, request_timeout: Duration) -> BuildEnv {
    let secrets = StaticSecrets([("env:HV_TOKEN".to_string(), secret.to_string())].into());
    BuildEnv { retry, request_timeout, timings: fast_timings(), ..BuildEnv::new(Arc::new(secrets), "t") }
}

fn fast_retry() -> RetryConfig {
    RetryConfig {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(50),
        max_retries: 3,
        budget: Duration::from_secs(5),
    }
}

fn provider_cfg(cfg: &HarvesterConfig, secret: &str) -> HarvesterProvider {
    HarvesterProvider::from_config(cfg, &env(secret, fast_retry(), Duration::from_secs(10))).expect("build")
}

fn provider(server: &HarvesterTestServer) -> HarvesterProvider {
    provider_cfg(&config(server), TOKEN)
}

fn spec(deployment: &str, config: &str) -> VmSpec {
    let claim = ClaimId::generate(chrono::Utc::now());
    VmSpec {
        name: format!("kasm-{claim}"),
        labels: OwnerLabels {
            deployment: deployment.into(),
            autoscale_config: Some(config.into()),
            claim: Some(claim.clone()),
        },
        claim,
        os: OsFamily::Linux,
        startup_script: Some(SecretString::from(SCRIPT.to_string())),
    }
}

fn calls(reqs: &[Request]) -> Vec<String> {
    reqs.iter().map(|r| format!("{} {}", r.method, r.route)).collect()
}

fn body(r: &Request) -> Value {
    serde_json::from_str(&r.body).expect("a JSON body")
}

/// The shared conformance suite with faults: the client gives up on an answer after 1 s (the
/// harness stalls 2.5 s for a timeout), waits out a throttling wait of up to 2 s, and lists in pages
/// of 2. Afterwards nothing the suite made is left: no VM, VMI, Secret, KeyPair or PVC.
#[tokio::test]
async fn passes_the_conformance_suite() {
    let server = hs::start().await;
    let retry = RetryConfig {
        base: Duration::from_millis(5),
        cap: Duration::from_secs(2),
        max_retries: 2,
        budget: Duration::from_secs(10),
    };
    let mut cfg = config(&server);
    cfg.vm_ssh_public_key = Some(SSH_KEY.into());
    let p = HarvesterProvider::from_config(&cfg, &env(TOKEN, retry, Duration::from_secs(1)))
        .expect("build")
        .with_page_size(2);
    let harness = HarvesterHarness::new(server.clone(), 2, Duration::from_millis(2500));
    shared::providers::conformance::run_all(&p, &harness, "conformance-hv").await;
    assert_eq!(server.leftovers(), Vec::<String>::new());
}

#[tokio::test]
async fn create_sends_what_the_specs_name_and_resumes_by_name() {
    let server = hs::start().await;
    let mut cfg = config(&server);
    cfg.network_type = KubeNetworkType::Multus;
    cfg.interface_type = KubeInterfaceType::Bridge;
    cfg.network_name = Some(NAD.into());
    cfg.enable_efi_boot = true;
    cfg.enable_secure_boot = true;
    cfg.enable_tpm = true;
    cfg.vm_ssh_public_key = Some(SSH_KEY.into());
    let p = provider_cfg(&cfg, TOKEN);
    let s = spec("dep", "cfg-a");
    let vm = p.create_vm(&s).await.expect("create");
    assert_eq!(vm.id, s.name);
    assert_eq!(vm.state, VmState::Running);
    assert!(vm.private_ip.as_deref().is_some_and(|ip| ip.starts_with("10.244.1.")), "{vm:?}");
    assert_eq!(vm.labels, s.labels.to_map());
    let reqs = server.requests();
    let c = calls(&reqs);
    assert_eq!(c[0], "GET /apis/harvesterhci.io/v1beta1/namespaces/{ns}/virtualmachineimages/{name}");
    assert_eq!(
        reqs[0].path,
        format!("/apis/harvesterhci.io/v1beta1/namespaces/{IMAGE_NAMESPACE}/virtualmachineimages/{IMAGE}")
    );
    assert_eq!(c[1], "POST /api/v1/namespaces/{ns}/secrets");
    assert_eq!(c[2], "POST /apis/harvesterhci.io/v1beta1/namespaces/{ns}/keypairs");
    assert_eq!(c[3], "POST /apis/kubevirt.io/v1/namespaces/{ns}/virtualmachines");
    assert!(c[4..].iter().all(|c| c.starts_with("GET ")), "{c:?}");
    let secret = body(&reqs[1]);
    assert_eq!(secret["metadata"]["name"], format!("{}-cloudinit", s.name));
    assert_eq!(secret["stringData"]["userdata"], SCRIPT);
    // The KeyPair as the CRD names it.
    let kp = body(&reqs[2]);
    assert_eq!(kp["apiVersion"], "harvesterhci.io/v1beta1");
    assert_eq!(kp["kind"], "KeyPair");
    assert_eq!(kp["spec"], json!({"publicKey": SSH_KEY}));
    // The VM: KubeVirt's swagger, and the disk as Harvester's VM builder writes it.
    let v = body(&reqs[3]);
    assert_eq!(v["spec"]["runStrategy"], "Always");
    let t = &v["spec"]["template"];
    assert_eq!(t["metadata"]["annotations"][SSH_NAMES], format!("[\"{NAMESPACE}/{}-sshkey\"]", s.name));
    let ts = &t["spec"];
    assert_eq!(ts["domain"]["cpu"]["cores"], 2);
    assert_eq!(ts["domain"]["memory"]["guest"], "4Gi");
    assert_eq!(ts["domain"]["devices"]["interfaces"], json!([{"name": "default", "bridge": {}}]));
    assert_eq!(ts["networks"], json!([{"name": "default", "multus": {"networkName": NAD}}]));
    assert_eq!(ts["domain"]["firmware"]["bootloader"]["efi"]["secureBoot"], true);
    assert_eq!(ts["domain"]["devices"]["tpm"], json!({}));
    let disk = format!("{}-disk", s.name);
    assert_eq!(ts["volumes"][0], json!({"name": "disk0", "persistentVolumeClaim": {"claimName": disk}}));
    let pvcs: Value = serde_json::from_str(v["metadata"]["annotations"][VOLUME_CLAIM_TEMPLATES].as_str().unwrap())
        .expect("the annotation is JSON text");
    assert_eq!(pvcs[0]["metadata"]["annotations"][IMAGE_ID], format!("{IMAGE_NAMESPACE}/{IMAGE}"));
    assert_eq!(pvcs[0]["spec"]["storageClassName"], IMAGE_STORAGE_CLASS);
    assert_eq!(pvcs[0]["spec"]["resources"]["requests"]["storage"], "40Gi");
    assert_eq!(pvcs[0]["spec"]["volumeMode"], "Block");
    assert_eq!(pvcs[0]["spec"]["accessModes"], json!(["ReadWriteMany"]));
    // Every object made carries our labels: the VM, its VMI, the Secret, the KeyPair, and the PVC
    // Harvester's controller made from the annotation.
    for (plural, name) in [
        ("virtualmachines", s.name.clone()),
        ("virtualmachineinstances", s.name.clone()),
        ("secrets", format!("{}-cloudinit", s.name)),
        ("keypairs", format!("{}-sshkey", s.name)),
        ("persistentvolumeclaims", disk.clone()),
    ] {
        let o = server.get(plural, &name).unwrap_or_else(|| panic!("{plural}/{name} exists"));
        let l = labels_of(&o);
        assert_eq!(l.get("kasm-autoscale-claim"), Some(&format!("v{}v", s.claim.as_str())), "{plural}: {l:?}");
        assert_eq!(l.get(VM_LABEL), Some(&s.name), "{plural}: {l:?}");
    }
    // Again for the same claim: every create answers 409 AlreadyExists, the objects are read, one VM.
    server.api().clear_requests();
    let again = p.create_vm(&s).await.expect("create again");
    assert_eq!(again.id, vm.id);
    assert_eq!(server.names("virtualmachines"), vec![s.name.clone()]);
    assert_eq!(server.names("secrets").len(), 1);
    assert_eq!(server.names("keypairs").len(), 1);
    let c = calls(&server.requests());
    assert!(c.contains(&"GET /apis/harvesterhci.io/v1beta1/namespaces/{ns}/keypairs/{name}".to_string()), "{c:?}");
}

#[tokio::test]
async fn an_image_that_cannot_give_disks_fails_the_create_naming_disk_image() {
    let server = hs::start().await;
    server.put("virtualmachineimages", hs::image("importing", "backingimage", "Unknown", "longhorn-importing"));
    server.put("virtualmachineimages", hs::image("cdi-image", "cdi", "True", "harvester-longhorn"));
    for (image, want) in [
        ("missing", "no VirtualMachineImage `missing`"),
        ("importing", "not imported yet"),
        ("cdi-image", "cdi backend"),
    ] {
        let mut cfg = config(&server);
        cfg.disk_image = format!("{IMAGE_NAMESPACE}/{image}");
        let err = provider_cfg(&cfg, TOKEN).create_vm(&spec("dep", "cfg")).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Invalid, "{err}");
        assert!(err.to_string().contains("disk_image") && err.to_string().contains(want), "{err}");
    }
    assert_eq!(server.leftovers(), Vec::<String>::new(), "nothing is created before the image is checked");
}

#[tokio::test]
async fn an_object_of_the_same_name_not_ours_is_refused() {
    let server = hs::start().await;
    let mut cfg = config(&server);
    cfg.vm_ssh_public_key = Some(SSH_KEY.into());
    let p = provider_cfg(&cfg, TOKEN);
    let s = spec("dep", "cfg");
    server.put(
        "keypairs",
        json!({"apiVersion": "harvesterhci.io/v1beta1", "kind": "KeyPair", "metadata": {"name": format!("{}-sshkey", s.name), "namespace": NAMESPACE}, "spec": {"publicKey": "ssh-rsa AAAA ops"}}),
    );
    let err = p.create_vm(&s).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Invalid, "{err}");
    assert!(err.to_string().contains("KeyPair") && err.to_string().contains("not made by kasm-autoscale"), "{err}");
    assert!(server.names("virtualmachines").is_empty());
}

/// Harvester does not make the disk PVC owned by the VM: whatever the garbage collector does, delete
/// removes the VM, its Secret, its KeyPair and its PVC, and the leak check lists what is left.
#[tokio::test]
async fn delete_leaves_nothing() {
    for gc in [true, false] {
        let server = hs::start().await;
        server.set_gc(gc);
        let mut cfg = config(&server);
        cfg.vm_ssh_public_key = Some(SSH_KEY.into());
        let p = provider_cfg(&cfg, TOKEN);
        let vm = p.create_vm(&spec("dep", "cfg")).await.expect("create");
        assert_eq!(server.leftovers().len(), 5, "VM, VMI, Secret, KeyPair, PVC: {:?}", server.leftovers());
        p.delete_vm(&vm.id).await.expect("delete");
        assert_eq!(server.leftovers(), Vec::<String>::new(), "gc {gc}");
        p.delete_vm(&vm.id).await.expect("deleting a missing VM succeeds");
        assert_eq!(p.get_vm(&vm.id).await.unwrap_err().class(), ErrorClass::NotFound);
    }
}

#[tokio::test]
async fn a_vm_without_our_labels_is_never_deleted() {
    let server = hs::start().await;
    let p = provider(&server);
    server.put(
        "virtualmachines",
        json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "ops-vm", "namespace": NAMESPACE, "labels": {VM_LABEL: "ops-vm"}},
               "spec": {"runStrategy": "Always", "template": {"spec": {"domain": {"devices": {}}}}}}),
    );
    let err = p.delete_vm("ops-vm").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Invalid, "{err}");
    assert!(server.get("virtualmachines", "ops-vm").is_some());
}

#[tokio::test]
async fn leftovers_of_a_gone_vm_are_listed_for_the_orphan_sweep_and_deleted() {
    let server = hs::start().await;
    let mut cfg = config(&server);
    cfg.vm_ssh_public_key = Some(SSH_KEY.into());
    let p = provider_cfg(&cfg, TOKEN);
    let s = spec("dep", "cfg");
    let vm = p.create_vm(&s).await.expect("create");
    // The VM is deleted behind our back (an operator, or our delete interrupted after the VM went).
    server.remove("virtualmachines", &vm.id);
    server.remove("virtualmachineinstances", &vm.id);
    assert_eq!(server.leftovers().len(), 3, "{:?}", server.leftovers());
    let listed = p.list_vms(&OwnerLabels::deployment("dep")).await.expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, vm.id);
    assert_eq!(listed[0].state, VmState::Deleted);
    assert_eq!(listed[0].labels, s.labels.to_map());
    p.delete_vm(&listed[0].id).await.expect("delete the leftovers");
    assert_eq!(server.leftovers(), Vec::<String>::new());
    assert!(p.list_vms(&OwnerLabels::deployment("dep")).await.expect("list").is_empty());
}

#[tokio::test]
async fn an_unschedulable_vm_is_out_of_capacity_and_deleted() {
    let server = hs::start().await;
    server.set_unschedulable(true);
    let p = provider(&server);
    let err = p.create_vm(&spec("dep", "cfg")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::OutOfCapacity, "{err}");
    assert!(err.to_string().contains("Insufficient memory"), "{err}");
    assert_eq!(server.leftovers(), Vec::<String>::new());
}

#[tokio::test]
async fn the_config_override_gets_our_labels_on_its_claim_templates() {
    let server = hs::start().await;
    let mut cfg = config(&server);
    let templates = json!([{
        "metadata": {"name": "$KASM_NAME-root", "annotations": {"harvesterhci.io/imageId": format!("{IMAGE_NAMESPACE}/{IMAGE}")}},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "80Gi"}}, "volumeMode": "Block", "storageClassName": IMAGE_STORAGE_CLASS}
    }])
    .to_string();
    cfg.configuration_override = Some(
        serde_json::from_value(json!({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": "x", "annotations": {VOLUME_CLAIM_TEMPLATES: templates}},
            "spec": {"template": {"spec": {
                "domain": {"cpu": {"cores": 4}, "memory": {"guest": "8Gi"}, "devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}}]}},
                "volumes": [{"name": "root", "persistentVolumeClaim": {"claimName": "$KASM_NAME-root"}}]}}}
        }))
        .expect("manifest"),
    );
    cfg.disk_image = String::new();
    let p = provider_cfg(&cfg, TOKEN);
    let s = spec("dep", "cfg");
    let vm = p.create_vm(&s).await.expect("create");
    let sent = server.get("virtualmachines", &vm.id).expect("vm");
    assert_eq!(sent["spec"]["template"]["spec"]["domain"]["cpu"]["cores"], 4);
    let pvc = server.get("persistentvolumeclaims", &format!("{}-root", s.name)).expect("the override's PVC");
    assert_eq!(labels_of(&pvc).get(VM_LABEL), Some(&s.name));
    p.delete_vm(&vm.id).await.expect("delete");
    assert_eq!(server.leftovers(), Vec::<String>::new());
}

#[tokio::test]
async fn a_refused_token_is_auth_and_never_shown() {
    let server = hs::start().await;
    let p = provider_cfg(&config(&server), "wrong-token-s3cr3t");
    let err = p.list_vms(&OwnerLabels::deployment("dep")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth, "{err}");
    assert!(!err.to_string().contains("wrong-token-s3cr3t"), "{err}");
    for r in server.requests() {
        assert!(!format!("{r:?}").contains("wrong-token-s3cr3t"), "recorded without credentials");
    }
}

#[tokio::test]
async fn errors_map_to_the_classes_the_engine_acts_on() {
    let server = hs::start().await;
    let p = provider(&server);
    let vms = "POST /apis/kubevirt.io/v1/namespaces/{ns}/virtualmachines";
    let cases = [
        (
            status(
                403,
                "Forbidden",
                "virtualmachines.kubevirt.io is forbidden: User \"system:serviceaccount:kasm:as\" cannot create resource \"virtualmachines\" in API group \"kubevirt.io\" in the namespace \"kasm\"",
            ),
            ErrorClass::Permission,
            "cannot create resource \"virtualmachines\"",
        ),
        (
            status(
                403,
                "Forbidden",
                "virtualmachines.kubevirt.io \"x\" is forbidden: exceeded quota: kasm-quota, requested: requests.cpu=2, used: requests.cpu=20, limited: requests.cpu=20",
            ),
            ErrorClass::OutOfCapacity,
            "exceeded quota",
        ),
        (
            status(
                422,
                "Invalid",
                "VirtualMachine.kubevirt.io \"x\" is invalid: spec.template.spec.domain.devices.disks[0].name: Required value",
            ),
            ErrorClass::Invalid,
            "is invalid",
        ),
    ];
    for (answer, class, text) in cases {
        server.api().clear_faults();
        server.api().inject(vms, Fault::Answer(answer), 0, 10);
        let err = p.create_vm(&spec("dep", "cfg")).await.unwrap_err();
        assert_eq!(err.class(), class, "{err}");
        assert!(err.to_string().contains(text), "{err}");
    }
}

#[tokio::test]
async fn listing_follows_continue_pages_with_the_label_selector() {
    let server = hs::start().await;
    let p = provider(&server).with_page_size(2);
    let mut made = Vec::new();
    for _ in 0..5 {
        made.push(p.create_vm(&spec("dep", "cfg-a")).await.expect("create").id);
    }
    p.create_vm(&spec("dep", "cfg-b")).await.expect("create");
    server.api().clear_requests();
    let owner = OwnerLabels { deployment: "dep".into(), autoscale_config: Some("cfg-a".into()), claim: None };
    let mut got: Vec<String> = p.list_vms(&owner).await.expect("list").into_iter().map(|v| v.id).collect();
    got.sort();
    made.sort();
    assert_eq!(got, made);
    let vm_lists: Vec<Request> = server
        .requests()
        .into_iter()
        .filter(|r| r.route == "/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachines" && r.method == "GET")
        .collect();
    assert_eq!(vm_lists.len(), 3, "5 VMs in pages of 2");
    assert_eq!(
        vm_lists[0].param("labelSelector"),
        Some("kasm-autoscale-config=vcfg-av,kasm-autoscale-deployment=vdepv")
    );
    assert!(vm_lists[1].param("continue").is_some());
    let kinds: Vec<String> = server.requests().iter().map(|r| r.route.clone()).collect();
    for plural in ["secrets", "keypairs", "persistentvolumeclaims"] {
        assert!(kinds.iter().any(|k| k.ends_with(&format!("/{plural}"))), "{plural} listed for leftovers: {kinds:?}");
    }
}

#[tokio::test]
async fn preflight_passes_and_names_what_is_missing() {
    let server = hs::start().await;
    let mut cfg = config(&server);
    cfg.network_type = KubeNetworkType::Multus;
    cfg.network_name = Some(NAD.into());
    cfg.vm_ssh_public_key = Some(SSH_KEY.into());
    let checks = provider_cfg(&cfg, TOKEN).preflight().await;
    let names: Vec<&str> = checks.iter().map(|c| c.name).collect();
    assert_eq!(names, shared::providers::harvester::CHECKS);
    assert!(checks.iter().all(|c| c.ok), "{checks:?}");
    assert!(checks[3].detail.contains(IMAGE_STORAGE_CLASS), "{checks:?}");
    assert!(server.requests().iter().all(|r| r.method == "GET" || r.route.ends_with("selfsubjectaccessreviews")));

    server.deny("create", "keypairs");
    server.deny("delete", "persistentvolumeclaims");
    server.put("virtualmachineimages", hs::image("importing", "backingimage", "Unknown", "longhorn-importing"));
    cfg.disk_image = format!("{IMAGE_NAMESPACE}/importing");
    cfg.network_name = Some("nope".into());
    let checks = provider_cfg(&cfg, TOKEN).preflight().await;
    let failed: Vec<(&str, &str)> = checks.iter().filter(|c| !c.ok).map(|c| (c.name, c.detail.as_str())).collect();
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert!(
        failed[0].1.contains("create keypairs.harvesterhci.io")
            && failed[0].1.contains("delete persistentvolumeclaims"),
        "{failed:?}"
    );
    assert!(failed[1].1.contains("not imported yet"), "{failed:?}");
    assert!(failed[2].1.contains("nope"), "{failed:?}");

    let checks = provider_cfg(&cfg, "bad-token").preflight().await;
    assert!(checks[..5].iter().all(|c| !c.ok), "{checks:?}");
    assert!(checks[5].ok, "the script is checked without the API: {checks:?}");
}

/// A secret that an operator rotates.
#[derive(Debug)]
struct Rotating(std::sync::Mutex<String>);

#[async_trait::async_trait]
impl shared::secrets::Secrets for Rotating {
    async fn resolve(&self, _r: &SecretRef) -> Result<SecretString, shared::secrets::SecretError> {
        Ok(SecretString::from(self.0.lock().unwrap().clone()))
    }
}

#[tokio::test]
async fn a_refused_token_is_read_again_once_and_a_rotated_one_is_used() {
    let server = hs::start().await;
    let secret = Arc::new(Rotating(std::sync::Mutex::new("revoked-token".into())));
    let env = BuildEnv { retry: fast_retry(), timings: fast_timings(), ..BuildEnv::new(secret.clone(), "t") };
    let p = HarvesterProvider::from_config(&config(&server), &env).unwrap();
    let err = p.get_vm("kasm-x").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth, "{err}");
    assert_eq!(server.requests().len(), 1);
    *secret.0.lock().unwrap() = TOKEN.to_string();
    server.api().clear_requests();
    let err = p.get_vm("kasm-x").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::NotFound, "{err}");
    assert_eq!(server.requests().len(), 2, "the refused request and one with the new token");
}
