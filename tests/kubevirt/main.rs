//! The KubeVirt provider against the Kubernetes/KubeVirt test server over HTTP: the shared conformance
//! suite with faults, the create flow and its request bodies against the specs, resumption by name,
//! delete and what it leaves (with and without the garbage collector), leftovers for the orphan
//! sweep, an unschedulable VM as out of capacity, the token, and preflight. `daemon`: the whole loop
//! through the real `kasm-autoscale run`; `lambda`: the whole loop through the real Lambda functions.

mod daemon;
mod lambda;

use integration_tests::fake_api::Fault;
use integration_tests::kubevirt_server::{
    CA_PEM, KubevirtHarness, KubevirtTestServer, NAD, NAMESPACE, Request, SOURCE_PVC, TOKEN, status,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

use shared::config::SecretRef;
use shared::config::providers::{KubeInterfaceType, KubeNetworkType, KubevirtConfig};
use shared::http::RetryConfig;
use shared::model::{ClaimId, OsFamily, OwnerLabels};
use shared::providers::kubevirt::{KubevirtProvider, VM_LABEL};
use shared::providers::{BuildEnv, ErrorClass, Timings, VmProvider, VmSpec, VmState};
use shared::secrets::StaticSecrets;

const SCRIPT: &str = "#!/bin/bash\necho installing the kasm agent with token mgr-token-0123456789\n";

fn ca_b64() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(CA_PEM)
}

