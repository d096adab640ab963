//! The evaluate → provision → reap loop against the Kasm test server over HTTP (the real
//! `KasmClient`), with the in-memory provider and store: an agent checks in and is enabled; a drained
//! agent is disabled, waits for its sessions to end and is deleted; Kasm unreachable changes nothing.

use chrono::{DateTime, Duration, TimeZone, Utc};
use integration_tests::kasm_server::{AcceptAuth, AgentSpec, KasmTestServer};
use secrecy::SecretString;
use shared::app::{self, Ctx, Tuning};
use shared::clock::VirtualClock;
use shared::config::{ConfigFile, ConfigSet};
use shared::http::RetryConfig;
use shared::kasm::{KasmClient, KasmClientOptions};
use shared::model::InstanceState;
use shared::ports::{Store, VmProvider};
use shared::providers::memory::MemoryProvider;
use shared::secrets::StaticSecrets;
use shared::store::{InstanceFilter, MemoryStore};
use std::collections::HashMap;
use std::sync::Arc;

const KEY: &str = "loop-key";
const SECRET: &str = "loop-secret-value";
const ZONE: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const POOL: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

fn configs(url: &str, standby_cores: u32) -> ConfigSet {
    let doc = format!(
        r#"
settings:
  deployment_id: loop-test
  kasm:
    url: {url}
    api_key: {KEY}
    api_key_secret: env:UNUSED_IN_THIS_TEST
autoscale_configs:
  - autoscale_config_name: agents
    server_pool_id: {POOL}
    zone_id: {ZONE}
    vm_provider_config: prov
    standby_cores: {standby_cores}
    agent_cores_override: 4
    agent_memory_override_gb: 8
    downscale_backoff: 60
vm_provider_configs:
  - provider: proxmox
    name: prov
    max_instances: 5
    host: pve.example.com:8006
    username: kasm@pve
    token_name: autoscale
    token_value: env:PVE_TOKEN
    verify_ssl: true
    vmid_range_lower: 9000
    vmid_range_upper: 9099
    full_clone: true
    template_name: ubuntu-kasm
    cluster_node_name: pve1
    vm_cores: 4
    vm_memory: 8
    installed_os_type: linux
    startup_script_path: /tmp/kasm-startup.sh
"#
    );
    let f: ConfigFile = serde_yaml_ng::from_str(&doc).expect("config parses");
    let mut s = ConfigSet::default();
    s.merge(f);
    s
}

struct Loop {
    kasm: KasmTestServer,
    store: Arc<MemoryStore>,
    provider: Arc<MemoryProvider>,
    clock: Arc<VirtualClock>,
}

impl Loop {
    async fn new() -> Loop {
        let kasm = KasmTestServer::start(KEY, SECRET, AcceptAuth::Either).await;
        // The test server stamps agents' last check-in at 2026-11-22 08:30:12; the clock stands just after.
        let clock = Arc::new(VirtualClock::new(Utc.with_ymd_and_hms(2026, 11, 22, 8, 31, 0).unwrap()));
        Loop { kasm, store: Arc::new(MemoryStore::new()), provider: Arc::new(MemoryProvider::new()), clock }
    }

    fn ctx(&self, url: &str, standby_cores: u32) -> Ctx {
        let set = configs(url, standby_cores);
        let settings = set.settings.kasm.clone().unwrap();
        let opts = KasmClientOptions {
            connect_timeout: std::time::Duration::from_millis(500),
            request_timeout: std::time::Duration::from_secs(2),
            read_retry: RetryConfig {
                base: std::time::Duration::from_millis(5),
                cap: std::time::Duration::from_millis(20),
                max_retries: 2,
                budget: std::time::Duration::from_secs(1),
            },
            ca_pem: None,
        };
        let client = KasmClient::with_options(&settings, SecretString::from(SECRET.to_string()), opts).unwrap();
        let mut providers: HashMap<String, Arc<dyn VmProvider>> = HashMap::new();
        providers.insert("prov".into(), self.provider.clone());
        Ctx {
            store: self.store.clone(),
            kasm: Arc::new(client),
            secrets: Arc::new(StaticSecrets::default()),
            clock: self.clock.clone(),
            providers: providers.into(),
            dns: Default::default(),
            configs: Arc::new(set),
            holder: "loop".into(),
            tuning: Tuning::default(),
        }
    }

    async fn claims(&self, state: InstanceState) -> Vec<shared::model::Instance> {
        self.store.list(&InstanceFilter { states: vec![state], ..Default::default() }).await.unwrap()
    }

    fn now(&self) -> DateTime<Utc> {
        shared::ports::Clock::now(self.clock.as_ref())
    }
}

