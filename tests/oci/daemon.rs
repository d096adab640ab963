//! The OCI provider through the whole daemon loop (PROVIDER-CHECKLIST point 9), end to end through the
//! real `kasm-autoscale run` binary: an OCI config in Kasm's own column names (against the OCI test
//! server, every request signed and checked) and the Kasm stand-in. The daemon scales up (an instance is
//! launched with the startup script as base64 `user_data` and our freeform tags; the agent registers with
//! the id the script carries and is enabled), then scales down (drained, its record deleted, the instance
//! terminated with its boot volume). The pool registers DNS in OCI DNS (the OCI DNS test server, through
//! the DNS config's own `endpoint_url`): the instance's A record (its public IP) and ownership marker
//! exist after scale-up and are gone after scale-down.

use base64::Engine as _;
use integration_tests::daemon::{Daemon, wait_for};
use integration_tests::kasm_server::{AcceptAuth, KasmTestServer};
use integration_tests::oci_server::{self, OciDnsTestServer, OciTestServer};
use integration_tests::runtime_api::workspace_binaries;
use std::process::{Command, Stdio};
use std::time::Duration;

const KEY: &str = "daemon-key";
const SECRET: &str = "daemon-kasm-secret-Qz19";
const MANAGER_TOKEN: &str = "manager-token-Mt77";
const ZONE: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const POOL: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const STATIC: &str = "0000000000000000000000000000a11c";

