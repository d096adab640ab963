//! The Nutanix provider through the whole daemon loop (PROVIDER-CHECKLIST point 9), end to end
//! through the real `kasm-autoscale run` binary: a Nutanix config in Kasm's own column names (against
//! the Prism Central test server) and the Kasm stand-in. The daemon scales up (a VM is cloned from the
//! candidate with the startup script as its cloud-init user data, and powered on; the agent registers
//! with the id the script carries and is enabled), then scales down (drained, its record deleted, the
//! VM and its vdisks gone).

use integration_tests::daemon::{Daemon, wait_for};
use integration_tests::kasm_server::{AcceptAuth, KasmTestServer};
use integration_tests::nutanix_server::{self, CANDIDATE_UUID, NutanixTestServer};
use integration_tests::runtime_api::workspace_binaries;
use shared::providers::nutanix::labels;
use std::process::{Command, Stdio};
use std::time::Duration;

const KEY: &str = "daemon-key";
const SECRET: &str = "daemon-kasm-secret-Qz19";
const MANAGER_TOKEN: &str = "manager-token-Mt77";
const ZONE: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const POOL: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const STATIC: &str = "0000000000000000000000000000a11c";

fn config(kasm: &str, api: &str, version: &str) -> String {
    format!(
        r#"
settings:
  deployment_id: daemon-e2e
  kasm:
    url: {kasm}
    api_key: {KEY}
    api_key_secret: env:E2E_KASM_SECRET
    manager_token: env:E2E_MANAGER_TOKEN
    upstream_auth_address: kasm.example.test
autoscale_configs:
  - autoscale_config_name: homelab-agents
    server_pool_id: {POOL}
    zone_id: {ZONE}
    vm_provider_config: prism
    standby_cores: 4
    downscale_backoff: 2
vm_provider_configs:
  - provider: nutanix
    config_name: prism
    max_instances: 3
    host: prism.example.test
    port: 9440
    username: {user}
    password: env:E2E_NTNX_PASSWORD
    verify_ssl: true
    api_version: {version}
    endpoint_url: {api}
    vm_candidate: {candidate}
    cores: 4
    memory_bytes: 8589934592
    startup_script: |
      #!/bin/bash
      bash kasm_release/install.sh -S agent -m {{upstream_auth_address}} -i {{server_id}} -r {{provider_name}} -M {{manager_token}}
"#,
        user = nutanix_server::USERNAME,
        candidate = nutanix_server::CANDIDATE,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_scales_a_nutanix_pool_up_and_down() {
    scales_up_and_down(NutanixTestServer::start().await).await;
}

/// The same through the v4 APIs (`api_version: v4`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_scales_a_nutanix_v4_pool_up_and_down() {
    scales_up_and_down(NutanixTestServer::start_v4().await).await;
}

async fn scales_up_and_down(api: NutanixTestServer) {
    let bin = workspace_binaries().join("kasm-autoscale");
    let kasm = KasmTestServer::start(KEY, SECRET, AcceptAuth::Body).await;
    let version = if api.is_v4() { "v4" } else { "v3" };
    // Load: a static agent (not ours) whose 4 cores are all taken; the pool wants 4 free.
    kasm.add_busy_static_agent(STATIC, ZONE, POOL);

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, config(&kasm.url, &api.url, version)).unwrap();
    let state = dir.path().join("state.redb");
    let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let log = dir.path().join("daemon.log");
    let mut daemon = Daemon(
        Command::new(&bin)
            .env("E2E_KASM_SECRET", SECRET)
            .env("E2E_MANAGER_TOKEN", MANAGER_TOKEN)
            .env("E2E_NTNX_PASSWORD", nutanix_server::PASSWORD)
            .args(["run", "--config", cfg.to_str().unwrap(), "--state", state.to_str().unwrap()])
            .args(["--listen", &listen.to_string(), "--interval", "1"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start kasm-autoscale run"),
    );
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();

    // Scale up: one VM cloned from the candidate with the startup script as its user data, powered on.
    wait_for("a VM to be cloned and powered on", Duration::from_secs(60), || {
        api.vms().iter().any(|v| v.power_state == "ON" && v.user_data.is_some())
    })
    .await;
    let vms = api.vms();
    assert_eq!(vms.len(), 1, "one VM for 4 missing cores: {vms:?}\n{}", logs());
    let vm = vms[0].clone();
    assert_eq!(vm.parent.as_deref(), Some(CANDIDATE_UUID));
    assert_eq!((vm.num_sockets, vm.memory_size_mib), (4, 8192), "Kasm's cores and memory_bytes");
    let owned = labels::labels(&vm.description);
    assert_eq!(owned.get("kasm-autoscale-deployment").map(String::as_str), Some("daemon-e2e"), "{vm:?}");
    let script = vm.user_data.clone().unwrap();
    assert!(script.contains(&format!("-M {MANAGER_TOKEN}")) && script.contains("-r nutanix"), "{script}");
    let server_id = script
        .split_whitespace()
        .skip_while(|w| *w != "-i")
        .nth(1)
        .expect("the script carries -i {server_id}")
        .to_string();
    assert_eq!(server_id.len(), 32, "rendered as Kasm lists ids: {server_id}");

    // The VM boots: its agent registers itself under that id, disabled (no auto_agent).
    kasm.register_until_enabled(&server_id, &vm.name, ZONE, POOL, 8_000.0, Duration::from_secs(30)).await;

    // Load goes away: after the 2 s backoff ours is drained, its record deleted and the VM destroyed.
    kasm.remove_session("s1");
    kasm.remove_session("s2");
    wait_for("the VM to be destroyed", Duration::from_secs(60), || {
        kasm.check_in(&server_id);
        kasm.check_in(STATIC);
        api.vm(&vm.uuid).is_none()
    })
    .await;
    assert!(kasm.is_gone(&server_id), "Kasm record left: {:?}", kasm.agent(&server_id));
    assert!(kasm.agent(STATIC).is_some_and(|a| a["enabled"] == true), "the operator's agent was touched");
    assert!(api.vms().is_empty(), "{:?}", api.vms());
    assert!(api.disks().iter().all(|(owner, _)| owner == CANDIDATE_UUID), "vdisks left: {:?}", api.disks());
    assert!(api.vm(CANDIDATE_UUID).is_some(), "the candidate is never touched");

    let text = logs();
    assert!(!text.contains(SECRET) && !text.contains(MANAGER_TOKEN) && !text.contains(nutanix_server::PASSWORD));

    // SIGTERM: a clean exit.
    assert_eq!(daemon.terminate().await, Some(0), "{}", logs());
}
