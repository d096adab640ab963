//! The Harvester provider driven by the real Lambda functions (PROVIDER-CHECKLIST point 9): the table
//! and the secrets on moto, the Harvester test server reached through the config's `endpoint_url`, the
//! token read from Secrets Manager (see `integration_tests::lambda_world`).

use integration_tests::harvester_server::{self as hs, IMAGE, IMAGE_NAMESPACE, NAMESPACE, labels_of};
use integration_tests::lambda_world::{AgentPool, POOL_MANAGER_TOKEN, POOL_SCRIPT, agent_pool_loop};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_functions_scale_a_harvester_pool_up_and_down() {
    use base64::Engine as _;
    let api = hs::start().await;
    let dep = format!("lambda-hv-{}", std::process::id());
    let provider_yaml = format!(
        r#"  - provider: harvester
    name: pool-vms
    max_instances: 3
    host: https://harvester.invalid/k8s/clusters/local
    ssl_certificate: {ca}
    api_token: secretsmanager:{dep}/harvester
    endpoint_url: {url}
    vm_namespace: {NAMESPACE}
    cores: 4
    memory: 8
    disk_image: {IMAGE_NAMESPACE}/{IMAGE}
    disk_size: 40
    startup_script: |
{POOL_SCRIPT}"#,
        ca = base64::engine::general_purpose::STANDARD.encode(hs::CA_PEM),
        url = api.url
    );
    let vms = || api.names("virtualmachines");
    let on_created = |claim: &shared::model::Instance| {
        let name = api.names("virtualmachines").pop().expect("the VM");
        let vm = api.get("virtualmachines", &name).expect("the VM");
        let ours = Some(shared::providers::kube::labels::encode(&dep));
        assert_eq!(labels_of(&vm).get("kasm-autoscale-deployment"), ours.as_ref(), "{vm}");
        let disk = api.get("persistentvolumeclaims", &format!("{name}-disk")).expect("the disk PVC");
        assert_eq!(labels_of(&disk).get("kasm-autoscale-deployment"), ours.as_ref(), "{disk}");
        let secret = api.get("secrets", &format!("{name}-cloudinit")).expect("the cloud-init Secret");
        let script = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(secret["data"]["userdata"].as_str().expect("userdata"))
                .unwrap(),
        )
        .unwrap();
        assert!(script.contains(&format!("-i {}", claim.kasm_server_id)), "{script}");
        assert!(script.contains(&format!("-M {POOL_MANAGER_TOKEN}")), "the manager token from Secrets Manager");
    };
    let on_deleted = |_: &shared::model::Instance| {
        assert_eq!(api.leftovers(), Vec::<String>::new(), "the VM and every dependent are gone");
    };
    agent_pool_loop(AgentPool {
        dep: &dep,
        provider_yaml: &provider_yaml,
        secrets: vec![(format!("{dep}/harvester"), hs::TOKEN.to_string())],
        vms: &vms,
        on_created: &on_created,
        on_deleted: &on_deleted,
    })
    .await;
}