fn config(server: &KubevirtTestServer) -> KubevirtConfig {
    KubevirtConfig {
        name: "kv-pool".into(),
        max_instances: 10,
        host: "https://kube.invalid:6443".into(),
        ssl_certificate: ca_b64(),
        api_token: SecretRef::Env("KV_TOKEN".into()),
        vm_namespace: NAMESPACE.into(),
        vm_ssh_public_key: None,
        vm_cores: 2,
        vm_memory: 4,
        vm_disk_size: 30,
        vm_disk_source: SOURCE_PVC.into(),
        vm_interface_type: KubeInterfaceType::Masquerade,
        vm_network_name: "default".into(),
        vm_network_type: KubeNetworkType::Pod,
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
    let secrets = StaticSecrets([("env:KV_TOKEN".to_string(), secret.to_string())].into());
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

fn provider_cfg(cfg: &KubevirtConfig, secret: &str) -> KubevirtProvider {
    KubevirtProvider::from_config(cfg, &env(secret, fast_retry(), Duration::from_secs(10))).expect("build")
}

fn provider(server: &KubevirtTestServer) -> KubevirtProvider {
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
/// of 2. Afterwards nothing the suite made is left: no VM, VMI, Secret, DataVolume or PVC.
#[tokio::test]
async fn passes_the_conformance_suite() {
    let server = KubevirtTestServer::start().await;
    let retry = RetryConfig {
        base: Duration::from_millis(5),
        cap: Duration::from_secs(2),
        max_retries: 2,
        budget: Duration::from_secs(10),
    };
    let p = KubevirtProvider::from_config(&config(&server), &env(TOKEN, retry, Duration::from_secs(1)))
        .expect("build")
        .with_page_size(2);
    let harness = KubevirtHarness::new(server.clone(), 2, Duration::from_millis(2500));
    shared::providers::conformance::run_all(&p, &harness, "conformance-kv").await;
    assert_eq!(server.leftovers(), Vec::<String>::new());
}

#[tokio::test]
async fn create_sends_what_the_specs_name_and_resumes_by_name() {
    let server = KubevirtTestServer::start().await;
    let mut cfg = config(&server);
    cfg.vm_network_type = KubeNetworkType::Multus;
    cfg.vm_interface_type = KubeInterfaceType::Bridge;
    cfg.vm_network_name = NAD.into();
    cfg.enable_efi_boot = true;
    cfg.enable_secure_boot = true;
    cfg.enable_tpm = true;
    let p = provider_cfg(&cfg, TOKEN);
    let s = spec("dep", "cfg-a");
    let vm = p.create_vm(&s).await.expect("create");
    assert_eq!(vm.id, s.name);
    assert_eq!(vm.state, VmState::Running);
    assert!(vm.private_ip.as_deref().is_some_and(|ip| ip.starts_with("10.244.1.")), "{vm:?}");
    assert_eq!(vm.labels, s.labels.to_map());
    let reqs = server.requests();
    let c = calls(&reqs);
    assert_eq!(c[0], "POST /api/v1/namespaces/{ns}/secrets");
    assert_eq!(c[1], "POST /apis/kubevirt.io/v1/namespaces/{ns}/virtualmachines");
    assert!(c[2..].iter().all(|c| c.starts_with("GET ")), "{c:?}");
    // The Secret: our labels, the script under `userdata`.
    let secret = body(&reqs[0]);
    assert_eq!(secret["apiVersion"], "v1");
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["metadata"]["name"], format!("{}-cloudinit", s.name));
    assert_eq!(secret["stringData"]["userdata"], SCRIPT);
    assert_eq!(secret["metadata"]["labels"][VM_LABEL], s.name.as_str());
    // The VM as KubeVirt's swagger names it.
    let v = body(&reqs[1]);
    assert_eq!(v["spec"]["runStrategy"], "Always");
    let t = &v["spec"]["template"]["spec"];
    assert_eq!(t["domain"]["cpu"]["cores"], 2);
    assert_eq!(t["domain"]["memory"]["guest"], "4Gi");
    assert_eq!(t["domain"]["devices"]["interfaces"], json!([{"name": NAD, "bridge": {}}]));
    assert_eq!(t["networks"], json!([{"name": NAD, "multus": {"networkName": NAD}}]));
    assert_eq!(t["domain"]["firmware"]["bootloader"]["efi"]["secureBoot"], true);
    assert_eq!(t["domain"]["features"]["smm"]["enabled"], true);
    assert_eq!(t["domain"]["devices"]["tpm"], json!({}));
    let dv = &v["spec"]["dataVolumeTemplates"][0];
    assert_eq!(dv["spec"]["source"]["pvc"], json!({"namespace": NAMESPACE, "name": SOURCE_PVC}));
    assert_eq!(dv["spec"]["storage"]["resources"]["requests"]["storage"], "30Gi");
    // Every object made carries our labels: the VM, its DataVolume, its VMI and the Secret.
    let dv_name = format!("{}-disk", s.name);
    for (plural, name) in [
        ("virtualmachines", s.name.clone()),
        ("virtualmachineinstances", s.name.clone()),
        ("datavolumes", dv_name.clone()),
        ("secrets", format!("{}-cloudinit", s.name)),
    ] {
        let o = server.get(plural, &name).unwrap_or_else(|| panic!("{plural}/{name} exists"));
        let l = integration_tests::kubevirt_server::labels_of(&o);
        assert_eq!(l.get("kasm-autoscale-claim"), Some(&format!("v{}v", s.claim.as_str())), "{plural}: {l:?}");
        assert_eq!(l.get(VM_LABEL), Some(&s.name), "{plural}: {l:?}");
    }
    assert!(server.get("persistentvolumeclaims", &dv_name).is_some(), "the DataVolume's PVC");
    // Again for the same claim: both creates answer 409 AlreadyExists, the objects are read, one VM.
    server.api().clear_requests();
    let again = p.create_vm(&s).await.expect("create again");
    assert_eq!(again.id, vm.id);
    assert_eq!(server.names("virtualmachines"), vec![s.name.clone()]);
    assert_eq!(server.names("secrets").len(), 1);
    let c = calls(&server.requests());
    assert!(c.contains(&"GET /api/v1/namespaces/{ns}/secrets/{name}".to_string()), "{c:?}");
}

#[tokio::test]
async fn an_object_of_the_same_name_not_ours_is_refused() {
    let server = KubevirtTestServer::start().await;
    let p = provider(&server);
    let s = spec("dep", "cfg");
    server.put(
        "secrets",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("{}-cloudinit", s.name), "namespace": NAMESPACE, "labels": {"app": "ops"}}}),
    );
    let err = p.create_vm(&s).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Invalid, "{err}");
    assert!(err.to_string().contains("not made by kasm-autoscale"), "{err}");
    assert!(server.names("virtualmachines").is_empty());
}

