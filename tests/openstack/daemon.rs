//! The OpenStack provider through the whole daemon loop (PROVIDER-CHECKLIST point 9), end to end
//! through the real `kasm-autoscale run` binary: an OpenStack config (the real Keystone and the
//! in-process Nova/Cinder/Glance) and the Kasm stand-in. The daemon scales up (a server booted from
//! a labelled volume, the startup script as base64 `user_data`; the agent registers with the id the
//! script carries and is enabled), then scales down (drained, its record deleted, the server and its
//! volume gone).

use base64::Engine;
use integration_tests::daemon::{Daemon, wait_for};
use integration_tests::kasm_server::{AcceptAuth, KasmTestServer};
use integration_tests::openstack_server::{IMAGE_ID, NETWORK_ID};
use integration_tests::runtime_api::workspace_binaries;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::World;

const KEY: &str = "daemon-key";
const SECRET: &str = "daemon-kasm-secret-Qz19";
const MANAGER_TOKEN: &str = "manager-token-Mt77";
const ZONE: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const POOL: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const STATIC: &str = "0000000000000000000000000000a11c";

fn config(kasm: &str, w: &World) -> String {
    format!(
        r#"
settings:
  deployment_id: daemon-os
  kasm:
    url: {kasm}
    api_key: {KEY}
    api_key_secret: env:E2E_KASM_SECRET
    manager_token: env:E2E_MANAGER_TOKEN
    upstream_auth_address: kasm.example.test
autoscale_configs:
  - autoscale_config_name: os-agents
    server_pool_id: {POOL}
    zone_id: {ZONE}
    vm_provider_config: os-region1
    standby_cores: 4
    downscale_backoff: 2
vm_provider_configs:
  - provider: openstack
    name: os-region1
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
    openstack_application_credential_secret: env:E2E_OS_APP_SECRET
    openstack_image_id: {IMAGE_ID}
    openstack_flavor: gen.medium
    openstack_create_volume: true
    openstack_volume_size_gb: 20
    openstack_security_groups: '["kasm-agents"]'
    openstack_network_id: {NETWORK_ID}
    openstack_key_name: kasm-admin
    openstack_metadata: '{{"team": "vdi"}}'
    startup_script: |
      #!/bin/bash
      bash kasm_release/install.sh -S agent -m {{upstream_auth_address}} -i {{server_id}} -r {{provider_name}} -M {{manager_token}}
"#,
        keystone = w.keystone.url,
        nova = w.server.nova(),
        glance = w.server.glance(),
        cinder = w.server.cinder(),
        project = w.tenant.project,
        app_id = w.tenant.app_cred_id,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_scales_an_openstack_pool_up_and_down() {
    let bin = workspace_binaries().join("kasm-autoscale");
    let w = World::new("daemon").await;
    let kasm = KasmTestServer::start(KEY, SECRET, AcceptAuth::Body).await;
    kasm.add_busy_static_agent(STATIC, ZONE, POOL);

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, config(&kasm.url, &w)).unwrap();
    let state = dir.path().join("state.redb");
    let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let log = dir.path().join("daemon.log");
    let mut daemon = Daemon(
        Command::new(&bin)
            .env("E2E_KASM_SECRET", SECRET)
            .env("E2E_MANAGER_TOKEN", MANAGER_TOKEN)
            .env("E2E_OS_APP_SECRET", &w.tenant.app_cred_secret)
            .args(["run", "--config", cfg.to_str().unwrap(), "--state", state.to_str().unwrap()])
            .args(["--listen", &listen.to_string(), "--interval", "1"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start kasm-autoscale run"),
    );
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();

    wait_for("a server to be created", Duration::from_secs(90), || {
        w.server.servers().iter().any(|s| s.status == "ACTIVE")
    })
    .await;
    let servers = w.server.servers();
    assert_eq!(servers.len(), 1, "one server for 4 missing cores: {servers:?}\n{}", logs());
    let server = servers[0].clone();
    assert_eq!(server.metadata.get("kasm-autoscale-deployment").map(String::as_str), Some("daemon-os"));
    assert_eq!(server.metadata.get("team").map(String::as_str), Some("vdi"));
    let vols = w.server.volumes();
    assert_eq!(vols.len(), 1, "{vols:?}");
    assert_eq!(vols[0].metadata.get("kasm-autoscale-deployment").map(String::as_str), Some("daemon-os"));
    let ud = server.request["user_data"].as_str().expect("user_data");
    let script = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(ud).unwrap()).unwrap();
    assert!(script.contains(&format!("-M {MANAGER_TOKEN}")) && script.contains("-r openstack"), "{script}");
    let server_id = script
        .split_whitespace()
        .skip_while(|w| *w != "-i")
        .nth(1)
        .expect("the script carries -i {server_id}")
        .to_string();

    kasm.register_until_enabled(&server_id, &server.name, ZONE, POOL, 16_000.0, Duration::from_secs(30)).await;

    kasm.remove_session("s1");
    kasm.remove_session("s2");
    wait_for("the server to be deleted", Duration::from_secs(60), || {
        kasm.check_in(&server_id);
        kasm.check_in(STATIC);
        w.server.servers().is_empty()
    })
    .await;
    wait_for("the volume to be deleted", Duration::from_secs(30), || w.server.volumes().is_empty()).await;
    assert!(kasm.is_gone(&server_id), "Kasm record left: {:?}", kasm.agent(&server_id));
    assert!(kasm.agent(STATIC).is_some_and(|a| a["enabled"] == true), "the operator's agent was touched");
    let text = logs();
    assert!(
        !text.contains(SECRET) && !text.contains(MANAGER_TOKEN) && !text.contains(&w.tenant.app_cred_secret),
        "a secret in the log"
    );

    assert_eq!(daemon.terminate().await, Some(0), "{}", logs());
}
