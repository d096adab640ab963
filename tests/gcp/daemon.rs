//! The GCP provider through the whole daemon loop, end to end through the real `kasm-autoscale run`
//! binary: a GCP config (against the GCP test server) and the Kasm stand-in. The daemon scales up (an
//! instance is created with the startup script in its metadata; the agent registers with the id the
//! script carries and is enabled), then scales down (drained, its Kasm record deleted, the instance
//! and its boot disk gone).

use integration_tests::daemon::{Daemon, wait_for};
use integration_tests::gcp_server::{self, GcpTestServer};
use integration_tests::kasm_server::{AcceptAuth, KasmTestServer};
use integration_tests::runtime_api::workspace_binaries;
use shared::providers::gcp::labels;
use std::process::{Command, Stdio};
use std::time::Duration;

const KEY: &str = "daemon-key";
const SECRET: &str = "daemon-kasm-secret-Gc41";
const MANAGER_TOKEN: &str = "manager-token-Gm88";
const ZONE: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const POOL: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const STATIC: &str = "0000000000000000000000000000a11c";

fn config(kasm: &str, api: &str) -> String {
    format!(
        r#"
settings:
  deployment_id: daemon-gcp
  kasm:
    url: {kasm}
    api_key: {KEY}
    api_key_secret: env:E2E_KASM_SECRET
    manager_token: env:E2E_MANAGER_TOKEN
    upstream_auth_address: kasm.example.test
autoscale_configs:
  - autoscale_config_name: gcp-agents
    server_pool_id: {POOL}
    zone_id: {ZONE}
    vm_provider_config: gcp-us-east4
    standby_cores: 4
    downscale_backoff: 2
vm_provider_configs:
  - provider: gcp
    name: gcp-us-east4
    gcp_credentials: env:E2E_GCP_KEY
    endpoint_url: {api}
    max_instances: 3
    gcp_project: {project}
    gcp_region: us-east4
    gcp_zone: us-east4-b
    gcp_machine_type: n2-standard-4
    gcp_image: projects/ubuntu-os-cloud/global/images/ubuntu-2204-jammy-v20240319
    gcp_boot_volume_gb: 50
    gcp_disk_type: pd-ssd
    gcp_network: projects/{project}/global/networks/default
    gcp_subnetwork: projects/{project}/regions/us-east4/subnetworks/default
    gcp_public_ip: true
    startup_script: |
      #!/bin/bash
      bash kasm_release/install.sh -S agent -m {{upstream_auth_address}} -i {{server_id}} -r {{provider_name}} -M {{manager_token}}
"#,
        project = gcp_server::PROJECT
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_scales_a_gcp_pool_up_and_down() {
    let bin = workspace_binaries().join("kasm-autoscale");
    let kasm = KasmTestServer::start(KEY, SECRET, AcceptAuth::Body).await;
    let api = GcpTestServer::start().await;
    kasm.add_busy_static_agent(STATIC, ZONE, POOL);

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, config(&kasm.url, &api.url)).unwrap();
    let state = dir.path().join("state.redb");
    let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let log = dir.path().join("daemon.log");
    let key = gcp_server::key_file(&api.url);
    let mut daemon = Daemon(
        Command::new(&bin)
            .env("E2E_KASM_SECRET", SECRET)
            .env("E2E_MANAGER_TOKEN", MANAGER_TOKEN)
            .env("E2E_GCP_KEY", &key)
            .args(["run", "--config", cfg.to_str().unwrap(), "--state", state.to_str().unwrap()])
            .args(["--listen", &listen.to_string(), "--interval", "1"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start kasm-autoscale run"),
    );
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();

    wait_for("an instance to be created", Duration::from_secs(60), || {
        api.instances().iter().any(|i| i.status == "RUNNING" && i.metadata("startup-script").is_some())
    })
    .await;
    let instances = api.instances();
    assert_eq!(instances.len(), 1, "one instance for 4 missing cores: {instances:?}\n{}", logs());
    let inst = instances[0].clone();
    assert_eq!(inst.labels.get(labels::DEPLOYMENT), Some(&labels::encode("daemon-gcp")));
    assert_eq!(api.disks().len(), 1);
    let script = inst.metadata("startup-script").unwrap();
    assert!(script.contains(&format!("-M {MANAGER_TOKEN}")) && script.contains("-r gcp"), "{script}");
    let server_id = script
        .split_whitespace()
        .skip_while(|w| *w != "-i")
        .nth(1)
        .expect("the script carries -i {server_id}")
        .to_string();
    assert_eq!(server_id.len(), 32, "rendered as Kasm lists ids: {server_id}");

    kasm.register_until_enabled(&server_id, &inst.name, ZONE, POOL, 16_000.0, Duration::from_secs(30)).await;

    kasm.remove_session("s1");
    kasm.remove_session("s2");
    wait_for("the instance to be deleted", Duration::from_secs(60), || {
        kasm.check_in(&server_id);
        kasm.check_in(STATIC);
        api.instance(&inst.name).is_none()
    })
    .await;
    assert!(kasm.is_gone(&server_id), "Kasm record left: {:?}", kasm.agent(&server_id));
    assert!(kasm.agent(STATIC).is_some_and(|a| a["enabled"] == true), "the operator's agent was touched");
    assert!(api.instances().is_empty(), "{:?}", api.instances());
    assert!(api.disks().is_empty(), "disk left: {:?}", api.disks());
    let text = logs();
    assert!(!text.contains(SECRET) && !text.contains(MANAGER_TOKEN) && !text.contains("PRIVATE KEY"));
    assert!(!text.contains("ya29."), "an access token in the logs");

    assert_eq!(daemon.terminate().await, Some(0), "{}", logs());
}
