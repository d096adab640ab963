//! The Proxmox provider against the Proxmox test server over HTTP: the shared conformance suite,
//! the create flow step by step, VMID allocation, failures (task, 401, 500, offline node, slow
//! guest agent), delete, the API schema of every request, and preflight.

use integration_tests::proxmox_server::{ProxmoxHarness, ProxmoxTestServer, Request, TOKEN_NAME, TOKEN_SECRET, USER};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use shared::config::SecretRef;
use shared::config::providers::ProxmoxConfig;
use shared::http::RetryConfig;
use shared::model::{ClaimId, OsFamily, OwnerLabels};
use shared::providers::proxmox::{ProxmoxProvider, tags};
use shared::providers::{BuildEnv, Timings};
use shared::providers::{ErrorClass, ProviderError, VmProvider, VmSpec, VmState};
use shared::secrets::StaticSecrets;

const SCRIPT: &str = "#!/bin/bash\necho installing the kasm agent with token mgr-token-0123456789\n";

fn config(lo: u32, hi: u32) -> ProxmoxConfig {
    ProxmoxConfig {
        name: "lab".into(),
        max_instances: 10,
        host: "pve.invalid:8006".into(),
        username: USER.into(),
        token_name: TOKEN_NAME.into(),
        token_value: SecretRef::Env("PVE_TOKEN".into()),
        verify_ssl: true,
        vmid_range_lower: lo,
        vmid_range_upper: hi,
        full_clone: false,
        template_name: "ubuntu-kasm".into(),
        cluster_node_name: "pve1".into(),
        resource_pool_name: Some("kasm".into()),
        storage_pool_name: None,
        target_node_name: None,
        vm_cores: 4,
        vm_memory: 4,
        installed_os_type: OsFamily::Linux,
        startup_script_path: "/tmp".into(),
        startup_script: SCRIPT.into(),
        endpoint_url: None,
        ca_bundle: None,
    }
}

fn fast_timings() -> Timings {
    Timings {
        poll: Duration::from_millis(5),
        operation_timeout: Duration::from_secs(5),
        guest_poll: Duration::from_millis(5),
        guest_wait: Duration::from_millis(300),
    }
}

fn fast_retry() -> RetryConfig {
    RetryConfig {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(50),
        max_retries: 3,
        budget: Duration::from_secs(5),
    }
}

fn provider_with(server: &ProxmoxTestServer, mut cfg: ProxmoxConfig, secret: &str) -> ProxmoxProvider {
    cfg.endpoint_url = Some(server.url.clone());
    let secrets = StaticSecrets([("env:PVE_TOKEN".to_string(), secret.to_string())].into());
    let env = BuildEnv { retry: fast_retry(), timings: fast_timings(), ..BuildEnv::new(Arc::new(secrets), "t") };
    ProxmoxProvider::from_config(&cfg, &env).expect("build")
}

fn provider(server: &ProxmoxTestServer, cfg: ProxmoxConfig) -> ProxmoxProvider {
    provider_with(server, cfg, TOKEN_SECRET)
}

fn spec(deployment: &str, config: &str) -> VmSpec {
    let claim = ClaimId::generate(chrono::Utc::now());
    VmSpec {
        name: format!("kasm-{claim}"),
        labels: OwnerLabels {
            deployment: deployment.into(),
            autoscale_config: Some(config.into()),
            claim: Some(claim.clone()),
        },
        claim,
        os: OsFamily::Linux,
        startup_script: Some(SecretString::from(SCRIPT.to_string())),
    }
}

fn calls(reqs: &[Request]) -> Vec<String> {
    reqs.iter().map(|r| format!("{} {}", r.method, r.route)).collect()
}

