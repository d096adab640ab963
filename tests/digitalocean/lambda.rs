//! The DigitalOcean provider driven by the real Lambda functions (PROVIDER-CHECKLIST point 9): the
//! table and the secrets on moto, the DigitalOcean test server reached through the config's
//! `endpoint_url`, the token read from Secrets Manager. The scale-evaluator claims, the provisioner
//! (fed the stream records twice) creates exactly one droplet, the agent checks in and is enabled,
//! load drops, the agent is drained and the reaper (fed twice) destroys the droplet and its claim tag.

use integration_tests::digitalocean_server::{self, DigitalOceanTestServer};
use integration_tests::kasm_server::{AcceptAuth, AgentSpec, KasmTestServer};
use integration_tests::lambda_world::{LambdaWorld, evaluation, fixture, stream_event};
use integration_tests::moto::Moto;
use serde_json::json;
use shared::model::InstanceState;
use shared::ports::Store;
use shared::providers::digitalocean::tags;
use std::time::Duration;

const KEY: &str = "lambda-do-key";
const SECRET: &str = "lambda-do-kasm-secret-Wq52";
const MANAGER_TOKEN: &str = "lambda-do-manager-token-Mn08";
const ZONE: &str = "1f2e3d4c5b6a79889706a5b4c3d2e1f0";
const POOL: &str = "b1c2d3e4f5a60718293a4b5c6d7e8f91";
const STATIC: &str = "0000000000000000000000000000b22d";
const SCHEDULE: &str = "scale-evaluator/schedule-every-minute.json";