#[tokio::test]
async fn delete_leaves_nothing_also_when_the_garbage_collector_lags() {
    for gc in [true, false] {
        let server = KubevirtTestServer::start().await;
        server.set_gc(gc);
        let p = provider(&server);
        let s = spec("dep", "cfg");
        let vm = p.create_vm(&s).await.expect("create");
        p.delete_vm(&vm.id).await.expect("delete");
        assert_eq!(server.leftovers(), Vec::<String>::new(), "gc {gc}");
        for r in server.requests().iter().filter(|r| r.method == "DELETE") {
            assert_eq!(body(r)["propagationPolicy"], "Background", "{}", r.route);
        }
        p.delete_vm(&vm.id).await.expect("deleting a missing VM succeeds");
        assert_eq!(p.get_vm(&vm.id).await.unwrap_err().class(), ErrorClass::NotFound);
    }
}

#[tokio::test]
async fn leftovers_of_a_gone_vm_are_listed_for_the_orphan_sweep_and_deleted() {
    let server = KubevirtTestServer::start().await;
    server.set_gc(false);
    let p = provider(&server);
    let s = spec("dep", "cfg");
    let vm = p.create_vm(&s).await.expect("create");
    // The VM is deleted behind our back (an operator, or our delete interrupted after the VM went).
    server.remove("virtualmachines", &vm.id);
    server.remove("virtualmachineinstances", &vm.id);
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
    let server = KubevirtTestServer::start().await;
    server.set_unschedulable(true);
    let p = provider(&server);
    let err = p.create_vm(&spec("dep", "cfg")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::OutOfCapacity, "{err}");
    assert!(err.to_string().contains("Insufficient memory"), "{err}");
    assert_eq!(server.leftovers(), Vec::<String>::new());
}