/// The shared conformance suite with faults: the client gives up on an answer after 1 s (the
/// harness stalls 2.5 s for a timeout) and waits out a `Retry-After` of up to 2 s (the suite's
/// short wait is 1 s, its long one an hour).
#[tokio::test]
async fn passes_the_conformance_suite() {
    let server = ProxmoxTestServer::start().await;
    let mut cfg = config(5000, 5099);
    cfg.endpoint_url = Some(server.url.clone());
    let secrets = StaticSecrets([("env:PVE_TOKEN".to_string(), TOKEN_SECRET.to_string())].into());
    let env = BuildEnv {
        retry: RetryConfig {
            base: Duration::from_millis(5),
            cap: Duration::from_secs(2),
            max_retries: 2,
            budget: Duration::from_secs(10),
        },
        request_timeout: Duration::from_secs(1),
        timings: fast_timings(),
        ..BuildEnv::new(Arc::new(secrets), "t")
    };
    let p = ProxmoxProvider::from_config(&cfg, &env).expect("build");
    let harness = ProxmoxHarness::new(server.clone(), 5099, Duration::from_millis(2500));
    shared::providers::conformance::run_all(&p, &harness, "conformance-proxmox").await;
    // The suite cleaned up after itself; the VMs it never made are untouched.
    let left: Vec<u32> = server.vms().iter().map(|v| v.vmid).collect();
    assert_eq!(left, vec![100, 101, 5001, 9000]);
}

#[tokio::test]
async fn create_clones_configures_starts_and_runs_the_script_once() {
    let server = ProxmoxTestServer::start().await;
    let p = provider(&server, config(5000, 5099));
    let s = spec("prod", "Desktop Pool");
    let vm = p.create_vm(&s).await.expect("create");

    // 5000 is the lowest free VMID of the range (5001 belongs to someone else).
    assert_eq!(vm.id, "5000");
    assert_eq!(vm.state, VmState::Running);
    assert_eq!(vm.labels, s.labels.to_map());
    assert_eq!(vm.private_ip.as_deref(), Some("10.20.19.136"));

    let reqs = server.requests();
    assert_eq!(
        calls(&reqs),
        vec![
            "GET /cluster/resources",
            "GET /cluster/resources",
            "POST /nodes/{node}/qemu/{vmid}/clone",
            "GET /nodes/{node}/tasks/{upid}/status",
            "GET /nodes/{node}/tasks/{upid}/status",
            "GET /cluster/resources",
            "PUT /nodes/{node}/qemu/{vmid}/config",
            "POST /nodes/{node}/qemu/{vmid}/status/start",
            "GET /nodes/{node}/tasks/{upid}/status",
            "GET /nodes/{node}/tasks/{upid}/status",
            "POST /nodes/{node}/qemu/{vmid}/agent/ping",
            "POST /nodes/{node}/qemu/{vmid}/agent/file-write",
            "POST /nodes/{node}/qemu/{vmid}/agent/exec",
            "PUT /nodes/{node}/qemu/{vmid}/config",
            "GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces",
        ]
    );
    let clone = &reqs[2];
    assert_eq!(clone.path, "/nodes/pve1/qemu/9000/clone");
    assert_eq!(clone.param("newid"), Some("5000"));
    assert_eq!(clone.param("name"), Some(s.name.as_str()));
    assert_eq!(clone.param("full"), Some("0"));
    assert_eq!(clone.param("pool"), Some("kasm"));
    assert_eq!(clone.param("storage"), None, "linked clones take no storage");
    assert_eq!(clone.param("target"), None, "no target node configured");
    assert!(reqs[3].path.contains("UPID:pve1:"), "task polled on the node of its UPID: {}", reqs[3].path);
    let config = &reqs[6];
    assert_eq!(config.path, "/nodes/pve1/qemu/5000/config");
    assert_eq!(config.param("cores"), Some("4"));
    assert_eq!(config.param("memory"), Some("4096"), "GiB to MiB");

    let held = server.vm(5000).expect("VM exists");
    let held_tags: BTreeSet<&str> = held.tags.split(';').collect();
    for t in tags::for_labels(&s.labels) {
        assert!(held_tags.contains(t.as_str()), "tag {t} missing from {}", held.tags);
    }
    assert!(held_tags.contains("kasm-template"), "the template's own tags are kept: {}", held.tags);
    assert!(held_tags.contains(tags::SCRIPT_RAN), "{}", held.tags);
    assert!(held_tags.contains("ka-c-+44esktop+20+50ool"), "{}", held.tags);
    assert!(held.description.contains("kasm-autoscale-config=Desktop Pool"), "{}", held.description);
    assert_eq!((held.cores, held.memory_mib, held.pool.as_deref()), (4, 4096, Some("kasm")));
    assert_eq!(held.status, "running");

    assert_eq!(server.guest_file(5000, "/tmp/kasm-autoscale-startup.sh").as_deref(), Some(SCRIPT));
    let execs = server.execs();
    assert_eq!(execs.len(), 1);
    assert_eq!(execs[0].1[0], "/bin/bash");
    assert!(execs[0].1[2].contains("mkdir '/tmp/kasm-autoscale-startup.ran'"), "{:?}", execs[0].1);
    assert_eq!(server.script_runs(5000), 1);

    // Again for the same claim: the same VM, nothing cloned, the script not run again.
    server.clear_requests();
    let again = p.create_vm(&s).await.expect("second create");
    assert_eq!(again.id, vm.id);
    assert_eq!(calls(&server.requests()), vec!["GET /cluster/resources"]);
    assert_eq!(server.execs().len(), 1);
}

