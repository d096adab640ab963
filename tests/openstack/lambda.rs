//! The OpenStack provider driven by the real Lambda functions (PROVIDER-CHECKLIST point 9): the table
//! and the secrets on moto, a real Keystone and the Nova/Cinder/Glance test services, the application
//! credential's secret read from Secrets Manager (see `integration_tests::lambda_world`).

use base64::Engine as _;
use integration_tests::lambda_world::{AgentPool, POOL_MANAGER_TOKEN, POOL_SCRIPT, agent_pool_loop};
use integration_tests::openstack_server::{IMAGE_ID, NETWORK_ID};

use super::World;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_functions_scale_an_openstack_pool_up_and_down() {
    let w = World::new("lambda").await;
    let dep = format!("lambda-os-{}", std::process::id());
    let provider_yaml = format!(
        r#"  - provider: openstack
    name: pool-vms
    max_instances: 3
    openstack_keystone_endpoint: {keystone}
    openstack_nova_endpoint: {nova}
    openstack_nova_version: "2.90"
    openstack_glance_endpoint: {glance}
    openstack_glance_version: "2"
    openstack_cinder_endpoint: {cinder}
    openstack_cinder_version: "3"
    openstack_project_name: {project}
    openstack_auth_method: application_credential
    openstack_application_credential_id: {app_id}
    openstack_application_credential_secret: secretsmanager:{dep}/openstack
    openstack_image_id: {IMAGE_ID}
    openstack_flavor: gen.medium
    openstack_create_volume: true
    openstack_volume_size_gb: 20
    openstack_security_groups: '["kasm-agents"]'
    openstack_network_id: {NETWORK_ID}
    openstack_key_name: kasm-admin
    startup_script: |
{POOL_SCRIPT}"#,
        keystone = w.keystone.url,
        nova = w.server.nova(),
        glance = w.server.glance(),
        cinder = w.server.cinder(),
        project = w.tenant.project,
        app_id = w.tenant.app_cred_id,
    );
    let vms = || w.server.servers().iter().map(|s| s.id.clone()).collect();
    let on_created = |claim: &shared::model::Instance| {
        let server = w.server.servers().pop().expect("the server");
        assert_eq!(server.metadata.get("kasm-autoscale-deployment"), Some(&dep), "{:?}", server.metadata);
        let vols = w.server.volumes();
        assert_eq!(vols.len(), 1, "its boot volume: {vols:?}");
        assert_eq!(vols[0].metadata.get("kasm-autoscale-claim").map(String::as_str), Some(claim.id.as_str()));
        let ud = server.request["user_data"].as_str().expect("user_data");
        let script = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(ud).unwrap()).unwrap();
        assert!(script.contains(&format!("-i {}", claim.kasm_server_id)), "{script}");
        assert!(script.contains(&format!("-M {POOL_MANAGER_TOKEN}")), "the manager token from Secrets Manager");
    };
    let on_deleted = |_: &shared::model::Instance| {
        assert!(w.server.volumes().is_empty(), "volume left: {:?}", w.server.volumes());
    };
    agent_pool_loop(AgentPool {
        dep: &dep,
        provider_yaml: &provider_yaml,
        secrets: vec![(format!("{dep}/openstack"), w.tenant.app_cred_secret.clone())],
        vms: &vms,
        on_created: &on_created,
        on_deleted: &on_deleted,
    })
    .await;
}
