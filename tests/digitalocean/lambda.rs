//! The DigitalOcean provider driven by the real Lambda functions (PROVIDER-CHECKLIST point 9): the
//! table and the secrets on moto, the DigitalOcean test server reached through the config's
//! `endpoint_url`, the token read from Secrets Manager (see `integration_tests::lambda_world`).

use integration_tests::digitalocean_server::{self, DigitalOceanTestServer};
use integration_tests::lambda_world::{AgentPool, POOL_MANAGER_TOKEN, POOL_SCRIPT, agent_pool_loop};
use shared::providers::digitalocean::tags;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_functions_scale_a_digitalocean_pool_up_and_down() {
    let api = DigitalOceanTestServer::start().await;
    let dep = format!("lambda-do-{}", std::process::id());
    let provider_yaml = format!(
        r#"  - provider: digital_ocean
    name: pool-vms
    max_droplets: 3
    digital_ocean_token: secretsmanager:{dep}/digitalocean
    endpoint_url: {url}
    region: nyc3
    digital_ocean_droplet_image: docker-20-04
    digital_ocean_droplet_size: s-4vcpu-8gb
    digital_ocean_tags: kasm
    digital_ocean_sshkey_name: ops-key
    digital_ocean_firewall_name: kasm-fw
    startup_script: |
{POOL_SCRIPT}"#,
        url = api.url
    );
    let vms = || api.droplets().iter().map(|d| d.id.to_string()).collect();
    let on_created = |claim: &shared::model::Instance| {
        let d = api.droplets().pop().expect("the droplet");
        assert!(d.tags.contains(&tags::deployment_tag(&dep)), "{:?}", d.tags);
        assert!(d.tags.contains(&"kasm".to_string()), "the config's tag: {:?}", d.tags);
        assert_eq!(api.firewall_droplets("kasm-fw"), vec![d.id]);
        let script = d.user_data.expect("user_data");
        assert!(script.contains(&format!("-i {}", claim.kasm_server_id)), "{script}");
        assert!(script.contains(&format!("-M {POOL_MANAGER_TOKEN}")), "the manager token from Secrets Manager");
    };
    let on_deleted = |_: &shared::model::Instance| {
        assert!(api.tags().iter().all(|t| !t.starts_with(tags::CLAIM)), "claim tag left: {:?}", api.tags());
        assert!(api.firewall_droplets("kasm-fw").is_empty());
    };
    agent_pool_loop(AgentPool {
        dep: &dep,
        provider_yaml: &provider_yaml,
        secrets: vec![(format!("{dep}/digitalocean"), digitalocean_server::TOKEN.to_string())],
        vms: &vms,
        on_created: &on_created,
        on_deleted: &on_deleted,
    })
    .await;
}
