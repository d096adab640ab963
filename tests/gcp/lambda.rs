//! The GCP provider driven by the real Lambda functions (PROVIDER-CHECKLIST point 9): the table and the
//! secrets on moto, the in-process Compute Engine and token endpoint reached through the config's
//! `endpoint_url` and the key file's `token_uri`, the key file read from Secrets Manager (see
//! `integration_tests::lambda_world`).

use integration_tests::gcp_server::{self, GcpTestServer, PROJECT};
use integration_tests::lambda_world::{AgentPool, POOL_MANAGER_TOKEN, POOL_SCRIPT, agent_pool_loop};
use shared::providers::gcp::labels;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_functions_scale_a_gcp_pool_up_and_down() {
    let api = GcpTestServer::start().await;
    let dep = format!("lambda-gcp-{}", std::process::id());
    let provider_yaml = format!(
        r#"  - provider: gcp
    name: pool-vms
    gcp_credentials: secretsmanager:{dep}/gcp
    endpoint_url: {url}
    max_instances: 3
    gcp_project: {PROJECT}
    gcp_region: us-east4
    gcp_zone: us-east4-b
    gcp_machine_type: n2-standard-4
    gcp_image: projects/ubuntu-os-cloud/global/images/ubuntu-2204-jammy-v20240319
    gcp_boot_volume_gb: 50
    gcp_disk_type: pd-ssd
    gcp_network: projects/{PROJECT}/global/networks/default
    gcp_subnetwork: projects/{PROJECT}/regions/us-east4/subnetworks/default
    gcp_public_ip: true
    startup_script: |
{POOL_SCRIPT}"#,
        url = api.url
    );
    let vms = || api.instances().iter().map(|i| i.name.clone()).collect();
    let on_created = |claim: &shared::model::Instance| {
        let inst = api.instances().pop().expect("the instance");
        assert_eq!(inst.labels.get(labels::DEPLOYMENT), Some(&labels::encode(&dep)), "{:?}", inst.labels);
        assert_eq!(api.disks().len(), 1, "its boot disk");
        let script = inst.metadata("startup-script").expect("the startup script in metadata");
        assert!(script.contains(&format!("-i {}", claim.kasm_server_id)), "{script}");
        assert!(script.contains(&format!("-M {POOL_MANAGER_TOKEN}")), "the manager token from Secrets Manager");
    };
    let on_deleted = |_: &shared::model::Instance| {
        assert!(api.disks().is_empty(), "disk left: {:?}", api.disks());
    };
    agent_pool_loop(AgentPool {
        dep: &dep,
        provider_yaml: &provider_yaml,
        secrets: vec![(format!("{dep}/gcp"), gcp_server::key_file(&api.url))],
        vms: &vms,
        on_created: &on_created,
        on_deleted: &on_deleted,
    })
    .await;
}