#[tokio::test]
async fn full_clones_send_storage_and_target() {
    let server = ProxmoxTestServer::start().await;
    let mut cfg = config(5000, 5099);
    cfg.full_clone = true;
    cfg.storage_pool_name = Some("fast-ssd".into());
    cfg.target_node_name = Some("pve2".into());
    let p = provider(&server, cfg);
    let vm = p.create_vm(&spec("prod", "a")).await.expect("create");
    let clone = server.requests().into_iter().find(|r| r.route.ends_with("/clone")).unwrap();
    assert_eq!(clone.param("full"), Some("1"));
    assert_eq!(clone.param("storage"), Some("fast-ssd"));
    assert_eq!(clone.param("target"), Some("pve2"));
    assert_eq!(server.vm(vm.id.parse().unwrap()).unwrap().node, "pve2");
    // The VM is then configured and started on the target node.
    let start = server.requests().into_iter().find(|r| r.route.ends_with("/status/start")).unwrap();
    assert_eq!(start.path, format!("/nodes/pve2/qemu/{}/status/start", vm.id));
}

#[tokio::test]
async fn linked_clones_never_send_storage_even_if_configured() {
    // Validation rejects this config; the provider still must not send it.
    let server = ProxmoxTestServer::start().await;
    let mut cfg = config(5000, 5099);
    cfg.storage_pool_name = Some("fast-ssd".into());
    let p = provider(&server, cfg);
    p.create_vm(&spec("prod", "a")).await.expect("create");
    let clone = server.requests().into_iter().find(|r| r.route.ends_with("/clone")).unwrap();
    assert_eq!(clone.param("storage"), None);
}

#[tokio::test]
async fn concurrent_creates_get_distinct_vmids_inside_the_range() {
    let server = ProxmoxTestServer::start().await;
    let p = Arc::new(provider(&server, config(5000, 5010)));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..6 {
        let p = p.clone();
        set.spawn(async move { p.create_vm(&spec("prod", &format!("c{i}"))).await });
    }
    let mut ids = BTreeSet::new();
    while let Some(r) = set.join_next().await {
        let vm = r.expect("task").expect("create");
        let id: u32 = vm.id.parse().unwrap();
        assert!((5000..=5010).contains(&id) && id != 5001, "{id}");
        assert!(ids.insert(id), "VMID {id} handed out twice");
    }
    assert_eq!(ids.len(), 6);
}