#[tokio::test]
async fn the_config_override_is_sent_with_the_name_labels_and_cloud_init() {
    let server = KubevirtTestServer::start().await;
    let mut cfg = config(&server);
    cfg.configuration_override = Some(
        serde_json::from_value(json!({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": "x"},
            "spec": {
                "dataVolumeTemplates": [{"metadata": {"name": "$KASM_NAME-dv"},
                    "spec": {"source": {"pvc": {"namespace": NAMESPACE, "name": SOURCE_PVC}}, "storage": {"resources": {"requests": {"storage": "40Gi"}}}}}],
                "template": {"spec": {
                    "domain": {"cpu": {"cores": 4}, "memory": {"guest": "8Gi"}, "devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}}]}},
                    "volumes": [{"name": "root", "dataVolume": {"name": "$KASM_NAME-dv"}}]}}
            }
        }))
        .expect("manifest"),
    );
    let p = provider_cfg(&cfg, TOKEN);
    let s = spec("dep", "cfg");
    let vm = p.create_vm(&s).await.expect("create");
    let sent = server.get("virtualmachines", &vm.id).expect("vm");
    assert_eq!(sent["spec"]["runStrategy"], "Always");
    assert_eq!(sent["spec"]["template"]["spec"]["domain"]["cpu"]["cores"], 4);
    assert!(server.get("datavolumes", &format!("{}-dv", s.name)).is_some());
    p.delete_vm(&vm.id).await.expect("delete");
    assert_eq!(server.leftovers(), Vec::<String>::new());
}

#[tokio::test]
async fn a_refused_token_is_auth_and_never_shown() {
    let server = KubevirtTestServer::start().await;
    let p = provider_cfg(&config(&server), "wrong-token-s3cr3t");
    let err = p.list_vms(&OwnerLabels::deployment("dep")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth, "{err}");
    assert!(!err.to_string().contains("wrong-token-s3cr3t"), "{err}");
    for r in server.requests() {
        assert!(!format!("{r:?}").contains("wrong-token-s3cr3t"), "recorded without credentials");
    }
}

#[tokio::test]
async fn a_forbidden_call_names_the_verb_and_resource() {
    let server = KubevirtTestServer::start().await;
    let p = provider(&server);
    server.api().inject(
        "POST /apis/kubevirt.io/v1/namespaces/{ns}/virtualmachines",
        Fault::Answer(status(403, "Forbidden", "virtualmachines.kubevirt.io is forbidden: User \"system:serviceaccount:kasm:as\" cannot create resource \"virtualmachines\" in API group \"kubevirt.io\" in the namespace \"kasm\"")),
        0,
        10,
    );
    let err = p.create_vm(&spec("dep", "cfg")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permission, "{err}");
    assert!(err.to_string().contains("cannot create resource \"virtualmachines\""), "{err}");
}

#[tokio::test]
async fn listing_follows_continue_pages_with_the_label_selector() {
    let server = KubevirtTestServer::start().await;
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
    assert_eq!(vm_lists[0].param("limit"), Some("2"));
    assert!(vm_lists[0].param("continue").is_none());
    assert!(vm_lists[1].param("continue").is_some());
}

#[tokio::test]
async fn preflight_passes_and_names_what_is_missing() {
    let server = KubevirtTestServer::start().await;
    let mut cfg = config(&server);
    cfg.vm_network_type = KubeNetworkType::Multus;
    cfg.vm_network_name = NAD.into();
    let checks = provider_cfg(&cfg, TOKEN).preflight().await;
    let names: Vec<&str> = checks.iter().map(|c| c.name).collect();
    assert_eq!(names, shared::providers::kubevirt::CHECKS);
    assert!(checks.iter().all(|c| c.ok), "{checks:?}");
    assert!(server.requests().iter().all(|r| r.method == "GET" || r.route.ends_with("selfsubjectaccessreviews")));

    server.deny("delete", "datavolumes");
    server.deny("create", "secrets");
    cfg.vm_disk_source = "missing-src".into();
    cfg.vm_network_name = "nope".into();
    let checks = provider_cfg(&cfg, TOKEN).preflight().await;
    let failed: Vec<(&str, &str)> = checks.iter().filter(|c| !c.ok).map(|c| (c.name, c.detail.as_str())).collect();
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert!(
        failed[0].1.contains("create secrets") && failed[0].1.contains("delete datavolumes.cdi.kubevirt.io"),
        "{failed:?}"
    );
    assert!(failed[1].1.contains("missing-src"), "{failed:?}");
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
    let server = KubevirtTestServer::start().await;
    let secret = Arc::new(Rotating(std::sync::Mutex::new("revoked-token".into())));
    let env = BuildEnv { retry: fast_retry(), timings: fast_timings(), ..BuildEnv::new(secret.clone(), "t") };
    let p = KubevirtProvider::from_config(&config(&server), &env).unwrap();

    // Refused, and the secret still holds the same token: sent once, Auth.
    let err = p.get_vm("kasm-x").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth, "{err}");
    assert_eq!(server.requests().len(), 1);

    // The operator rotates the token: the next refusal reads it again and the call goes through.
    *secret.0.lock().unwrap() = TOKEN.to_string();
    server.api().clear_requests();
    let err = p.get_vm("kasm-x").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::NotFound, "{err}");
    assert_eq!(server.requests().len(), 2, "the refused request and one with the new token");
    server.api().clear_requests();
    let _ = p.get_vm("kasm-x").await;
    assert_eq!(server.requests().len(), 1, "the new token is kept");
}
