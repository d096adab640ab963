//! The vSphere provider through the whole daemon loop (PROVIDER-CHECKLIST point 9), end to end
//! through the real `kasm-autoscale run` binary: a vSphere config in Kasm's own column names (against
//! the vCenter test server) and the Kasm stand-in. The daemon scales up (a VM is cloned from the
//! template, sized, labelled, powered on, and the startup script is run in it through guest
//! operations; the agent registers with the id the script carries and is enabled), then scales down
//! (drained, its record deleted, the VM powered off and deleted, its disk space back).

use integration_tests::daemon::{Daemon, wait_for};
use integration_tests::kasm_server::{AcceptAuth, KasmTestServer};
use integration_tests::runtime_api::workspace_binaries;
use integration_tests::vsphere_server::{self, TEMPLATE, VsphereTestServer};
use shared::providers::vsphere::labels;
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
  - autoscale_config_name: homelab-agents
    server_pool_id: {POOL}
    zone_id: {ZONE}
    vm_provider_config: vcenter
    standby_cores: 4
    downscale_backoff: 2
vm_provider_configs:
  - provider: vsphere
    config_name: vcenter
    max_instances: 3
    vsphere_vcenter_address: vcenter.example.test
    vsphere_vcenter_port: 443
    vsphere_vcenter_username: {user}
    vsphere_vcenter_password: env:E2E_VC_PASSWORD
    vsphere_template_name: {template}
    vsphere_datacenter_name: DC1
    vsphere_vm_folder: Kasm/Autoscale
    vsphere_datastore_name: ssd-01
    vsphere_cluster_name: Cluster1
    vsphere_resource_pool: Kasm
    vsphere_os_username: {guest}
    vsphere_os_password: env:E2E_GUEST_PASSWORD
    vsphere_cpus: 4
    vsphere_memory_bytes: 8589934592
    vsphere_installed_OS_type: linux
    vsphere_clone_type: full
    endpoint_url: {api}
    startup_script: |
      #!/bin/bash
      bash kasm_release/install.sh -S agent -m {{upstream_auth_address}} -i {{server_id}} -r {{provider_name}} -M {{manager_token}}
"#,
        user = vsphere_server::USERNAME,
        template = TEMPLATE.0,
        guest = vsphere_server::GUEST_USER,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_scales_a_vsphere_pool_up_and_down() {
    let bin = workspace_binaries().join("kasm-autoscale");
    let kasm = KasmTestServer::start(KEY, SECRET, AcceptAuth::Body).await;
    let api = VsphereTestServer::start().await;
    let free = api.free_bytes();
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
            .env("E2E_VC_PASSWORD", vsphere_server::PASSWORD)
            .env("E2E_GUEST_PASSWORD", vsphere_server::GUEST_PASSWORD)
            .args(["run", "--config", cfg.to_str().unwrap(), "--state", state.to_str().unwrap()])
            .args(["--listen", &listen.to_string(), "--interval", "1"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start kasm-autoscale run"),
    );
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();

    // Scale up: one VM cloned from the template, sized, labelled, powered on, its script run.
    wait_for("a VM to be cloned, powered on and its script run", Duration::from_secs(60), || {
        api.vms().iter().any(|v| v.power_state == "POWERED_ON" && !v.processes.is_empty())
    })
    .await;
    let vms = api.vms();
    assert_eq!(vms.len(), 1, "one VM for 4 missing cores: {vms:?}\n{}", logs());
    let vm = vms[0].clone();
    assert_eq!((vm.cpus, vm.memory_mib), (4, 8192), "Kasm's vsphere_cpus and vsphere_memory_bytes");
    let owned = labels::labels(&vm.data_sets[0].2);
    assert_eq!(owned.get("kasm-autoscale-deployment").map(String::as_str), Some("daemon-e2e"), "{vm:?}");
    let script = vm.processes[0].2.clone();
    assert!(script.contains(&format!("-M {MANAGER_TOKEN}")) && script.contains("-r vsphere"), "{script}");
    assert!(vm.files.is_empty(), "the script file is removed from the guest");
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
        api.vm(&vm.id).is_none()
    })
    .await;
    assert!(kasm.is_gone(&server_id), "Kasm record left: {:?}", kasm.agent(&server_id));
    assert!(kasm.agent(STATIC).is_some_and(|a| a["enabled"] == true), "the operator's agent was touched");
    assert!(api.vms().is_empty(), "{:?}", api.vms());
    assert_eq!(api.free_bytes(), free, "the clone's disk is gone");
    assert!(api.vm(TEMPLATE.1).is_some(), "the template is never touched");

    let text = logs();
    assert!(
        !text.contains(SECRET)
            && !text.contains(MANAGER_TOKEN)
            && !text.contains(vsphere_server::PASSWORD)
            && !text.contains(vsphere_server::GUEST_PASSWORD)
    );

    // SIGTERM: a clean exit, and the vCenter session is ended (`DELETE /api/session` with it).
    let deletes = api.api().count("DELETE /session");
    assert!(api.live_sessions() >= 1, "the daemon holds a session");
    assert_eq!(daemon.terminate().await, Some(0), "{}", logs());
    assert_eq!(api.api().count("DELETE /session"), deletes + 1, "{}", logs());
    assert_eq!(api.live_sessions(), 0, "the session is ended at exit");
    let last = api.api().last("DELETE /session").expect("DELETE /api/session");
    assert!(last.headers.contains_key("vmware-api-session-id"), "{last:?}");
}