fn config(dep: &str, kasm: &str, api: &str) -> String {
    format!(
        r#"
settings:
  deployment_id: {dep}
  kasm:
    url: {kasm}
    api_key: {KEY}
    api_key_secret: secretsmanager:{dep}/kasm#api_key_secret
    manager_token: secretsmanager:{dep}/kasm#manager_token
    upstream_auth_address: kasm.example.test
autoscale_configs:
  - autoscale_config_name: do-agents
    server_pool_id: {POOL}
    zone_id: {ZONE}
    vm_provider_config: do-nyc3
    standby_cores: 4
    downscale_backoff: 2
vm_provider_configs:
  - provider: digital_ocean
    name: do-nyc3
    max_droplets: 3
    digital_ocean_token: secretsmanager:{dep}/digitalocean
    endpoint_url: {api}
    region: nyc3
    digital_ocean_droplet_image: docker-20-04
    digital_ocean_droplet_size: s-4vcpu-8gb
    digital_ocean_tags: kasm
    digital_ocean_sshkey_name: ops-key
    digital_ocean_firewall_name: kasm-fw
    startup_script: |
      #!/bin/bash
      bash kasm_release/install.sh -S agent -m {{upstream_auth_address}} -i {{server_id}} -r {{provider_name}} -M {{manager_token}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_functions_scale_a_digitalocean_pool_up_and_down() {
    let api = DigitalOceanTestServer::start().await;
    let kasm = KasmTestServer::start(KEY, SECRET, AcceptAuth::Either).await;
    let dep = format!("lambda-do-{}", std::process::id());
    let secrets = [
        (format!("{dep}/kasm"), json!({"api_key_secret": SECRET, "manager_token": MANAGER_TOKEN}).to_string()),
        (format!("{dep}/digitalocean"), digitalocean_server::TOKEN.to_string()),
    ];
    let yaml = config(&dep, &kasm.url, &api.url);
    let w = LambdaWorld::start(Moto::start(), kasm, &dep, &secrets, &yaml).await;
    let mut stream = w.stream().await;
    let _ = stream.read().await; // the configs written by `apply`

    // Load: a static agent (not ours) whose 4 cores are all taken; the pool wants 4 free.
    w.kasm.add_agent(AgentSpec {
        server_id: STATIC.into(),
        hostname: "static-agent".into(),
        zone_id: ZONE.into(),
        server_pool_id: Some(POOL.into()),
        enabled: true,
        cores: 4.0,
        memory_mb: 16_000.0,
        gpus: 0.0,
    });
    w.kasm.check_in(STATIC);
    w.kasm.add_session("s1", STATIC, 2.0, 2_000.0);
    w.kasm.add_session("s2", STATIC, 2.0, 2_000.0);

    // The schedule: one claim; the evaluator itself creates nothing.
    let resp = w.invoke("scale-evaluator", fixture(SCHEDULE)).await;
    assert_eq!(evaluation(&resp, "do-agents")["claimed"], 1, "{resp}");
    assert!(api.droplets().is_empty(), "the evaluator itself never creates a droplet");

    // The provisioner gets the claim's stream records twice (at-least-once): one droplet.
    let records = stream.read().await;
    let resp = w.invoke("provisioner", stream_event(&records)).await;
    assert_eq!(resp["batchItemFailures"], json!([]), "{resp}\n{}", w.all_logs());
    let again = w.invoke("provisioner", stream_event(&records)).await;
    assert_eq!(again["batchItemFailures"], json!([]), "{again}");
    let droplets = api.droplets();
    assert_eq!(droplets.len(), 1, "a redelivered batch must not create another droplet: {droplets:?}");
    let droplet = droplets[0].clone();
    let claim = w.claims("do-agents").await.pop().expect("the claim");
    assert_eq!(claim.state, InstanceState::Booting);
    assert_eq!(claim.vm_id.as_deref(), Some(droplet.id.to_string().as_str()));
    assert!(droplet.tags.contains(&tags::deployment_tag(&dep)), "{:?}", droplet.tags);
    assert!(droplet.tags.contains(&"kasm".to_string()), "the config's tag: {:?}", droplet.tags);
    assert_eq!(api.firewall_droplets("kasm-fw"), vec![droplet.id]);
    let script = droplet.user_data.clone().expect("user_data");
    assert!(script.contains(&format!("-i {}", claim.kasm_server_id)), "{script}");
    assert!(script.contains(&format!("-M {MANAGER_TOKEN}")), "the manager token from Secrets Manager");

    // The droplet boots: its agent registers under the claim's id (disabled); the next schedule
    // enables it.
    w.kasm.add_agent(AgentSpec {
        server_id: claim.kasm_server_id.clone(),
        hostname: droplet.name.clone(),
        zone_id: ZONE.into(),
        server_pool_id: Some(POOL.into()),
        enabled: false,
        cores: 4.0,
        memory_mb: 16_000.0,
        gpus: 0.0,
    });
    w.kasm.check_in(&claim.kasm_server_id);
    let resp = w.invoke("scale-evaluator", fixture(SCHEDULE)).await;
    assert_eq!(evaluation(&resp, "do-agents")["claimed"], 0, "{resp}");
    assert_eq!(w.kasm.agent(&claim.kasm_server_id).unwrap()["enabled"], true, "agent not enabled");
    assert!(w.claims("do-agents").await.iter().all(|c| c.state == InstanceState::Running));

    // Load drops: the next evaluation starts the backoff clock and drains nothing yet; after the
    // 2 s backoff our agent is drained (disabled first).
    w.kasm.remove_session("s1");
    w.kasm.remove_session("s2");
    let resp = w.invoke("scale-evaluator", fixture(SCHEDULE)).await;
    assert_eq!(evaluation(&resp, "do-agents")["actions"], 0, "drained before the backoff: {resp}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    w.kasm.check_in(&claim.kasm_server_id);
    w.kasm.check_in(STATIC);
    let _ = stream.read().await;
    let resp = w.invoke("scale-evaluator", fixture(SCHEDULE)).await;
    assert_eq!(evaluation(&resp, "do-agents")["actions"], 1, "{resp}");
    assert_eq!(w.claims("do-agents").await[0].state, InstanceState::Draining);
    assert_eq!(w.kasm.agent(&claim.kasm_server_id).unwrap()["enabled"], false);

    // The reaper, fed the drain records twice, deletes the Kasm record and destroys the droplet.
    let records = stream.read().await;
    let resp = w.invoke("reaper", stream_event(&records)).await;
    assert_eq!(resp["deleted"], json!([claim.id.to_string()]), "{resp}\n{}", w.all_logs());
    let again = w.invoke("reaper", stream_event(&records)).await;
    assert_eq!(again["deleted"], json!([]), "{again}");
    assert!(api.droplet(droplet.id).is_none(), "droplet not destroyed");
    assert!(api.tags().iter().all(|t| !t.starts_with(tags::CLAIM)), "claim tag left: {:?}", api.tags());
    assert!(api.firewall_droplets("kasm-fw").is_empty());
    assert!(w.kasm.is_gone(&claim.kasm_server_id), "Kasm record left behind");
    assert!(w.kasm.agent(STATIC).is_some_and(|a| a["enabled"] == true), "the operator's agent was touched");
    assert!(w.claims("do-agents").await.iter().all(|c| c.state == InstanceState::Deleted));
    assert_eq!(w.store.count_owned("do-nyc3").await.unwrap(), 0, "the cap counts no droplet of ours");

    // The token and the Kasm secrets went nowhere.
    let logs = w.all_logs();
    assert!(logs.contains("evaluation"), "the functions' logs were not captured:\n{logs}");
    for secret in [SECRET, MANAGER_TOKEN, digitalocean_server::TOKEN] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
}