#[tokio::test]
async fn agents_check_in_are_enabled_then_drain_wait_for_sessions_and_are_deleted() {
    let l = Loop::new().await;
    let ctx = l.ctx(&l.kasm.url, 8);

    // 8 standby cores, 4 per agent, an empty pool: two claims, two VMs.
    let out = app::evaluate(&ctx, None, "test").await;
    let plan = out[0].result.as_ref().unwrap();
    assert_eq!(out[0].claimed.len(), 2, "{:?}", plan.reasons);
    for (_, r) in app::provision_pending(&ctx).await {
        assert!(matches!(r.unwrap(), app::ProvisionOutcome::Created { .. }));
    }
    assert_eq!(l.provider.vms().len(), 2);

    // The VMs boot and their agents register with Kasm — disabled, as without auto_agent.
    let booting = l.claims(InstanceState::Booting).await;
    for c in &booting {
        l.kasm.add_agent(AgentSpec {
            server_id: c.kasm_server_id.clone(),
            hostname: c.vm_name.clone(),
            zone_id: ZONE.into(),
            server_pool_id: Some(POOL.into()),
            enabled: false,
            cores: 4.0,
            memory_mb: 8192.0,
            gpus: 0.0,
        });
    }
    app::evaluate(&ctx, None, "test").await;
    for c in &booting {
        let agent = l.kasm.agent(&c.kasm_server_id).expect("agent record");
        assert_eq!(agent["enabled"], true, "agent {} left disabled", c.kasm_server_id);
    }
    assert_eq!(l.claims(InstanceState::Running).await.len(), 2);

    // Demand falls to nothing (standby 0): the scale-down clock starts, and after the backoff the
    // idle agents are drained (disabled in Kasm).
    let ctx0 = l.ctx(&l.kasm.url, 0);
    let first = app::evaluate(&ctx0, None, "test").await;
    assert!(first[0].result.as_ref().unwrap().actions.is_empty(), "drained before the backoff");
    l.clock.advance(Duration::seconds(61));
    let out = app::evaluate(&ctx0, None, "test").await;
    let plan = out[0].result.as_ref().unwrap();
    let draining = l.claims(InstanceState::Draining).await;
    assert_eq!(draining.len(), 2, "{:?}", plan.reasons);
    for c in &draining {
        assert_eq!(l.kasm.agent(&c.kasm_server_id).unwrap()["enabled"], false);
    }

    // A session landed on one of them just before it was disabled: that VM waits; the other goes.
    let busy = &draining[0];
    l.kasm.add_session("late-session", &busy.kasm_server_id, 2.0, 2048.0);
    let rep = app::reap(&ctx0).await;
    assert_eq!(rep.waiting_for_sessions, vec![busy.id.clone()], "{rep:?}");
    assert_eq!(rep.deleted, vec![draining[1].id.clone()], "{rep:?}");
    assert!(l.kasm.is_gone(&draining[1].kasm_server_id), "Kasm record not deleted");
    assert_eq!(l.provider.vms().len(), 1);

    // The session ends: the VM and its record are deleted.
    l.kasm.remove_session("late-session");
    let rep = app::reap(&ctx0).await;
    assert_eq!(rep.deleted, vec![busy.id.clone()], "{rep:?}");
    assert!(l.kasm.is_gone(&busy.kasm_server_id));
    assert!(l.provider.vms().is_empty());
    assert_eq!(l.store.count_owned("prov").await.unwrap(), 0);
    let _ = l.now();
}

#[tokio::test]
async fn kasm_unreachable_means_no_action_and_the_next_tick_retries() {
    let l = Loop::new().await;
    // Nothing listens here.
    let dead = {
        let sock = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        drop(sock);
        format!("http://{addr}")
    };
    let ctx = l.ctx(&dead, 8);
    let out = app::evaluate(&ctx, None, "test").await;
    let err = out[0].result.as_ref().unwrap_err().to_string();
    assert!(err.contains("unreachable on get_"), "the error names the call: {err}");
    assert!(l.store.list(&InstanceFilter::default()).await.unwrap().is_empty(), "claims written without Kasm");
    assert_eq!(l.provider.create_calls(), 0);
    assert!(!err.contains(SECRET));

    // Wrong credentials: the same, and the error says so without the secret.
    let mut bad = l.ctx(&l.kasm.url, 8);
    let settings = bad.configs.settings.kasm.clone().unwrap();
    bad.kasm = Arc::new(KasmClient::new(&settings, SecretString::from("wrong-secret".to_string())).unwrap());
    let out = app::evaluate(&bad, None, "test").await;
    let err = out[0].result.as_ref().unwrap_err().to_string();
    assert!(err.contains("refused the API key"), "{err}");
    assert!(!err.contains("wrong-secret"));
    assert!(l.store.list(&InstanceFilter::default()).await.unwrap().is_empty());

    // Kasm is back: the next tick acts.
    let ok = l.ctx(&l.kasm.url, 8);
    let out = app::evaluate(&ok, None, "test").await;
    assert_eq!(out[0].claimed.len(), 2);
}

#[tokio::test]
async fn plan_decides_from_kasm_and_changes_nothing() {
    let l = Loop::new().await;
    let ctx = l.ctx(&l.kasm.url, 8);
    let plans = app::plan(&ctx, None).await.unwrap();
    assert_eq!(plans.len(), 1);
    let (input, plan) = &plans[0];
    assert_eq!(plan.create, 2, "{:?}", plan.reasons);
    assert!(plan.changes_something());
    assert_eq!(input.config.autoscale_config_name, "agents");
    assert!(plan.reasons.iter().any(|r| r.contains("standby")), "{:?}", plan.reasons);
    // Nothing was written: no claims, no decisions, no control record, no provider call.
    assert!(l.store.list(&InstanceFilter::default()).await.unwrap().is_empty());
    assert!(l.store.decisions(None, 10).await.unwrap().is_empty());
    assert_eq!(l.store.control("agents").await.unwrap().version, 0);
    assert_eq!(l.provider.create_calls(), 0);
}
