//! Issue 10's "done when", end to end through the real `kasm-autoscale run` binary: a Proxmox config
//! (against the in-process Proxmox VE API) and a Kasm stand-in that serves only the calls a real Kasm
//! manager has. The daemon scales up (a VM is cloned with the startup script; the agent registers
//! with the id the script carries and is enabled), then scales down (drained, its record deleted,
//! the VM destroyed), and never calls an endpoint Kasm lacks.
//!
//! Issue 22 point 5 on the same servers: the daemon's status page, loaded in headless Chromium.

use integration_tests::browser;
use integration_tests::daemon::{Daemon, wait_for};
use integration_tests::kasm_server::{AcceptAuth, KasmTestServer};
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
    kasm.add_busy_static_agent(STATIC, ZONE, POOL);

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
    kasm.register_until_enabled(&server_id, &vms[0].name, ZONE, POOL, 16_000.0, Duration::from_secs(30)).await;

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

const STATUS_TOKEN: &str = "status-token-St42";
const POOL2: &str = "b1b2c3d4e5f60718293a4b5c6d7e8f91";

/// The status page as an operator sees it: without the token it asks for one and shows nothing; with
/// it (`/#token=…`), per config the VMs by state with their age, the capacity against the standby, the
/// decisions with their reasons, the chart, and the provider error of a config whose token is wrong —
/// all rendered by the page's own script in a real browser (so its Content-Security-Policy lets it
/// run), with no secret anywhere in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_vms_decisions_capacity_and_errors_in_a_browser() {
    let bin = workspace_binaries().join("kasm-autoscale");
    let kasm = KasmTestServer::start(KEY, SECRET, AcceptAuth::Body).await;
    let pve = ProxmoxTestServer::start().await;
    kasm.add_busy_static_agent(STATIC, ZONE, POOL);

    // The homelab config of the other test, a token for /status, and a second config whose
    // Proxmox token is wrong (its creates fail: a provider error to show).
    let mut cfg_text = config(&kasm.url, &pve.url).replace(
        "    upstream_auth_address: kasm.example.test\n",
        "    upstream_auth_address: kasm.example.test\n  webhook:\n    metrics_token: env:E2E_STATUS_TOKEN\n",
    );
    cfg_text = cfg_text.replace(
        "vm_provider_configs:\n",
        &format!(
            "  - autoscale_config_name: broken-agents\n    server_pool_id: {POOL2}\n    zone_id: {ZONE}\n    vm_provider_config: pve-wrong-token\n    standby_cores: 4\nvm_provider_configs:\n"
        ),
    );
    let pve_block = cfg_text.split("vm_provider_configs:\n").nth(1).unwrap().to_string();
    let wrong = pve_block
        .replace("name: pve\n", "name: pve-wrong-token\n")
        .replace("env:E2E_PVE_TOKEN", "env:E2E_PVE_WRONG")
        .replace("vmid_range_lower: 6000", "vmid_range_lower: 6100")
        .replace("vmid_range_upper: 6009", "vmid_range_upper: 6109")
        .replace("max_instances: 3", "max_instances: 1");
    cfg_text.push_str(&wrong);

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, &cfg_text).unwrap();
    let state = dir.path().join("state.redb");
    let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let log = dir.path().join("daemon.log");
    let mut daemon = Daemon(
        Command::new(&bin)
            .env("E2E_KASM_SECRET", SECRET)
            .env("E2E_MANAGER_TOKEN", MANAGER_TOKEN)
            .env("E2E_PVE_TOKEN", proxmox_server::TOKEN_SECRET)
            .env("E2E_PVE_WRONG", "not-the-token")
            .env("E2E_STATUS_TOKEN", STATUS_TOKEN)
            .args(["run", "--config", cfg.to_str().unwrap(), "--state", state.to_str().unwrap()])
            .args(["--listen", &listen.to_string(), "--interval", "1"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start kasm-autoscale run"),
    );
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    let base = format!("http://{listen}");

    // /status is bound like /metrics: 401 without the token.
    let http = shared::http::build_client(&Default::default()).unwrap();
    let status = || async {
        let r = http.get(format!("{base}/status")).bearer_auth(STATUS_TOKEN).send().await.ok()?;
        r.json::<serde_json::Value>().await.ok()
    };
    let mut seen = serde_json::Value::Null;
    let t = std::time::Instant::now();
    loop {
        if let Some(v) = status().await {
            let booting = v["configs"][0]["vms_by_state"]["booting"] == 1;
            let failed = v["errors"].as_array().is_some_and(|e| e.iter().any(|e| e["class"] == "auth"));
            seen = v;
            if booting && failed {
                break;
            }
        }
        assert!(t.elapsed() < Duration::from_secs(60), "a booting VM and an auth error: {seen:#}\n{}", logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let unauthenticated = http.get(format!("{base}/status")).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let vm_name = seen["configs"][0]["vms"][0]["vm_name"].as_str().unwrap().to_string();
    assert!(pve.vms().iter().any(|v| v.name == vm_name), "the page's VM is the one Proxmox has: {vm_name}");

    // Without the token the page asks for it and shows no data.
    let Some(dom) = browser::dump_dom(&format!("{base}/"), Duration::from_secs(3)) else { return };
    assert!(dom.contains("token required"), "{dom}");
    assert!(dom.contains(r#"id="auth" class="shown""#), "{dom}");
    assert!(!dom.contains("homelab-agents") && !dom.contains(&vm_name), "no data without the token: {dom}");

    // With it, everything the issue names.
    let dom = browser::dump_dom(&format!("{base}/#token={STATUS_TOKEN}"), Duration::from_secs(3)).unwrap();
    let section = |name: &str| -> String {
        let start = dom.find(&format!(r#"data-config="{name}""#)).unwrap_or_else(|| panic!("no section {name}: {dom}"));
        let end = dom[start..].find("</section>").map_or(dom.len(), |e| start + e);
        dom[start..end].to_string()
    };
    let homelab = section("homelab-agents");
    assert!(dom.contains(">live<"), "the page says it is live: {dom}");
    assert!(homelab.contains("Docker agents on pve"), "{homelab}");
    assert!(homelab.contains(r#"<span class="pill">booting 1</span>"#), "VMs by state: {homelab}");
    assert!(homelab.contains(&vm_name), "the VM by name: {homelab}");
    // Its age: "<td>12s</td>" or "<td>1m 03s</td>" twice (age, in state).
    let ages = homelab.matches("s</td><td>").count();
    assert!(ages >= 1, "the VM's age: {homelab}");
    assert!(homelab.contains("free 4 / standby 4 cores"), "standby vs free (the booting VM counted): {homelab}");
    assert!(homelab.contains("+1 agent — free cores 0 &lt; standby 4"), "the decision and why: {homelab}");
    assert!(homelab.contains(r#"<path class="free" d="M"#), "the chart's free line: {homelab}");
    assert!(homelab.contains(r#"<path class="standby" d="M"#), "the chart's standby line: {homelab}");
    assert!(homelab.contains(r#"<path class="vms" d="M"#), "the chart's VM line: {homelab}");
    let broken = section("broken-agents");
    assert!(broken.contains("Docker agents on pve-wrong-token"), "{broken}");
    let errors = &dom[dom.find(r#"id="errors""#).expect("the errors section")..];
    assert!(errors.contains("<td>broken-agents</td>") && errors.contains("<td>auth</td>"), "{errors}");
    assert!(errors.contains("authentication failure"), "Proxmox's own message: {errors}");
    for secret in [SECRET, MANAGER_TOKEN, proxmox_server::TOKEN_SECRET, "not-the-token"] {
        assert!(!dom.contains(secret), "a secret on the page: {secret}");
        assert!(!seen.to_string().contains(secret), "a secret in /status: {secret}");
    }
    assert!(!dom.contains(STATUS_TOKEN), "the token is not put into the page");

    assert_eq!(daemon.terminate().await, Some(0), "{}", logs());
}