#[tokio::test]
async fn a_vmid_taken_by_another_client_is_skipped() {
    let server = ProxmoxTestServer::start().await;
    server.take_on_clone(5000);
    let p = provider(&server, config(5000, 5099));
    let vm = p.create_vm(&spec("prod", "a")).await.expect("create");
    assert_eq!(vm.id, "5002", "5000 was taken at clone time, 5001 before");
    let clones: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.route.ends_with("/clone"))
        .filter_map(|r| r.param("newid").map(str::to_string))
        .collect();
    assert_eq!(clones, vec!["5000", "5002"]);
}

#[tokio::test]
async fn an_exhausted_range_is_out_of_capacity() {
    let server = ProxmoxTestServer::start().await;
    let p = provider(&server, config(5000, 5001));
    p.create_vm(&spec("prod", "a")).await.expect("the one free VMID");
    let err = p.create_vm(&spec("prod", "a")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::OutOfCapacity, "{err}");
    assert!(err.to_string().contains("no free VMID in 5000..=5001"), "{err}");
    assert_eq!(server.requests().iter().filter(|r| r.route.ends_with("/clone")).count(), 1, "never cloned outside");
}

#[tokio::test]
async fn a_failed_task_is_an_error_with_its_message() {
    let server = ProxmoxTestServer::start().await;
    server.fail_next_task(
        "qmclone",
        "clone failed: can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout",
    );
    // 5000 is the range's only free VMID.
    let p = provider(&server, config(5000, 5001));
    let s = spec("prod", "a");
    let err = p.create_vm(&s).await.unwrap_err();
    assert!(err.to_string().contains("can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout"), "{err}");
    assert!(err.is_retryable(), "{err:?}");
    // Nothing half-made is left behind, and a retry of the claim succeeds with the freed VMID.
    assert!(server.vm(5000).is_none());
    assert_eq!(p.create_vm(&s).await.expect("retry").id, "5000");
}

