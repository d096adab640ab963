//! The Nutanix provider driven by the real Lambda functions (PROVIDER-CHECKLIST point 9): the table and
//! the secrets on moto, the Prism Central test server reached through the config's `endpoint_url`, the
//! password read from Secrets Manager (see `integration_tests::lambda_world`).

use integration_tests::lambda_world::{AgentPool, POOL_MANAGER_TOKEN, POOL_SCRIPT, agent_pool_loop};
use integration_tests::nutanix_server::{self, CANDIDATE_UUID, NutanixTestServer};
use shared::providers::nutanix::labels;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_functions_scale_a_nutanix_pool_up_and_down() {
    scales_up_and_down(NutanixTestServer::start().await).await;
}

/// The same through the v4 APIs (`api_version: v4`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_functions_scale_a_nutanix_v4_pool_up_and_down() {
    scales_up_and_down(NutanixTestServer::start_v4().await).await;
}

async fn scales_up_and_down(api: NutanixTestServer) {
    let version = if api.is_v4() { "v4" } else { "v3" };
    let dep = format!("lambda-ntnx-{version}-{}", std::process::id());
    let provider_yaml = format!(
        r#"  - provider: nutanix
    name: pool-vms
    max_instances: 3
    host: prism.example.test
    port: 9440
    username: {user}
    password: secretsmanager:{dep}/nutanix
    api_version: {version}
    endpoint_url: {url}
    vm_candidate: {candidate}
    cores: 4
    memory_bytes: 8589934592
    startup_script: |
{POOL_SCRIPT}"#,
        user = nutanix_server::USERNAME,
        candidate = nutanix_server::CANDIDATE,
        url = api.url
    );
    let vms = || api.vms().iter().map(|v| v.uuid.clone()).collect();
    let on_created = |claim: &shared::model::Instance| {
        let vm = api.vms().pop().expect("the VM");
        assert_eq!(vm.parent.as_deref(), Some(CANDIDATE_UUID), "cloned from the candidate");
        assert_eq!(vm.power_state, "ON");
        let owned = labels::labels(&vm.description);
        assert_eq!(owned.get("kasm-autoscale-deployment"), Some(&dep), "{vm:?}");
        let script = vm.user_data.expect("user data");
        assert!(script.contains(&format!("-i {}", claim.kasm_server_id)), "{script}");
        assert!(script.contains(&format!("-M {POOL_MANAGER_TOKEN}")), "the manager token from Secrets Manager");
    };
    let on_deleted = |_: &shared::model::Instance| {
        assert!(api.disks().iter().all(|(owner, _)| owner == CANDIDATE_UUID), "vdisks left: {:?}", api.disks());
        assert!(api.vm(CANDIDATE_UUID).is_some(), "the candidate is never touched");
    };
    agent_pool_loop(AgentPool {
        dep: &dep,
        provider_yaml: &provider_yaml,
        secrets: vec![(format!("{dep}/nutanix"), nutanix_server::PASSWORD.to_string())],
        vms: &vms,
        on_created: &on_created,
        on_deleted: &on_deleted,
    })
    .await;
}
