//! The Harvester provider through the whole daemon loop (PROVIDER-CHECKLIST point 9), end to end
//! through the real `kasm-autoscale run` binary: a Harvester config (against the in-process Harvester
//! test server) and the Kasm stand-in. The daemon scales up (a VirtualMachine is created with the
//! startup script in its cloud-init Secret and its disk PVC from the image; the agent registers with the
//! id the script carries and is enabled), then scales down (drained, then the VM and every dependent
//! gone: VMI, Secret, KeyPair, PVC).

use integration_tests::daemon::{Daemon, wait_for};
use integration_tests::harvester_server::{self as hs, IMAGE, IMAGE_NAMESPACE, NAMESPACE, labels_of};
use integration_tests::kasm_server::{AcceptAuth, KasmTestServer};
use integration_tests::runtime_api::workspace_binaries;
use std::process::{Command, Stdio};
use std::time::Duration;

const KEY: &str = "daemon-key";
const SECRET: &str = "daemon-kasm-secret-Qz19";
const MANAGER_TOKEN: &str = "manager-token-Mt77";
const ZONE: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const POOL: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const STATIC: &str = "0000000000000000000000000000a11c";

fn ca_b64() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(hs::CA_PEM)
}

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
  - autoscale_config_name: harvester-agents
    server_pool_id: {POOL}
    zone_id: {ZONE}
    vm_provider_config: harvester-pool
    standby_cores: 4
    downscale_backoff: 2
vm_provider_configs:
  - provider: harvester
    name: harvester-pool
    max_instances: 3
    host: https://harvester.invalid/k8s/clusters/local
    ssl_certificate: {ca}
    api_token: env:E2E_KUBE_TOKEN
    endpoint_url: {api}
    vm_namespace: {NAMESPACE}
    vm_ssh_public_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDaemonKey op@example
    cores: 4
    memory: 16
    disk_image: {IMAGE_NAMESPACE}/{IMAGE}
    disk_size: 40
    startup_script: |
      #!/bin/bash
      bash kasm_release/install.sh -S agent -m {{upstream_auth_address}} -i {{server_id}} -r {{provider_name}} -M {{manager_token}}
"#,
        ca = ca_b64()
    )
}

/// The user data in a cloud-init Secret (the server keeps `stringData` as base64 `data`).
fn userdata(secret: &serde_json::Value) -> String {
    use base64::Engine as _;
    let b = secret["data"]["userdata"].as_str().expect("data.userdata");
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).expect("base64")).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_scales_a_harvester_pool_up_and_down() {
    let bin = workspace_binaries().join("kasm-autoscale");
    let kasm = KasmTestServer::start(KEY, SECRET, AcceptAuth::Body).await;
    let api = hs::start().await;
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
            .env("E2E_KUBE_TOKEN", hs::TOKEN)
            .args(["run", "--config", cfg.to_str().unwrap(), "--state", state.to_str().unwrap()])
            .args(["--listen", &listen.to_string(), "--interval", "1"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start kasm-autoscale run"),
    );
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();

    // Scale up: one VirtualMachine, running, with the startup script in its cloud-init Secret.
    wait_for("a VM to be running", Duration::from_secs(60), || {
        api.names("virtualmachines")
            .iter()
            .any(|n| api.get("virtualmachines", n).is_some_and(|v| v["status"]["printableStatus"] == "Running"))
    })
    .await;
    let vms = api.names("virtualmachines");
    assert_eq!(vms.len(), 1, "one VM for 4 missing cores: {vms:?}\n{}", logs());
    let vm = api.get("virtualmachines", &vms[0]).unwrap();
    assert_eq!(labels_of(&vm).get("kasm-autoscale-deployment").map(String::as_str), Some("vdaemon-e2ev"));
    let secret = api.get("secrets", &format!("{}-cloudinit", vms[0])).expect("the cloud-init Secret");
    let script = userdata(&secret);
    assert!(script.contains(&format!("-M {MANAGER_TOKEN}")) && script.contains("-r harvester"), "{script}");
    let disk = api.get("persistentvolumeclaims", &format!("{}-disk", vms[0])).expect("the disk PVC from the image");
    assert_eq!(labels_of(&disk).get("kasm-autoscale-deployment").map(String::as_str), Some("vdaemon-e2ev"));
    assert!(api.get("keypairs", &format!("{}-sshkey", vms[0])).is_some(), "the KeyPair");
    let server_id = script
        .split_whitespace()
        .skip_while(|w| *w != "-i")
        .nth(1)
        .expect("the script carries -i {server_id}")
        .to_string();
    assert_eq!(server_id.len(), 32, "rendered as Kasm lists ids: {server_id}");

    // The VM boots: its agent registers itself under that id, disabled (no auto_agent).
    kasm.register_until_enabled(&server_id, &vms[0], ZONE, POOL, 16_000.0, Duration::from_secs(30)).await;

    // Load goes away: ours is drained and the VM deleted with every dependent.
    kasm.remove_session("s1");
    kasm.remove_session("s2");
    wait_for("the VM to be deleted", Duration::from_secs(60), || {
        kasm.check_in(&server_id);
        kasm.check_in(STATIC);
        api.leftovers().is_empty()
    })
    .await;
    assert!(kasm.is_gone(&server_id), "Kasm record left: {:?}", kasm.agent(&server_id));
    assert!(kasm.agent(STATIC).is_some_and(|a| a["enabled"] == true), "the operator's agent was touched");
    assert_eq!(api.leftovers(), Vec::<String>::new());
    assert!(api.get_in("virtualmachineimages", IMAGE_NAMESPACE, IMAGE).is_some(), "the image is never touched");

    // Only real Kasm calls were made, and each of them was.
    let called: Vec<String> = kasm.paths_called().into_iter().map(|(p, _)| p).collect();
    for p in &called {
        assert!(
            [
                "/api/admin/get_servers",
                "/api/public/get_kasms",
                "/api/admin/get_staging_configs",
                "/api/admin/update_server",
                "/api/admin/delete_server"
            ]
            .contains(&p.as_str()),
            "called {p}, which Kasm lacks or we should not need"
        );
    }
    assert!(called.iter().any(|p| p == "/api/admin/delete_server"), "{called:?}");
    let text = logs();
    assert!(!text.contains(SECRET) && !text.contains(MANAGER_TOKEN) && !text.contains(hs::TOKEN));

    // SIGTERM: a clean exit.
    assert_eq!(daemon.terminate().await, Some(0), "{}", logs());
}