fn config(kasm: &str, api: &str, dns: &str) -> String {
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
  - autoscale_config_name: oci-agents
    server_pool_id: {POOL}
    zone_id: {ZONE}
    vm_provider_config: oci-phx
    standby_cores: 4
    downscale_backoff: 2
    register_dns: true
    base_domain_name: {zone}
    dns_provider_config: oci-dns
dns_provider_configs:
  - provider: oci
    config_name: oci-dns
    oci_user_ocid: {user}
    oci_fingerprint: "{fingerprint}"
    oci_private_key: env:E2E_OCI_KEY
    oci_region: us-phoenix-1
    oci_tenancy_ocid: {tenancy}
    oci_compartment_ocid: {compartment}
    zone_name_or_id: {zone}
    endpoint_url: {dns}
vm_provider_configs:
  - provider: oci
    config_name: oci-phx
    oci_user_ocid: {user}
    oci_fingerprint: "{fingerprint}"
    oci_private_key: env:E2E_OCI_KEY
    oci_region: us-phoenix-1
    oci_tenancy_ocid: {tenancy}
    oci_compartment_ocid: {compartment}
    oci_nsg_ocids: '["{nsg}"]'
    max_instances: 3
    oci_availability_domains: '["{ad1}", "{ad2}"]'
    oci_image_ocid: {image}
    oci_shape: VM.Standard.E4.Flex
    oci_flex_cpus: 2
    oci_baseline_ocpu_utilization: BASELINE_1_1
    oci_flex_memory_bytes: 8589934592
    oci_boot_volume_bytes: 64424509440
    oci_storage_vpus_per_gb: 10
    oci_custom_tags: '{{"team": "vdi"}}'
    oci_subnet_ocid: {subnet}
    endpoint_url: {api}
    startup_script: |
      #!/bin/bash
      bash kasm_release/install.sh -S agent -m {{upstream_auth_address}} -i {{server_id}} -r {{provider_name}} -M {{manager_token}}
"#,
        user = oci_server::USER,
        fingerprint = oci_server::FINGERPRINT,
        tenancy = oci_server::TENANCY,
        compartment = oci_server::COMPARTMENT,
        nsg = oci_server::NSG,
        ad1 = oci_server::ADS[0],
        ad2 = oci_server::ADS[1],
        image = oci_server::IMAGE,
        subnet = oci_server::SUBNET,
        zone = oci_server::DNS_ZONE,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_scales_an_oci_pool_up_and_down() {
    let bin = workspace_binaries().join("kasm-autoscale");
    let kasm = KasmTestServer::start(KEY, SECRET, AcceptAuth::Body).await;
    let api = OciTestServer::start().await;
    let dns = OciDnsTestServer::start().await;
    // Load: a static agent (not ours) whose 4 cores are all taken; the pool wants 4 free.
    kasm.add_busy_static_agent(STATIC, ZONE, POOL);

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, config(&kasm.url, &api.url, &dns.url)).unwrap();
    let state = dir.path().join("state.redb");
    let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let log = dir.path().join("daemon.log");
    let mut daemon = Daemon(
        Command::new(&bin)
            .env("E2E_KASM_SECRET", SECRET)
            .env("E2E_MANAGER_TOKEN", MANAGER_TOKEN)
            .env("E2E_OCI_KEY", oci_server::TEST_KEY)
            .args(["run", "--config", cfg.to_str().unwrap(), "--state", state.to_str().unwrap()])
            .args(["--listen", &listen.to_string(), "--interval", "1"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start kasm-autoscale run"),
    );
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();

    // Scale up: one instance launched with the startup script as its base64 user data.
    let live = |api: &OciTestServer| {
        api.instances()
            .into_iter()
            .filter(|i| !matches!(i.state.as_str(), "TERMINATING" | "TERMINATED"))
            .collect::<Vec<_>>()
    };
    wait_for("an instance to be launched and running", Duration::from_secs(60), || {
        live(&api).iter().any(|i| i.state == "RUNNING")
    })
    .await;
    let vms = live(&api);
    assert_eq!(vms.len(), 1, "one instance for 4 missing cores: {vms:?}\n{}", logs());
    let vm = vms[0].clone();
    assert_eq!(vm.ad, oci_server::ADS[0]);
    assert_eq!(
        vm.launch["shapeConfig"],
        serde_json::json!({"ocpus": 2.0, "memoryInGBs": 8.0, "baselineOcpuUtilization": "BASELINE_1_1"})
    );
    assert_eq!(vm.launch["sourceDetails"]["bootVolumeSizeInGBs"], 60, "Kasm's oci_boot_volume_bytes");
    assert_eq!(vm.tags.get("kasm-autoscale-deployment").map(String::as_str), Some("daemon-e2e"), "{vm:?}");
    assert_eq!(vm.tags.get("team").map(String::as_str), Some("vdi"));
    let b64 = vm.launch["metadata"]["user_data"].as_str().expect("user_data").to_string();
    let script = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap();
    assert!(script.contains(&format!("-M {MANAGER_TOKEN}")) && script.contains("-r oci"), "{script}");
    let server_id = script
        .split_whitespace()
        .skip_while(|w| *w != "-i")
        .nth(1)
        .expect("the script carries -i {server_id}")
        .to_string();
    assert_eq!(server_id.len(), 32, "rendered as Kasm lists ids: {server_id}");
    // Its boot volume carries the instance's tags (written once the provider saw the instance run).
    wait_for("the boot volume to carry the instance's tags", Duration::from_secs(30), || {
        api.boot_volume_tags(&vm.boot_volume).as_ref() == Some(&vm.tags)
    })
    .await;
    // Its A record in OCI DNS (the instance's public IP) and the ownership marker.
    let fqdn = format!("{}.{}", vm.name.to_ascii_lowercase(), oci_server::DNS_ZONE);
    let public_ip = vm.public_ip.clone().expect("a public IP");
    wait_for("the A record to be registered", Duration::from_secs(30), || {
        dns.records().iter().any(|r| r.domain == fqdn && r.rtype == "A" && r.rdata == public_ip)
    })
    .await;
    let marker = dns.records().into_iter().find(|r| r.domain == fqdn && r.rtype == "TXT").expect("a marker");
    assert!(marker.rdata.starts_with("\"kasm-autoscale deployment=daemon-e2e claim="), "{marker:?}");

    // The VM boots: its agent registers itself under that id, disabled (no auto_agent).
    kasm.register_until_enabled(&server_id, &vm.name, ZONE, POOL, 8_000.0, Duration::from_secs(30)).await;

    // Load goes away: after the 2 s backoff ours is drained, its record deleted and the VM destroyed.
    kasm.remove_session("s1");
    kasm.remove_session("s2");
    wait_for("the instance to be terminated", Duration::from_secs(60), || {
        kasm.check_in(&server_id);
        kasm.check_in(STATIC);
        live(&api).is_empty()
    })
    .await;
    assert!(kasm.is_gone(&server_id), "Kasm record left: {:?}", kasm.agent(&server_id));
    assert!(kasm.agent(STATIC).is_some_and(|a| a["enabled"] == true), "the operator's agent was touched");
    assert!(api.boot_volumes().is_empty(), "boot volumes left: {:?}", api.boot_volumes());
    wait_for("the DNS records to be deleted", Duration::from_secs(30), || dns.records().is_empty()).await;

    let text = logs();
    assert!(
        !text.contains(SECRET)
            && !text.contains(MANAGER_TOKEN)
            && !text.contains("MIICXgIBAAKBgQDCFENGw33yGihy92pDjZQhl0C36rPJj")
    );

    // SIGTERM: a clean exit.
    assert_eq!(daemon.terminate().await, Some(0), "{}", logs());
}