#[tokio::test]
async fn a_refused_token_is_unauthenticated_and_never_shown() {
    let server = ProxmoxTestServer::start().await;
    let wrong = "11111111-2222-3333-4444-555555555555";
    let p = provider_with(&server, config(5000, 5099), wrong);
    for err in [
        p.create_vm(&spec("prod", "a")).await.unwrap_err(),
        p.list_vms(&OwnerLabels::deployment("prod")).await.unwrap_err(),
    ] {
        assert_eq!(err.class(), ErrorClass::Auth, "{err}");
        let text = format!("{err} {err:?}");
        assert!(!text.contains(wrong) && !text.contains(TOKEN_SECRET), "{text}");
    }
    // One attempt each: a 401 is not retried.
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_500_then_ok_is_retried_on_reads() {
    let server = ProxmoxTestServer::start().await;
    let p = provider(&server, config(5000, 5099));
    server.inject("GET", "/cluster/resources", 500, "temporary failure", 2);
    let listed = p.list_vms(&OwnerLabels::deployment("prod")).await.expect("list after retries");
    assert!(listed.is_empty());
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn an_offline_node_does_not_break_listing_or_creating() {
    let server = ProxmoxTestServer::start().await;
    let mut on_pve2 = config(5000, 5099);
    on_pve2.target_node_name = Some("pve2".into());
    let s2 = spec("prod", "a");
    let vm2 = provider(&server, on_pve2).create_vm(&s2).await.expect("create on pve2");
    server.set_node_online("pve2", false);

    let p = provider(&server, config(5000, 5099));
    let s1 = spec("prod", "a");
    let vm1 = p.create_vm(&s1).await.expect("create on pve1 while pve2 is offline");
    assert_ne!(vm1.id, vm2.id, "the offline node's VMIDs stay taken");
    assert_eq!(vm1.id, "5002");

    let listed = p.list_vms(&OwnerLabels::deployment("prod")).await.expect("list with a node offline");
    let states: Vec<(String, VmState)> = listed.iter().map(|v| (v.id.clone(), v.state)).collect();
    assert_eq!(states, vec![(vm2.id.clone(), VmState::Unknown), (vm1.id.clone(), VmState::Running)]);
    assert_eq!(p.get_vm(&vm2.id).await.expect("get on an offline node").state, VmState::Unknown);
    // Deleting it must wait for the node: a retryable error, not a false success.
    let err = p.delete_vm(&vm2.id).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(server.vm(vm2.id.parse().unwrap()).is_some());
}

#[tokio::test]
async fn a_slow_guest_agent_keeps_the_vm_and_resumes_without_running_the_script_twice() {
    let server = ProxmoxTestServer::start().await;
    server.set_agent_boot_pings(1_000_000);
    let p = provider(&server, config(5000, 5099));
    let s = spec("prod", "win");

    let err = p.create_vm(&s).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");
    assert!(err.to_string().contains("guest agent did not answer"), "{err}");
    let vm = server.vm(5000).expect("the VM is kept");
    assert_eq!(vm.status, "running");
    assert!(vm.tags.contains("ka-k-"), "tagged before waiting for the agent: {}", vm.tags);
    assert!(!vm.tags.contains(tags::SCRIPT_RAN));
    assert!(!server.requests().iter().any(|r| r.method == "DELETE" || r.route.ends_with("/status/stop")));

    // The agent comes up; tagging after the exec fails (the exec itself went through).
    server.set_agent_pings_left(5000, 0);
    server.inject("PUT", "/nodes/{node}/qemu/{vmid}/config", 500, "got timeout", 4);
    let err = p.create_vm(&s).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(server.script_runs(5000), 1);

    // The next attempt execs again; the guest-side guard keeps the script from running twice.
    let vm = p.create_vm(&s).await.expect("resumed");
    assert_eq!(vm.id, "5000");
    assert_eq!(server.execs().len(), 2);
    assert_eq!(server.script_runs(5000), 1);
    assert!(server.vm(5000).unwrap().tags.contains(tags::SCRIPT_RAN));
    assert_eq!(server.requests().iter().filter(|r| r.route.ends_with("/clone")).count(), 1);
}

#[tokio::test]
async fn delete_stops_then_destroys_with_purge_and_refuses_foreign_vms() {
    let server = ProxmoxTestServer::start().await;
    let p = provider(&server, config(5000, 5099));
    let vm = p.create_vm(&spec("prod", "a")).await.expect("create");
    server.clear_requests();
    p.delete_vm(&vm.id).await.expect("delete");
    let reqs = server.requests();
    assert_eq!(
        calls(&reqs),
        vec![
            "GET /cluster/resources",
            "POST /nodes/{node}/qemu/{vmid}/status/stop",
            "GET /nodes/{node}/tasks/{upid}/status",
            "GET /nodes/{node}/tasks/{upid}/status",
            "DELETE /nodes/{node}/qemu/{vmid}",
            "GET /nodes/{node}/tasks/{upid}/status",
            "GET /nodes/{node}/tasks/{upid}/status",
        ]
    );
    assert_eq!(reqs[4].path, "/nodes/pve1/qemu/5000");
    assert_eq!(reqs[4].param("purge"), Some("1"));
    assert_eq!(reqs[4].param("destroy-unreferenced-disks"), Some("1"));
    assert!(server.vm(5000).is_none());
    assert!(matches!(p.get_vm(&vm.id).await, Err(ProviderError::NotFound { .. })));

    // VMs we did not make: inside the range without our tags, outside the range, the template.
    for id in ["5001", "100", "9000"] {
        let err = p.delete_vm(id).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Invalid, "{id}: {err}");
    }
    assert!(server.vm(5001).is_some() && server.vm(100).is_some() && server.vm(9000).is_some());
}

/// Every request the provider sent exists in the Proxmox VE API schema, with parameters it
/// declares, of the declared types, enums and lengths.
#[tokio::test]
async fn every_request_matches_the_api_schema() {
    let schema: Value =
        serde_json::from_str(include_str!("../shared/src/providers/proxmox/fixtures/pve-api-subset.json")).unwrap();
    let server = ProxmoxTestServer::start().await;
    let mut cfg = config(5000, 5099);
    cfg.full_clone = true;
    cfg.storage_pool_name = Some("fast-ssd".into());
    cfg.target_node_name = Some("pve2".into());
    let p = provider(&server, cfg);
    let vm = p.create_vm(&spec("prod", "a")).await.expect("create");
    p.list_vms(&OwnerLabels::deployment("prod")).await.expect("list");
    p.get_vm(&vm.id).await.expect("get");
    p.delete_vm(&vm.id).await.expect("delete");
    p.preflight().await;

    let reqs = server.requests();
    let routes: BTreeSet<String> = reqs.iter().map(|r| format!("{} {}", r.method, r.route)).collect();
    assert!(routes.len() >= 12, "{routes:?}");
    for r in &reqs {
        let ep = schema["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["method"] == r.method.as_str() && e["path"] == r.route.as_str())
            .unwrap_or_else(|| panic!("{} {} is not in the schema subset", r.method, r.route));
        for (name, values) in &r.params {
            let p =
                ep["params"].get(name).unwrap_or_else(|| panic!("{} {}: unknown parameter {name}", r.method, r.route));
            for v in values {
                match p["type"].as_str().unwrap() {
                    "boolean" => assert!(v == "0" || v == "1", "{name}={v}"),
                    "integer" => {
                        let n: i64 = v.parse().unwrap_or_else(|_| panic!("{name}={v} is not an integer"));
                        assert!(p.get("minimum").is_none_or(|m| n >= m.as_i64().unwrap()), "{name}={v}");
                        assert!(p.get("maximum").is_none_or(|m| n <= m.as_i64().unwrap()), "{name}={v}");
                    }
                    _ => {}
                }
                if let Some(e) = p.get("enum") {
                    assert!(e.as_array().unwrap().contains(&json!(v)), "{name}={v}");
                }
                if let Some(m) = p.get("maxLength") {
                    assert!(v.chars().count() as u64 <= m.as_u64().unwrap(), "{name} too long");
                }
            }
        }
    }
}

#[tokio::test]
async fn preflight_passes_and_names_what_is_missing() {
    let server = ProxmoxTestServer::start().await;
    let p = provider(&server, config(5000, 5099));
    let checks = p.preflight().await;
    let names: Vec<&str> = checks.iter().map(|c| c.name).collect();
    assert_eq!(names, shared::providers::proxmox::CHECKS);
    for c in &checks {
        assert!(c.ok, "{} failed: {}", c.name, c.detail);
    }
    assert!(checks[2].detail.contains("VMID 9000 on node pve1"), "{}", checks[2].detail);
    assert!(checks[4].detail.contains("99 of 100"), "{}", checks[4].detail);

    let mut missing_template = config(5000, 5099);
    missing_template.template_name = "no-such-template".into();
    let checks = provider(&server, missing_template).preflight().await;
    let failed: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    assert_eq!(failed, vec!["template"], "{checks:?}");

    let mut perms = integration_tests::proxmox_server::full_permissions();
    perms["/vms"].as_object_mut().unwrap().remove("VM.GuestAgent.Unrestricted");
    server.set_permissions(perms);
    let checks = p.preflight().await;
    let perm = checks.iter().find(|c| c.name == "permissions").unwrap();
    assert!(!perm.ok);
    assert!(perm.detail.contains("VM.GuestAgent.Unrestricted or VM.Monitor on /vms or /pool/kasm"), "{}", perm.detail);

    let refused = provider_with(&server, config(5000, 5099), "wrong-secret-value").preflight().await;
    let failed: Vec<&str> = refused.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    assert_eq!(failed, vec!["credentials", "permissions", "template", "node", "vmid_range"], "{refused:?}");
    assert!(refused[0].detail.contains("authentication failed"), "{}", refused[0].detail);
    assert!(!format!("{refused:?}").contains("wrong-secret-value"));
}

#[tokio::test]
async fn windows_guests_get_a_powershell_script_with_the_same_guard() {
    let server = ProxmoxTestServer::start().await;
    let mut cfg = config(5000, 5099);
    cfg.installed_os_type = OsFamily::Windows;
    cfg.startup_script_path = r"C:\windows\temp\".into();
    let p = provider(&server, cfg);
    let mut s = spec("prod", "win");
    s.os = OsFamily::Windows;
    s.startup_script = Some(SecretString::from("Write-Output 'install agent'\r\n".to_string()));
    p.create_vm(&s).await.expect("create");
    assert_eq!(
        server.guest_file(5000, r"C:\windows\temp\kasm-autoscale-startup.ps1").as_deref(),
        Some("Write-Output 'install agent'\r\n")
    );
    let (_, cmd) = &server.execs()[0];
    assert_eq!(cmd[0], "powershell.exe");
    assert!(cmd.contains(&"Bypass".to_string()), "{cmd:?}");
    assert_eq!(
        cmd.last().unwrap(),
        r"if (New-Item -ItemType Directory -Path 'C:\windows\temp\kasm-autoscale-startup.ran' -ErrorAction SilentlyContinue) { & 'C:\windows\temp\kasm-autoscale-startup.ps1' *> 'C:\windows\temp\kasm-autoscale-startup.log' }"
    );
    assert_eq!(server.script_runs(5000), 1);
}

#[tokio::test]
async fn a_script_over_the_file_write_limit_is_refused_before_any_call() {
    let server = ProxmoxTestServer::start().await;
    let p = provider(&server, config(5000, 5099));
    let mut s = spec("prod", "a");
    s.startup_script = Some(SecretString::from("#".repeat(61_441)));
    let err = p.create_vm(&s).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Invalid, "{err}");
    assert!(err.to_string().contains("61441 bytes"), "{err}");
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn a_template_without_the_guest_agent_fails_at_once_and_in_preflight() {
    let server = ProxmoxTestServer::start().await;
    server.set_agent_option(9000, false);
    let p = provider(&server, config(5000, 5099));
    let err = p.create_vm(&spec("prod", "a")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Invalid, "waiting cannot help: {err}");
    assert!(err.to_string().contains("enable the Guest Agent option (agent: 1) on template `ubuntu-kasm`"), "{err}");
    // Not one full agent wait: the first ping tells.
    let pings = server.requests().iter().filter(|r| r.route.ends_with("/agent/ping")).count();
    assert_eq!(pings, 1);

    let checks = p.preflight().await;
    let t = checks.iter().find(|c| c.name == "template").unwrap();
    assert!(!t.ok && t.detail.contains("QEMU Guest Agent option off"), "{}", t.detail);
}

#[tokio::test]
async fn a_clone_whose_tagging_failed_is_still_found_by_its_claim_and_deletable() {
    let server = ProxmoxTestServer::start().await;
    let p = provider(&server, config(5000, 5099));
    let s = spec("prod", "a");
    server.inject(
        "PUT",
        "/nodes/{node}/qemu/{vmid}/config",
        403,
        "Permission check failed (/vms/5000, VM.Config.Options)",
        1,
    );
    let err = p.create_vm(&s).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permission, "{err}");
    let vm = server.vm(5000).expect("the clone exists");
    assert!(vm.tags.split(';').all(|t| !t.starts_with("ka-")), "{}", vm.tags);

    // The deployment-wide listing (orphan sweep) cannot know whose it is; the claim's listing can.
    assert!(p.list_vms(&OwnerLabels::deployment("prod")).await.unwrap().is_empty());
    let by_claim = p.list_vms(&s.labels).await.unwrap();
    assert_eq!(by_claim.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(), vec!["5000"]);
    p.delete_vm("5000").await.expect("delete the untagged clone of a claim");
    assert!(server.vm(5000).is_none());
}
