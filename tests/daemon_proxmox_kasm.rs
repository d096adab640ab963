//! Issue 10's "done when", end to end through the real `kasm-autoscale run` binary: a Proxmox config
//! (against the in-process Proxmox VE API) and a Kasm stand-in that serves only the calls a real Kasm
//! manager has. The daemon scales up (a VM is cloned with the startup script; the agent registers
//! with the id the script carries and is enabled), then scales down (drained, its record deleted,
//! the VM destroyed), and never calls an endpoint Kasm lacks.

use integration_tests::daemon::{Daemon, wait_for};
use integration_tests::kasm_server::{AcceptAuth, AgentSpec, KasmTestServer};
use integration_tests::proxmox_server::{self, ProxmoxTestServer};
use integration_tests::runtime_api::workspace_binaries;
use std::process::{Command, Stdio};
use std::time::Duration;

const KEY: &str = "daemon-key";
const SECRET: &str = "daemon-kasm-secret-Qz19";
const MANAGER_TOKEN: &str = "manager-token-Mt77";
const ZONE: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const POOL: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const STATIC: &str = "0000000000000000000000000000a11c";

fn config(kasm: &str, pve: &str) -> String {
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
    vm_provider_config: pve
    standby_cores: 4
    downscale_backoff: 2
vm_provider_configs:
  - provider: proxmox
    name: pve
    max_instances: 3
    host: pve.invalid:8006
    endpoint_url: {pve}
    username: kasm@pve
    token_name: {token}
    token_value: env:E2E_PVE_TOKEN
    verify_ssl: false
    vmid_range_lower: 6000
    vmid_range_upper: 6009
    template_name: ubuntu-kasm
    cluster_node_name: pve1
    resource_pool_name: kasm
    vm_cores: 4
    vm_memory: 4
    installed_os_type: linux
    startup_script_path: /tmp
    startup_script: |
      #!/bin/bash
      bash kasm_release/install.sh -S agent -m {{upstream_auth_address}} -i {{server_id}} -r {{provider_name}} -M {{manager_token}}
"#,
        token = proxmox_server::TOKEN_NAME,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_scales_a_proxmox_pool_up_and_down_on_kasms_real_calls() {
    let bin = workspace_binaries().join("kasm-autoscale");
    let kasm = KasmTestServer::start(KEY, SECRET, AcceptAuth::Body).await;
    let pve = ProxmoxTestServer::start().await;
    // Load: a static agent (not ours) whose 4 cores are all taken; the pool wants 4 free.
    kasm.add_agent(AgentSpec {
        server_id: STATIC.into(),
        hostname: "static-agent".into(),
        zone_id: ZONE.into(),
        server_pool_id: Some(POOL.into()),
        enabled: true,
        cores: 4.0,
        memory_mb: 16_000.0,
        gpus: 0.0,
    });
    kasm.add_session("s1", STATIC, 2.0, 2_000.0);
    kasm.add_session("s2", STATIC, 2.0, 2_000.0);

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, config(&kasm.url, &pve.url)).unwrap();
    let state = dir.path().join("state.redb");
    let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let log = dir.path().join("daemon.log");
    let mut daemon = Daemon(
        Command::new(&bin)
            .env("E2E_KASM_SECRET", SECRET)
            .env("E2E_MANAGER_TOKEN", MANAGER_TOKEN)
            .env("E2E_PVE_TOKEN", proxmox_server::TOKEN_SECRET)
            .args(["run", "--config", cfg.to_str().unwrap(), "--state", state.to_str().unwrap()])
            .args(["--listen", &listen.to_string(), "--interval", "1"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start kasm-autoscale run"),
    );
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();

    // Scale up: one VM cloned in our VMID range, the startup script written into it.
    let ours =
        |pve: &ProxmoxTestServer| pve.vms().into_iter().filter(|v| (6000..=6009).contains(&v.vmid)).collect::<Vec<_>>();
    wait_for("a VM to be created", Duration::from_secs(60), || {
        ours(&pve).iter().any(|v| pve.guest_file(v.vmid, "/tmp/kasm-autoscale-startup.sh").is_some())
    })
    .await;
    let vms = ours(&pve);
    assert_eq!(vms.len(), 1, "one VM for 4 missing cores: {vms:?}\n{}", logs());
    let vmid = vms[0].vmid;
    let script = pve.guest_file(vmid, "/tmp/kasm-autoscale-startup.sh").unwrap();
    assert!(script.contains(&format!("-M {MANAGER_TOKEN}")) && script.contains("-r proxmox"), "{script}");
    let server_id = script
        .split_whitespace()
        .skip_while(|w| *w != "-i")
        .nth(1)
        .expect("the script carries -i {server_id}")
        .to_string();
    assert_eq!(server_id.len(), 32, "rendered as Kasm lists ids: {server_id}");

    // The VM boots: its agent registers itself under that id, disabled (no auto_agent).
    kasm.add_agent(AgentSpec {
        server_id: server_id.clone(),
        hostname: vms[0].name.clone(),
        zone_id: ZONE.into(),
        server_pool_id: Some(POOL.into()),
        enabled: false,
        cores: 4.0,
        memory_mb: 16_000.0,
        gpus: 0.0,
    });
    wait_for("the agent to be enabled", Duration::from_secs(30), || {
        kasm.check_in(&server_id);
        kasm.agent(&server_id).is_some_and(|a| a["enabled"] == true)
    })
    .await;

    // Load goes away: with our agent gone the static one alone keeps the standby, so after the 2 s
    // backoff ours is drained (disabled), its record deleted and the VM destroyed.
    kasm.remove_session("s1");
    kasm.remove_session("s2");
    wait_for("the VM to be destroyed", Duration::from_secs(60), || {
        kasm.check_in(&server_id);
        kasm.check_in(STATIC);
        pve.vm(vmid).is_none()
    })
    .await;
    assert!(kasm.is_gone(&server_id), "Kasm record left: {:?}", kasm.agent(&server_id));
    assert!(kasm.agent(STATIC).is_some_and(|a| a["enabled"] == true), "the operator's agent was touched");
    assert!(ours(&pve).is_empty(), "{:?}", ours(&pve));

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
    assert!(!text.contains(SECRET) && !text.contains(MANAGER_TOKEN) && !text.contains(proxmox_server::TOKEN_SECRET));

    // SIGTERM: a clean exit.
    assert_eq!(daemon.terminate().await, Some(0), "{}", logs());
}
