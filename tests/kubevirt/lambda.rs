//! The KubeVirt provider driven by the real Lambda functions (PROVIDER-CHECKLIST point 9): the table
//! and the secrets on moto, the Kubernetes/KubeVirt test server reached through the config's
//! `endpoint_url`, the token read from Secrets Manager (see `integration_tests::lambda_world`).

use integration_tests::kubevirt_server::{self, KubevirtTestServer, NAMESPACE, SOURCE_PVC, labels_of};
use integration_tests::lambda_world::{AgentPool, POOL_MANAGER_TOKEN, POOL_SCRIPT, agent_pool_loop};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_functions_scale_a_kubevirt_pool_up_and_down() {
    use base64::Engine as _;
    let api = KubevirtTestServer::start().await;
    let dep = format!("lambda-kv-{}", std::process::id());
    let provider_yaml = format!(
        r#"  - provider: kubevirt
    name: pool-vms
    max_instances: 3
    host: https://kube.invalid:6443
    ssl_certificate: {ca}
    api_token: secretsmanager:{dep}/kubevirt
    endpoint_url: {url}
    vm_namespace: {NAMESPACE}
    vm_cores: 4
    vm_memory: 8
    vm_disk_size: 40
    vm_disk_source: {SOURCE_PVC}
    vm_network_name: default
    startup_script: |
{POOL_SCRIPT}"#,
        ca = base64::engine::general_purpose::STANDARD.encode(kubevirt_server::CA_PEM),
        url = api.url
    );
    let vms = || api.names("virtualmachines");
    let on_created = |claim: &shared::model::Instance| {
        let name = api.names("virtualmachines").pop().expect("the VM");
        let vm = api.get("virtualmachines", &name).expect("the VM");
        assert_eq!(
            labels_of(&vm).get("kasm-autoscale-deployment"),
            Some(&shared::providers::kube::labels::encode(&dep)),
            "{vm}"
        );
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
        secrets: vec![(format!("{dep}/kubevirt"), kubevirt_server::TOKEN.to_string())],
        vms: &vms,
        on_created: &on_created,
        on_deleted: &on_deleted,
    })
    .await;
}
