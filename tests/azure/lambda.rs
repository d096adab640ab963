//! The Azure provider driven by the real Lambda functions (PROVIDER-CHECKLIST point 9): the table and
//! the secrets on moto, the in-process Azure reached through the config's `endpoint_url` and
//! `authority_url`, the client secret read from Secrets Manager (see `integration_tests::lambda_world`).

use integration_tests::azure_server::{
    AzureTestServer, CLIENT_ID, CLIENT_SECRET, RESOURCE_GROUP, SUBSCRIPTION, TENANT, nsg_id, subnet_id,
};
use integration_tests::lambda_world::{AgentPool, POOL_MANAGER_TOKEN, POOL_SCRIPT, agent_pool_loop};
use shared::model::OwnerLabels;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_functions_scale_an_azure_pool_up_and_down() {
    let api = AzureTestServer::start().await;
    let dep = format!("lambda-az-{}", std::process::id());
    let provider_yaml = format!(
        r#"  - provider: azure
    name: pool-vms
    azure_subscription_id: {SUBSCRIPTION}
    azure_resource_group: {RESOURCE_GROUP}
    azure_tenant_id: {TENANT}
    azure_client_id: {CLIENT_ID}
    azure_client_secret: secretsmanager:{dep}/azure#client_secret
    azure_region: eastus
    max_instances: 3
    azure_vm_size: Standard_D4s_v5
    azure_os_disk_type: Premium_LRS
    azure_os_disk_size_gb: 64
    azure_image_reference: '{{"publisher":"canonical","offer":"ubuntu-24_04-lts","sku":"server","version":"latest"}}'
    azure_network_sg: {nsg}
    azure_subnet: {subnet}
    azure_public_ip: true
    azure_os_username: kasm
    azure_ssh_public_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKasmTestKey kasm@example
    endpoint_url: {url}
    authority_url: {url}
    startup_script: |
{POOL_SCRIPT}"#,
        nsg = nsg_id(),
        subnet = subnet_id(),
        url = api.url
    );
    let vms = || api.vms().iter().map(|v| v.name.clone()).collect();
    let on_created = |claim: &shared::model::Instance| {
        let vm = api.vms().pop().expect("the VM");
        assert_eq!(vm.tags.get(OwnerLabels::DEPLOYMENT), Some(&dep), "{:?}", vm.tags);
        assert_eq!(vm.tags.get(OwnerLabels::CLAIM).map(String::as_str), Some(claim.id.as_str()));
        assert_eq!((api.nics().len(), api.public_ips().len()), (1, 1), "the VM's NIC and public IP");
        use base64::Engine as _;
        let custom = vm.body.pointer("/properties/osProfile/customData").and_then(|v| v.as_str()).unwrap();
        let script = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(custom).unwrap()).unwrap();
        assert!(script.contains(&format!("-i {}", claim.kasm_server_id)), "{script}");
        assert!(script.contains(&format!("-M {POOL_MANAGER_TOKEN}")), "the manager token from Secrets Manager");
    };
    let on_deleted = |_: &shared::model::Instance| {
        assert!(api.nics().is_empty() && api.public_ips().is_empty(), "left: {:?}", api.resources());
        assert!(api.disks().is_empty(), "disk left: {:?}", api.resources());
    };
    agent_pool_loop(AgentPool {
        dep: &dep,
        provider_yaml: &provider_yaml,
        secrets: vec![(format!("{dep}/azure"), serde_json::json!({ "client_secret": CLIENT_SECRET }).to_string())],
        vms: &vms,
        on_created: &on_created,
        on_deleted: &on_deleted,
    })
    .await;
}
