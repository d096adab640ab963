//! The Azure provider through the whole daemon loop (PROVIDER-CHECKLIST point 9), end to end through
//! the real `kasm-autoscale run` binary: an Azure config (against the in-process Azure) and the Kasm
//! stand-in. The daemon scales up (a VM with its NIC and public IP, the startup script as custom data;
//! the agent registers with the id the script carries and is enabled), then scales down (drained, its
//! record deleted, the VM and everything made with it gone from the resource group).

use base64::Engine as _;
use integration_tests::azure_server::{
    AzureTestServer, CLIENT_ID, CLIENT_SECRET, RESOURCE_GROUP, SUBSCRIPTION, TENANT, nsg_id, subnet_id,
};
use integration_tests::daemon::{Daemon, wait_for};
use integration_tests::kasm_server::{AcceptAuth, KasmTestServer};
use integration_tests::runtime_api::workspace_binaries;
use shared::model::OwnerLabels;
use std::process::{Command, Stdio};
use std::time::Duration;

const KEY: &str = "daemon-key";
const SECRET: &str = "daemon-kasm-secret-Qz19";
const MANAGER_TOKEN: &str = "manager-token-Mt77";
const ZONE: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const POOL: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const STATIC: &str = "0000000000000000000000000000a11c";

fn config(kasm: &str, api: &str) -> String {
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
  - autoscale_config_name: azure-agents
    server_pool_id: {POOL}
    zone_id: {ZONE}
    vm_provider_config: azure-eastus
    standby_cores: 4
    downscale_backoff: 2
vm_provider_configs:
  - provider: azure
    name: azure-eastus
    azure_subscription_id: {SUBSCRIPTION}
    azure_resource_group: {RESOURCE_GROUP}
    azure_tenant_id: {TENANT}
    azure_client_id: {CLIENT_ID}
    azure_client_secret: env:E2E_AZURE_SECRET
    azure_region: eastus
    max_instances: 3
    azure_vm_size: Standard_D4s_v5
    azure_os_disk_type: Premium_LRS
    azure_os_disk_size_gb: 64
    azure_image_reference: '{{"publisher":"canonical","offer":"ubuntu-24_04-lts","sku":"server","version":"latest"}}'
    azure_network_sg: {nsg}
    azure_subnet: {subnet}
    azure_public_ip: true
    azure_tags: '{{"team":"vdi"}}'
    azure_os_username: kasm
    azure_ssh_public_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKasmTestKey kasm@example
    endpoint_url: {api}
    authority_url: {api}
    startup_script: |
      #!/bin/bash
      bash kasm_release/install.sh -S agent -m {{upstream_auth_address}} -i {{server_id}} -r {{provider_name}} -M {{manager_token}}
"#,
        nsg = nsg_id(),
        subnet = subnet_id(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_scales_an_azure_pool_up_and_down() {
    let bin = workspace_binaries().join("kasm-autoscale");
    let kasm = KasmTestServer::start(KEY, SECRET, AcceptAuth::Body).await;
    let api = AzureTestServer::start().await;
    // Load: a static agent (not ours) whose 4 cores are all taken; the pool wants 4 free.
    kasm.add_busy_static_agent(STATIC, ZONE, POOL);

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, config(&kasm.url, &api.url)).unwrap();
    let state = dir.path().join("state.redb");
    let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let log = dir.path().join("daemon.log");
    let mut daemon = Daemon(
        Command::new(&bin)
            .env("E2E_KASM_SECRET", SECRET)
            .env("E2E_MANAGER_TOKEN", MANAGER_TOKEN)
            .env("E2E_AZURE_SECRET", CLIENT_SECRET)
            .args(["run", "--config", cfg.to_str().unwrap(), "--state", state.to_str().unwrap()])
            .args(["--listen", &listen.to_string(), "--interval", "1"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start kasm-autoscale run"),
    );
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();

    // Scale up: one VM, with its NIC, public IP and OS disk, the startup script as custom data.
    wait_for("a VM to be created", Duration::from_secs(90), || {
        api.vms().iter().any(|v| v.body.pointer("/properties/osProfile/customData").is_some())
            && api.requests().iter().any(|r| r.method == "GET" && r.route.ends_with("networkInterfaces/{nic}"))
    })
    .await;
    let vms = api.vms();
    assert_eq!(vms.len(), 1, "one VM for 4 missing cores: {vms:?}\n{}", logs());
    let vm = vms[0].clone();
    assert_eq!(vm.tags.get(OwnerLabels::DEPLOYMENT).map(String::as_str), Some("daemon-e2e"));
    assert_eq!(vm.tags.get("team").map(String::as_str), Some("vdi"));
    assert_eq!(api.nics().len(), 1);
    assert_eq!(api.public_ips().len(), 1);
    assert!(
        api.nics()[0].tags.contains_key(OwnerLabels::CLAIM)
            && api.public_ips()[0].tags.contains_key(OwnerLabels::CLAIM)
    );
    let custom = vm.body.pointer("/properties/osProfile/customData").and_then(|v| v.as_str()).unwrap();
    let script = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(custom).unwrap()).unwrap();
    assert!(script.contains(&format!("-M {MANAGER_TOKEN}")) && script.contains("-r azure"), "{script}");
    let server_id = script
        .split_whitespace()
        .skip_while(|w| *w != "-i")
        .nth(1)
        .expect("the script carries -i {server_id}")
        .to_string();
    assert_eq!(server_id.len(), 32, "rendered as Kasm lists ids: {server_id}");

    // The VM boots: its agent registers itself under that id, disabled.
    kasm.register_until_enabled(&server_id, &vm.name, ZONE, POOL, 16_000.0, Duration::from_secs(60)).await;

    // Load goes away: drained, its record deleted, the VM destroyed with everything made for it.
    kasm.remove_session("s1");
    kasm.remove_session("s2");
    wait_for("the VM and its NIC and IP to be deleted", Duration::from_secs(90), || {
        kasm.check_in(&server_id);
        kasm.check_in(STATIC);
        api.resources().is_empty()
    })
    .await;
    assert!(kasm.is_gone(&server_id), "Kasm record left: {:?}", kasm.agent(&server_id));
    assert!(kasm.agent(STATIC).is_some_and(|a| a["enabled"] == true), "the operator's agent was touched");
    let text = logs();
    for secret in [SECRET, MANAGER_TOKEN, CLIENT_SECRET] {
        assert!(!text.contains(secret), "a secret in the logs");
    }
    assert!(!text.contains("eyJ0eXAi"), "an access token in the logs");

    // SIGTERM: a clean exit.
    assert_eq!(daemon.terminate().await, Some(0), "{}", logs());
}
