//! The DigitalOcean provider through the whole daemon loop (PROVIDER-CHECKLIST point 9), end to end
//! through the real `kasm-autoscale run` binary: a DigitalOcean config (against the in-process
//! DigitalOcean API) and the Kasm stand-in. The daemon scales up (a droplet is created with the
//! startup script as `user_data`; the agent registers with the id the script carries and is enabled,
//! and its A record is registered in DigitalOcean DNS), then scales down (drained, its record
//! deleted, the droplet, its A record and its claim tag gone).

use integration_tests::daemon::{Daemon, wait_for};
use integration_tests::digitalocean_server::{self, DigitalOceanTestServer};
use integration_tests::kasm_server::{AcceptAuth, KasmTestServer};
use integration_tests::runtime_api::workspace_binaries;
use shared::providers::digitalocean::tags;
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
    vm_provider_config: do-nyc3
    standby_cores: 4
    downscale_backoff: 2
    register_dns: true
    base_domain_name: {domain}
    dns_provider_config: do-dns
dns_provider_configs:
  - provider: digital_ocean
    name: do-dns
    digital_ocean_token: env:E2E_DO_TOKEN
    domain: {domain}
    endpoint_url: {api}
vm_provider_configs:
  - provider: digital_ocean
    name: do-nyc3
    max_droplets: 3
    digital_ocean_token: env:E2E_DO_TOKEN
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
"#,
        domain = digitalocean_server::DOMAIN
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_scales_a_digitalocean_pool_up_and_down() {
    let bin = workspace_binaries().join("kasm-autoscale");
    let kasm = KasmTestServer::start(KEY, SECRET, AcceptAuth::Body).await;
    let api = DigitalOceanTestServer::start().await;
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
            .env("E2E_DO_TOKEN", digitalocean_server::TOKEN)
            .args(["run", "--config", cfg.to_str().unwrap(), "--state", state.to_str().unwrap()])
            .args(["--listen", &listen.to_string(), "--interval", "1"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start kasm-autoscale run"),
    );
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();

    // Scale up: one droplet created with the startup script as its user_data.
    wait_for("a droplet to be created", Duration::from_secs(60), || {
        api.droplets().iter().any(|d| d.status == "active" && d.user_data.is_some())
    })
    .await;
    let droplets = api.droplets();
    assert_eq!(droplets.len(), 1, "one droplet for 4 missing cores: {droplets:?}\n{}", logs());
    let droplet = droplets[0].clone();
    assert!(droplet.tags.contains(&tags::deployment_tag("daemon-e2e")) && droplet.tags.contains(&"kasm".to_string()));
    assert_eq!(api.firewall_droplets("kasm-fw"), vec![droplet.id]);
    let script = droplet.user_data.clone().unwrap();
    assert!(script.contains(&format!("-M {MANAGER_TOKEN}")) && script.contains("-r digital_ocean"), "{script}");
    let server_id = script
        .split_whitespace()
        .skip_while(|w| *w != "-i")
        .nth(1)
        .expect("the script carries -i {server_id}")
        .to_string();
    assert_eq!(server_id.len(), 32, "rendered as Kasm lists ids: {server_id}");
    let vms = droplets;
    // Its A record (DigitalOcean DNS, through the DNS config's own endpoint_url) and ownership marker.
    let records = api.records();
    assert!(records.iter().any(|r| r.kind == "A" && r.name == droplet.name), "no A record: {records:?}");
    assert!(records.iter().any(|r| r.kind == "TXT" && r.name == droplet.name), "no marker: {records:?}");

    // The VM boots: its agent registers itself under that id, disabled (no auto_agent).
    kasm.register_until_enabled(&server_id, &vms[0].name, ZONE, POOL, 16_000.0, Duration::from_secs(30)).await;

    // Load goes away: with our agent gone the static one alone keeps the standby, so after the 2 s
    // backoff ours is drained (disabled), its record deleted and the VM destroyed.
    kasm.remove_session("s1");
    kasm.remove_session("s2");
    // The droplet goes first, then its claim tag (a tag is deleted by its own call): wait for both.
    wait_for("the droplet and its claim tag to be destroyed", Duration::from_secs(60), || {
        kasm.check_in(&server_id);
        kasm.check_in(STATIC);
        api.droplet(droplet.id).is_none() && api.tags().iter().all(|t| !t.starts_with(tags::CLAIM))
    })
    .await;
    assert!(kasm.is_gone(&server_id), "Kasm record left: {:?}", kasm.agent(&server_id));
    assert!(kasm.agent(STATIC).is_some_and(|a| a["enabled"] == true), "the operator's agent was touched");
    assert!(api.droplets().is_empty(), "{:?}", api.droplets());
    assert!(api.tags().iter().all(|t| !t.starts_with(tags::CLAIM)), "claim tag left: {:?}", api.tags());
    assert!(api.firewall_droplets("kasm-fw").is_empty());
    assert!(api.records().iter().all(|r| r.name != droplet.name), "DNS records left: {:?}", api.records());

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
    assert!(!text.contains(SECRET) && !text.contains(MANAGER_TOKEN) && !text.contains(digitalocean_server::TOKEN));

    // SIGTERM: a clean exit.
    assert_eq!(daemon.terminate().await, Some(0), "{}", logs());
}
