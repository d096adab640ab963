//! Handler tests over the in-memory ports, with the faults Lambda really has injected: duplicate
//! events, overlapping invocations, functions dying mid-way, provider errors, Kasm outages.

use chrono::{DateTime, Duration, TimeZone, Utc};
use std::collections::HashMap;
use std::sync::Arc;

use super::*;
use crate::clock::VirtualClock;
use crate::config::{AutoscaleConfig, ConfigFile, ConfigSet};
use crate::engine::ControlState;
use crate::kasm::memory::MemoryKasm;
use crate::kasm::{KasmError, KasmServer, ServerKind};
use crate::model::{ClaimId, Instance, InstanceState, OsFamily, OwnerLabels, Resources};
use crate::providers::memory::MemoryProvider;
use crate::providers::{ProviderError, Vm, VmState};
use crate::secrets::StaticSecrets;
use crate::store::{DecisionRecord, EvalSnapshot, InstanceFilter, MemoryStore, Store, StoreError, Versioned, moved};

struct World {
    ctx: Ctx,
    store: Arc<MemoryStore>,
    kasm: Arc<MemoryKasm>,
    provider: Arc<MemoryProvider>,
    clock: Arc<VirtualClock>,
}

fn configs(max: u32, standby_cores: f64) -> ConfigSet {
    let doc = format!(
        r##"
autoscale_configs:
  - autoscale_config_name: agents
    server_pool_id: pool
    zone_id: zone
    vm_provider_config: prov
    standby_cores: {standby_cores}
    agent_cores_override: 4
    agent_memory_override_gb: 8
    downscale_backoff: 600
vm_provider_configs:
  - provider: proxmox
    name: prov
    max_instances: {max}
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
    startup_script: "#!/bin/sh\necho {{server_id}}"
"##
    );
    let f: ConfigFile = serde_yaml_ng::from_str(&doc).expect("test config parses");
    let mut s = ConfigSet::default();
    s.merge(f);
    s
}

fn world(set: ConfigSet) -> World {
    let clock = Arc::new(VirtualClock::new(Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()));
    let store = Arc::new(MemoryStore::new());
    let kasm = Arc::new(MemoryKasm::new());
    let provider = Arc::new(MemoryProvider::new());
    let mut providers: HashMap<String, Arc<dyn crate::ports::VmProvider>> = HashMap::new();
    providers.insert("prov".into(), provider.clone());
    let ctx = Ctx {
        store: store.clone(),
        kasm: kasm.clone(),
        secrets: Arc::new(StaticSecrets::default()),
        clock: clock.clone(),
        providers: providers.into(),
        dns: Default::default(),
        configs: Arc::new(set),
        holder: "test".into(),
        tuning: Tuning::default(),
    };
    World { ctx, store, kasm, provider, clock }
}

fn claim(w: &World) -> Instance {
    Instance::new_claim(ClaimId::generate(w.clock.now()), "agents", "prov", "proxmox", OsFamily::Linux, w.clock.now())
}

async fn put_claim(w: &World) -> Instance {
    let c = claim(w);
    assert!(w.store.try_claim(&c, 100).await.unwrap());
    w.store.get(&c.id).await.unwrap().unwrap()
}

/// The agent of a claim checks in to Kasm (registered disabled, like Kasm without auto_agent).
fn check_in(w: &World, inst: &Instance, enabled: bool) {
    w.kasm.upsert_server(KasmServer {
        server_id: inst.kasm_server_id.clone(),
        kind: ServerKind::Agent,
        hostname: Some(inst.vm_name.clone()),
        public_ip: None,
        zone_id: "zone".into(),
        friendly_name: None,
        autoscale_config_id: None,
        server_pool_id: Some("pool".into()),
        enabled,
        operational_status: "running".into(),
        last_reported: Some(w.clock.now()),
        reported: Resources::new(4.0, 8192.0, 0.0),
        overridden: Resources::default(),
        allocated: Resources::default(),
        max_sessions: None,
        agent_installed: false,
    });
}

#[tokio::test]
async fn a_config_whose_provider_cannot_be_built_fails_alone_and_backs_off() {
    let mut set = configs(5, 0.0);
    let mut broken = set.autoscale_configs[0].clone();
    broken.autoscale_config_name = "broken".into();
    broken.vm_provider_config = "bad".into();
    set.autoscale_configs.push(broken);
    let mut bad = set.vm_provider_configs[0].clone();
    if let crate::config::VmProviderConfig::Proxmox(p) = &mut bad {
        p.name = "bad".into();
    }
    set.vm_provider_configs.push(bad);
    let mut w = world(set);
    let unusable =
        ProviderError::Unauthenticated { provider: "proxmox", message: "token_value: env:PVE_TOKEN is not set".into() };
    w.ctx.providers = [
        ("prov".to_string(), Ok(w.provider.clone() as Arc<dyn crate::ports::VmProvider>)),
        ("bad".to_string(), Err(unusable)),
    ]
    .into_iter()
    .collect();

    let good = put_claim(&w).await;
    let b = Instance::new_claim(
        ClaimId::generate(w.clock.now()),
        "broken",
        "bad",
        "proxmox",
        OsFamily::Linux,
        w.clock.now(),
    );
    assert!(w.store.try_claim(&b, 100).await.unwrap());

    // The broken config's claim fails with its provider's error and the config backs off ...
    let out = provision(&w.ctx, &b.id).await.unwrap();
    assert!(matches!(&out, ProvisionOutcome::Failed { error, .. } if error.contains("token_value")), "{out:?}");
    let stored = w.store.get(&b.id).await.unwrap().unwrap();
    assert_eq!(stored.state, InstanceState::Failed);
    assert!(stored.last_error.as_deref().is_some_and(|e| e.contains("token_value")));
    let control = w.store.control("broken").await.unwrap().value;
    assert!(control.backoff_until.is_some_and(|t| t > w.clock.now()), "{control:?}");
    assert_eq!(w.ctx.providers.failures().len(), 1);

    // ... and the other config goes on as if nothing happened.
    assert!(matches!(provision(&w.ctx, &good.id).await.unwrap(), ProvisionOutcome::Created { .. }));
    assert!(w.store.control("agents").await.unwrap().value.backoff_until.is_none());
}

#[tokio::test]
async fn duplicate_provision_events_make_one_vm() {
    let w = world(configs(5, 0.0));
    let c = put_claim(&w).await;
    let first = provision(&w.ctx, &c.id).await.unwrap();
    assert!(matches!(first, ProvisionOutcome::Created { .. }), "{first:?}");
    assert_eq!(provision(&w.ctx, &c.id).await.unwrap(), ProvisionOutcome::AlreadyHandled);
    assert_eq!(w.provider.vms().len(), 1);
    assert_eq!(w.provider.create_calls(), 1);
    let got = w.store.get(&c.id).await.unwrap().unwrap();
    assert_eq!(got.state, InstanceState::Booting);
    assert!(got.vm_id.is_some());
}

#[tokio::test]
async fn overlapping_provisioners_call_the_provider_once() {
    let w = world(configs(5, 0.0));
    let c = put_claim(&w).await;
    let ctx = Arc::new(w.ctx.clone());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let ctx = ctx.clone();
        let id = c.id.clone();
        tasks.push(tokio::spawn(async move { provision(&ctx, &id).await.unwrap() }));
    }
    let mut created = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), ProvisionOutcome::Created { .. }) {
            created += 1;
        }
    }
    assert_eq!(created, 1);
    assert_eq!(w.provider.create_calls(), 1);
}

#[tokio::test]
async fn the_startup_script_is_rendered_into_the_spec() {
    let w = world(configs(5, 0.0));
    let c = put_claim(&w).await;
    let cfg = w.ctx.configs.autoscale("agents").unwrap().clone();
    let pcfg = w.ctx.configs.provider("prov").unwrap().clone();
    let spec = provision::build_spec(&w.ctx, &c, &cfg, &pcfg, None).await.unwrap();
    use secrecy::ExposeSecret;
    let script = spec.startup_script.unwrap();
    assert!(script.expose_secret().contains(&c.kasm_server_id), "server_id not rendered");
    assert_eq!(spec.labels.claim, Some(c.id.clone()));
    assert_eq!(spec.labels.deployment, w.ctx.configs.settings.deployment_id);
}

#[tokio::test]
async fn retryable_errors_hand_the_claim_back_with_a_delay() {
    let w = world(configs(5, 0.0));
    let c = put_claim(&w).await;
    w.provider.fail_next_creates(ProviderError::Transient { provider: "memory", message: "503".into() }, 1);
    let r = provision(&w.ctx, &c.id).await.unwrap();
    assert!(matches!(r, ProvisionOutcome::Retrying { .. }), "{r:?}");
    let back = w.store.get(&c.id).await.unwrap().unwrap();
    assert_eq!(back.state, InstanceState::Requested);
    assert_eq!(back.attempts, 1);
    assert!(back.last_error.as_deref().unwrap().contains("503"));
    // Too early: nothing happens.
    assert_eq!(provision(&w.ctx, &c.id).await.unwrap(), ProvisionOutcome::NotYet);
    w.clock.advance(Duration::seconds(31));
    assert!(matches!(provision(&w.ctx, &c.id).await.unwrap(), ProvisionOutcome::Created { .. }));
    assert_eq!(w.provider.vms().len(), 1);
}

#[tokio::test]
async fn retries_end_in_failed_after_max_attempts() {
    let w = world(configs(5, 0.0));
    let c = put_claim(&w).await;
    w.provider.fail_next_creates(ProviderError::Transient { provider: "memory", message: "503".into() }, 10);
    let mut last = None;
    for _ in 0..w.ctx.tuning.max_create_attempts {
        last = Some(provision(&w.ctx, &c.id).await.unwrap());
        w.clock.advance(Duration::hours(2));
    }
    assert!(matches!(last, Some(ProvisionOutcome::Failed { .. })), "{last:?}");
    let f = w.store.get(&c.id).await.unwrap().unwrap();
    assert_eq!(f.state, InstanceState::Failed);
    // A failed claim still counts toward the cap until cleaned up.
    assert_eq!(w.store.count_owned("prov").await.unwrap(), 1);
}

#[tokio::test]
async fn out_of_capacity_fails_the_claim_and_backs_off_the_config() {
    let w = world(configs(5, 0.0));
    let c = put_claim(&w).await;
    w.provider.fail_next_creates(ProviderError::OutOfCapacity { provider: "memory", message: "no room".into() }, 1);
    let r = provision(&w.ctx, &c.id).await.unwrap();
    assert!(matches!(r, ProvisionOutcome::Failed { .. }), "{r:?}");
    let control = w.store.control("agents").await.unwrap().value;
    assert_eq!(control.consecutive_failures, 1);
    assert_eq!(control.backoff_until, Some(w.clock.now() + Duration::seconds(300)));
}

#[tokio::test]
async fn a_provisioner_that_died_after_create_is_recovered_without_a_second_vm() {
    let w = world(configs(5, 0.0));
    let c = put_claim(&w).await;
    // The provisioner moved the claim to creating and called the provider, then died.
    let creating = w.store.update(&moved(&c, InstanceState::Creating, w.clock.now()).unwrap()).await.unwrap();
    let cfg = w.ctx.configs.autoscale("agents").unwrap().clone();
    let pcfg = w.ctx.configs.provider("prov").unwrap().clone();
    let spec = provision::build_spec(&w.ctx, &creating, &cfg, &pcfg, None).await.unwrap();
    let vm = w.provider.create_vm(&spec).await.unwrap();
    // Too early to presume it dead.
    let rep = reap(&w.ctx).await;
    assert!(rep.recovered.is_empty());
    w.clock.advance(Duration::seconds(w.ctx.tuning.stuck_creating_seconds as i64 + 1));
    let rep = reap(&w.ctx).await;
    assert_eq!(rep.recovered, vec![c.id.clone()]);
    let got = w.store.get(&c.id).await.unwrap().unwrap();
    assert_eq!(got.state, InstanceState::Booting);
    assert_eq!(got.vm_id.as_deref(), Some(vm.id.as_str()));
    assert_eq!(w.provider.vms().len(), 1);
}

#[tokio::test]
async fn a_provisioner_that_died_before_create_is_retried() {
    let w = world(configs(5, 0.0));
    let c = put_claim(&w).await;
    w.store.update(&moved(&c, InstanceState::Creating, w.clock.now()).unwrap()).await.unwrap();
    w.clock.advance(Duration::seconds(w.ctx.tuning.stuck_creating_seconds as i64 + 1));
    reap(&w.ctx).await;
    assert_eq!(w.store.get(&c.id).await.unwrap().unwrap().state, InstanceState::Requested);
    w.clock.advance(Duration::seconds(w.ctx.tuning.stuck_requested_seconds as i64 + 1));
    let rep = reap(&w.ctx).await;
    assert_eq!(rep.recovered, vec![c.id.clone()]);
    assert_eq!(w.store.get(&c.id).await.unwrap().unwrap().state, InstanceState::Booting);
    assert_eq!(w.provider.vms().len(), 1);
}

#[tokio::test]
async fn draining_vms_are_deleted_only_when_their_sessions_end() {
    let w = world(configs(5, 0.0));
    let c = put_claim(&w).await;
    provision(&w.ctx, &c.id).await.unwrap();
    let booted = w.store.get(&c.id).await.unwrap().unwrap();
    check_in(&w, &booted, true);
    let running = w.store.update(&moved(&booted, InstanceState::Running, w.clock.now()).unwrap()).await.unwrap();
    w.kasm.start_session("k1", &running.kasm_server_id, Resources::new(2.0, 2048.0, 0.0));
    w.store.update(&moved(&running, InstanceState::Draining, w.clock.now()).unwrap()).await.unwrap();

    let rep = reap(&w.ctx).await;
    assert_eq!(rep.waiting_for_sessions, vec![c.id.clone()]);
    assert_eq!(w.provider.vms().len(), 1, "a VM with a session was deleted");

    w.kasm.end_session("k1");
    let rep = reap(&w.ctx).await;
    assert_eq!(rep.drained, vec![c.id.clone()]);
    assert_eq!(rep.deleted, vec![c.id.clone()]);
    assert!(w.provider.vms().is_empty());
    assert!(w.kasm.server(&running.kasm_server_id).is_none(), "Kasm record left behind");
    assert_eq!(w.store.get(&c.id).await.unwrap().unwrap().state, InstanceState::Deleted);
    assert_eq!(w.store.count_owned("prov").await.unwrap(), 0);
}

#[tokio::test]
async fn kasm_outage_keeps_draining_vms() {
    let w = world(configs(5, 0.0));
    let c = put_claim(&w).await;
    provision(&w.ctx, &c.id).await.unwrap();
    let booted = w.store.get(&c.id).await.unwrap().unwrap();
    let running = w.store.update(&moved(&booted, InstanceState::Running, w.clock.now()).unwrap()).await.unwrap();
    w.store.update(&moved(&running, InstanceState::Draining, w.clock.now()).unwrap()).await.unwrap();
    w.kasm.fail_with(Some(KasmError::Unreachable { call: "get_kasms".into(), message: "connection refused".into() }));
    let rep = reap(&w.ctx).await;
    assert!(rep.drained.is_empty());
    assert_eq!(w.provider.vms().len(), 1);
    assert!(rep.errors.iter().any(|e| e.contains("get_kasms")), "{:?}", rep.errors);
}

#[tokio::test]
async fn kasm_outage_stops_evaluation_without_changes() {
    let w = world(configs(5, 8.0));
    w.kasm.fail_with(Some(KasmError::Unreachable { call: "get_servers".into(), message: "connection refused".into() }));
    let out = evaluate(&w.ctx, None, "test").await;
    assert_eq!(out.len(), 1);
    let err = out[0].result.as_ref().unwrap_err().to_string();
    assert!(err.contains("get_servers"), "{err}");
    assert!(w.store.list(&InstanceFilter::default()).await.unwrap().is_empty());
}

#[tokio::test]
async fn vanished_vms_are_finished() {
    let w = world(configs(5, 0.0));
    let c = put_claim(&w).await;
    provision(&w.ctx, &c.id).await.unwrap();
    let vm_id = w.store.get(&c.id).await.unwrap().unwrap().vm_id.unwrap();
    w.provider.delete_vm(&vm_id).await.unwrap();
    reap(&w.ctx).await;
    let got = w.store.get(&c.id).await.unwrap().unwrap();
    assert_eq!(got.state, InstanceState::Deleting);
    reap(&w.ctx).await;
    assert_eq!(w.store.get(&c.id).await.unwrap().unwrap().state, InstanceState::Deleted);
}

#[tokio::test]
async fn orphans_are_deleted_in_two_phases_and_only_ours() {
    let w = world(configs(5, 0.0));
    let dep = w.ctx.configs.settings.deployment_id.clone();
    let mk = |id: &str, deployment: &str| Vm {
        id: id.into(),
        name: id.into(),
        state: VmState::Running,
        labels: OwnerLabels {
            deployment: deployment.into(),
            autoscale_config: Some("agents".into()),
            claim: Some(ClaimId("01unknown".into())),
        }
        .to_map(),
        private_ip: None,
        public_ip: None,
        created_at: None,
    };
    w.provider.insert_vm(mk("orphan-1", &dep));
    w.provider.insert_vm(mk("foreign-1", "someone-else"));
    let rep = reap(&w.ctx).await;
    assert_eq!(rep.orphans_suspected, vec!["prov/orphan-1".to_string()]);
    assert!(rep.orphans_deleted.is_empty());
    w.clock.advance(Duration::seconds(w.ctx.tuning.orphan_grace_seconds as i64));
    let rep = reap(&w.ctx).await;
    assert_eq!(rep.orphans_deleted, vec!["prov/orphan-1".to_string()]);
    let left: Vec<String> = w.provider.vms().into_iter().map(|v| v.id).collect();
    assert_eq!(left, vec!["foreign-1".to_string()], "a VM without our deployment tag was touched");
}

#[tokio::test]
async fn a_claimed_vm_is_never_an_orphan() {
    let w = world(configs(5, 0.0));
    let c = put_claim(&w).await;
    provision(&w.ctx, &c.id).await.unwrap();
    for _ in 0..3 {
        w.clock.advance(Duration::seconds(w.ctx.tuning.orphan_grace_seconds as i64));
        let rep = reap(&w.ctx).await;
        assert!(rep.orphans_suspected.is_empty() && rep.orphans_deleted.is_empty());
    }
    assert_eq!(w.provider.vms().len(), 1);
}

// ---- evaluation (needs the engine) ----

#[tokio::test]
async fn evaluation_claims_what_the_standby_needs_and_activates_checked_in_agents() {
    let w = world(configs(10, 8.0));
    let out = evaluate(&w.ctx, None, "test").await;
    let plan = out[0].result.as_ref().unwrap();
    assert_eq!(plan.create, 2, "8 standby cores / 4 cores per agent: {:?}", plan.reasons);
    assert_eq!(out[0].claimed.len(), 2);
    // A duplicate scheduled event right after: the booting claims count, nothing more is created.
    let again = evaluate(&w.ctx, None, "test").await;
    assert_eq!(again[0].result.as_ref().unwrap().create, 0, "{:?}", again[0].result.as_ref().unwrap().reasons);
    for (_, r) in provision_pending(&w.ctx).await {
        assert!(matches!(r.unwrap(), ProvisionOutcome::Created { .. }));
    }
    for i in w.store.list(&InstanceFilter::default()).await.unwrap() {
        check_in(&w, &i, false);
    }
    let out = evaluate(&w.ctx, None, "test").await;
    let plan = out[0].result.as_ref().unwrap();
    assert_eq!(plan.create, 0);
    let enabled = w.kasm.servers().iter().filter(|s| s.enabled).count();
    assert_eq!(enabled, 2, "agents that registered disabled were not enabled: {:?}", plan.actions);
    let running =
        w.store.list(&InstanceFilter { states: vec![InstanceState::Running], ..Default::default() }).await.unwrap();
    assert_eq!(running.len(), 2);
}

#[tokio::test]
async fn evaluations_keep_the_demand_history_and_measure_boots_when_predictive() {
    let mut set = configs(10, 8.0);
    set.autoscale_configs[0].predictive_scaling = crate::config::PredictiveScaling::On;
    let w = world(set);
    evaluate(&w.ctx, None, "test").await;
    let h = w.store.control("agents").await.unwrap().value.history.expect("a history is kept");
    assert_eq!(h.identity, crate::engine::forecast::identity(&w.ctx.configs.autoscale_configs[0]));
    assert!(h.boot_seconds.is_empty());
    provision_pending(&w.ctx).await;
    w.clock.advance(Duration::seconds(240));
    for i in w.store.list(&InstanceFilter::default()).await.unwrap() {
        check_in(&w, &i, false);
    }
    let out = evaluate(&w.ctx, None, "test").await;
    let plan = out[0].result.as_ref().unwrap();
    assert!(plan.summary.forecast.as_ref().is_some_and(|f| f.note.is_some()), "{:?}", plan.reasons);
    let h = w.store.control("agents").await.unwrap().value.history.expect("kept");
    assert_eq!(h.boot_seconds, vec![240, 240], "both claims measured from create to check-in");
    // Off: no history is kept (the stored one is dropped at the next evaluation).
    let mut set = configs(10, 8.0);
    set.autoscale_configs[0].predictive_scaling = crate::config::PredictiveScaling::Off;
    let w = world(set);
    evaluate(&w.ctx, None, "test").await;
    assert_eq!(w.store.control("agents").await.unwrap().value.history, None);
}

#[tokio::test]
async fn overlapping_evaluations_never_exceed_max_instances() {
    let w = world(configs(3, 400.0));
    let mut tasks = Vec::new();
    for n in 0..10 {
        let mut ctx = w.ctx.clone();
        ctx.holder = format!("invocation-{n}");
        // Different holders: some are refused the lease, the others race on claims.
        tasks.push(tokio::spawn(async move { evaluate(&ctx, None, "test").await }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Leases expire; evaluate again many times.
    for _ in 0..5 {
        w.clock.advance(Duration::seconds(200));
        evaluate(&w.ctx, None, "test").await;
    }
    assert_eq!(w.store.count_owned("prov").await.unwrap(), 3);
}

#[tokio::test]
async fn every_evaluation_is_logged_with_its_reasons() {
    let w = world(configs(10, 8.0));
    evaluate(&w.ctx, None, "schedule").await;
    let d = w.store.decisions(Some("agents"), 10).await.unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].trigger, "schedule");
    assert!(!d[0].plan.reasons.is_empty());
}

/// A memory store with a hook on `begin_evaluation`.
#[derive(Debug)]
struct HookedStore {
    inner: Arc<MemoryStore>,
    hook: Hook,
}

#[derive(Debug)]
enum Hook {
    /// Another writer (a provisioner's backoff) writes the control record right after each
    /// evaluation read it.
    Race,
    /// Each read takes a while; counts how many are under way at once.
    Slow { in_flight: std::sync::atomic::AtomicUsize, peak: std::sync::atomic::AtomicUsize },
}

impl HookedStore {
    fn racing(inner: Arc<MemoryStore>) -> Self {
        HookedStore { inner, hook: Hook::Race }
    }
    fn slow(inner: Arc<MemoryStore>) -> Self {
        HookedStore { inner, hook: Hook::Slow { in_flight: Default::default(), peak: Default::default() } }
    }
}

#[async_trait::async_trait]
impl Store for HookedStore {
    async fn try_claim(&self, claim: &Instance, cap: u32) -> Result<bool, StoreError> {
        self.inner.try_claim(claim, cap).await
    }
    async fn update(&self, new: &Instance) -> Result<Instance, StoreError> {
        self.inner.update(new).await
    }
    async fn get(&self, id: &ClaimId) -> Result<Option<Instance>, StoreError> {
        self.inner.get(id).await
    }
    async fn list(&self, filter: &InstanceFilter) -> Result<Vec<Instance>, StoreError> {
        self.inner.list(filter).await
    }
    async fn count_owned(&self, provider_config: &str) -> Result<u32, StoreError> {
        self.inner.count_owned(provider_config).await
    }
    async fn control(&self, c: &str) -> Result<Versioned<ControlState>, StoreError> {
        self.inner.control(c).await
    }
    async fn put_control(&self, c: &str, state: &ControlState, expected: u64) -> Result<(), StoreError> {
        self.inner.put_control(c, state, expected).await
    }
    async fn acquire_lease(&self, c: &str, holder: &str, now: DateTime<Utc>, ttl: u64) -> Result<bool, StoreError> {
        self.inner.acquire_lease(c, holder, now, ttl).await
    }
    async fn release_lease(&self, c: &str, holder: &str) -> Result<(), StoreError> {
        self.inner.release_lease(c, holder).await
    }
    async fn begin_evaluation(
        &self,
        c: &str,
        provider_config: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: u64,
    ) -> Result<Option<EvalSnapshot>, StoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        match &self.hook {
            Hook::Race => {
                let snap = self.inner.begin_evaluation(c, provider_config, holder, now, ttl).await?;
                if let Some(s) = &snap {
                    let theirs = ControlState { consecutive_failures: 1, ..s.control.value.clone() };
                    self.inner.put_control(c, &theirs, s.control.version).await?;
                }
                Ok(snap)
            }
            Hook::Slow { in_flight, peak } => {
                let now_in = in_flight.fetch_add(1, SeqCst) + 1;
                peak.fetch_max(now_in, SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                in_flight.fetch_sub(1, SeqCst);
                self.inner.begin_evaluation(c, provider_config, holder, now, ttl).await
            }
        }
    }
    async fn finish_evaluation(
        &self,
        c: &str,
        holder: &str,
        control: Option<(&ControlState, u64)>,
        decision: &DecisionRecord,
    ) -> Result<(), StoreError> {
        self.inner.finish_evaluation(c, holder, control, decision).await
    }
    async fn record_decision(&self, rec: &DecisionRecord) -> Result<(), StoreError> {
        self.inner.record_decision(rec).await
    }
    async fn decisions(&self, c: Option<&str>, limit: usize) -> Result<Vec<DecisionRecord>, StoreError> {
        self.inner.decisions(c, limit).await
    }
    async fn mark_suspect(&self, key: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, StoreError> {
        self.inner.mark_suspect(key, now).await
    }
    async fn clear_suspect(&self, key: &str) -> Result<(), StoreError> {
        self.inner.clear_suspect(key).await
    }
    async fn load_configs(&self) -> Result<Option<ConfigSet>, StoreError> {
        self.inner.load_configs().await
    }
    async fn save_configs(&self, configs: &ConfigSet) -> Result<(), StoreError> {
        self.inner.save_configs(configs).await
    }
}

#[tokio::test]
async fn a_control_record_that_moved_on_fails_the_evaluation_and_frees_the_lease() {
    let mut w = world(configs(10, 8.0));
    w.ctx.store = Arc::new(HookedStore::racing(w.store.clone()));
    let out = evaluate(&w.ctx, None, "schedule").await;
    assert!(
        matches!(out[0].result, Err(AppError::Store(StoreError::Conflict { .. }))),
        "a stale control write: {:?}",
        out[0].result
    );
    assert_eq!(out[0].claimed.len(), 2, "the claims written before the conflict are reported");
    assert!(w.store.decisions(Some("agents"), 10).await.unwrap().is_empty(), "a failed evaluation was logged");
    let control = w.store.control("agents").await.unwrap();
    assert_eq!((control.value.consecutive_failures, control.version), (1, 1), "the other writer's record stands");
    assert!(
        w.store.acquire_lease("agents", "someone-else", w.clock.now(), 60).await.unwrap(),
        "the failed evaluation kept its lease"
    );
}

#[test]
fn scope_counts_agents_without_a_reported_pool_and_always_our_own() {
    use crate::config::AutoscaleConfig;
    let cfg = AutoscaleConfig::docker_agent("agents", "prov");
    let rec = |id: &str, zone: &str, pool: Option<&str>| KasmServer {
        server_id: id.into(),
        kind: ServerKind::Agent,
        hostname: None,
        public_ip: None,
        zone_id: zone.into(),
        friendly_name: None,
        autoscale_config_id: None,
        server_pool_id: pool.map(str::to_string),
        enabled: true,
        operational_status: "running".into(),
        last_reported: None,
        reported: Resources::default(),
        overridden: Resources::default(),
        allocated: Resources::default(),
        max_sessions: None,
        agent_installed: false,
    };
    let servers = vec![
        rec("no-pool", "zone", None),
        rec("same-pool", "zone", Some("pool")),
        rec("other-pool", "zone", Some("elsewhere")),
        rec("other-zone", "far", None),
        rec("ours-elsewhere", "far", Some("elsewhere")),
    ];
    let ours = [crate::kasm::norm_id("ours-elsewhere")].into_iter().collect();
    let (mine, _) =
        evaluate::scope(&cfg, &evaluate::KasmView::new(servers, vec![], vec![]), &ours, &Default::default());
    let ids: Vec<&str> = mine.iter().map(|s| s.server_id.as_str()).collect();
    assert_eq!(ids, vec!["no-pool", "same-pool", "ours-elsewhere"]);
}

#[tokio::test]
async fn configs_are_evaluated_concurrently_in_order_and_share_the_cap() {
    let mut set = configs(5, 8.0);
    let base = set.autoscale_configs[0].clone();
    set.autoscale_configs =
        (0..20).map(|i| AutoscaleConfig { autoscale_config_name: format!("agents-{i:02}"), ..base.clone() }).collect();
    let mut w = world(set);
    let store = Arc::new(HookedStore::slow(w.store.clone()));
    w.ctx.store = store.clone();
    let out = evaluate(&w.ctx, None, "schedule").await;
    let names: Vec<_> = out.iter().map(|o| o.autoscale_config.clone()).collect();
    let expected: Vec<_> = (0..20).map(|i| format!("agents-{i:02}")).collect();
    assert_eq!(names, expected, "outcomes come back in the configs' order");
    let Hook::Slow { peak, .. } = &store.hook else { unreachable!() };
    assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), w.ctx.tuning.evaluation_concurrency);
    // Every config wants VMs; together they get exactly the provider's cap.
    assert_eq!(w.store.count_owned("prov").await.unwrap(), 5);
    assert_eq!(out.iter().map(|o| o.claimed.len()).sum::<usize>(), 5);
    assert!(out.iter().all(|o| o.result.is_ok()), "{out:?}");
}

// ---- server rotation ----

/// One evaluation of the only config: its plan and the claims written.
async fn one(w: &World) -> (crate::engine::Plan, Vec<ClaimId>) {
    let o = evaluate(&w.ctx, None, "test").await.into_iter().next().unwrap();
    (o.result.unwrap(), o.claimed)
}

#[tokio::test]
async fn rotation_claims_one_replacement_then_drains_and_deletes_the_old_vm_after_its_session() {
    let mut set = configs(5, 2.0);
    set.autoscale_configs[0].rotate_servers_in_days = Some(1);
    set.autoscale_configs[0].rotate_servers_pre_warm_minutes = Some(60);
    let w = world(set);
    // Day one: one agent for the standby, up and serving with a session.
    let (_, claimed) = one(&w).await;
    assert_eq!(claimed.len(), 1);
    let old_id = claimed[0].clone();
    provision_pending(&w.ctx).await;
    let old = w.store.get(&old_id).await.unwrap().unwrap();
    check_in(&w, &old, false);
    one(&w).await;
    w.kasm.start_session("k1", &old.kasm_server_id, Resources::new(1.0, 1024.0, 0.0));

    // 23 hours later: the replacement is claimed, naming the VM it replaces — once.
    w.clock.advance(Duration::hours(23));
    check_in(&w, &old, true);
    let (plan, claimed) = one(&w).await;
    assert_eq!(plan.replacements, vec![old_id.clone()], "{:#?}", plan.reasons);
    assert_eq!(claimed.len(), 1);
    let new = w.store.get(&claimed[0]).await.unwrap().unwrap();
    assert_eq!(new.replaces.as_ref(), Some(&old_id));
    let (plan, claimed) = one(&w).await;
    assert!(claimed.is_empty() && plan.create == 0, "a second replacement: {:#?}", plan.reasons);
    provision_pending(&w.ctx).await;
    let new = w.store.get(&new.id).await.unwrap().unwrap();
    check_in(&w, &new, false);
    one(&w).await;
    assert_eq!(w.store.get(&new.id).await.unwrap().unwrap().state, InstanceState::Running);

    // One day old: drained (disabled) although it has a session; deleted only once it ended.
    w.clock.advance(Duration::hours(1));
    check_in(&w, &old, true);
    check_in(&w, &new, true);
    let (plan, _) = one(&w).await;
    assert!(
        plan.actions.iter().any(|a| matches!(a, crate::engine::Action::Drain { claim, replaced_by: Some(n), .. } if claim == &old_id && n == &new.id)),
        "{:?} {:#?}",
        plan.actions,
        plan.reasons
    );
    assert_eq!(w.store.get(&old_id).await.unwrap().unwrap().state, InstanceState::Draining);
    assert!(!w.kasm.server(&old.kasm_server_id).unwrap().enabled, "the old agent takes no new sessions");
    let rep = reap(&w.ctx).await;
    assert_eq!(rep.waiting_for_sessions, vec![old_id.clone()]);
    w.kasm.end_session("k1");
    let rep = reap(&w.ctx).await;
    assert_eq!(rep.deleted, vec![old_id.clone()]);
    assert_eq!(w.provider.vms().len(), 1, "only the replacement is left");
}

// ---- inactive schedules ----

#[tokio::test]
async fn an_inactive_schedule_disables_every_vm_deletes_each_once_empty_and_reenables_the_busy_one_after() {
    use crate::config::{Schedule, Weekday};
    let mut set = configs(5, 8.0);
    // The world's clock starts Monday 2026-01-05 09:00 UTC.
    set.schedules = vec![Schedule {
        autoscale_config: "agents".into(),
        days_of_the_week: vec![Weekday::Monday, Weekday::Tuesday],
        active_start_time: "08:00".into(),
        active_end_time: "18:00".into(),
        timezone: "UTC".into(),
        minimum_instances: 0,
    }];
    let w = world(set);
    let (_, claimed) = one(&w).await;
    assert_eq!(claimed.len(), 2);
    provision_pending(&w.ctx).await;
    let vms: Vec<Instance> = {
        let mut v = Vec::new();
        for id in &claimed {
            v.push(w.store.get(id).await.unwrap().unwrap());
        }
        v
    };
    for v in &vms {
        check_in(&w, v, false);
    }
    one(&w).await;
    let (busy, idle) = (&vms[0], &vms[1]);
    w.kasm.start_session("k1", &busy.kasm_server_id, Resources::new(1.0, 1024.0, 0.0));
    // A third VM is still booting when the window closes.
    let late = put_claim(&w).await;
    provision(&w.ctx, &late.id).await.unwrap();
    let late = w.store.get(&late.id).await.unwrap().unwrap();

    // 19:00: outside the schedule. Every VM is disabled, busy or idle; the late one is never enabled.
    w.clock.advance(Duration::hours(10));
    for v in [busy, idle, &late] {
        let enabled = v.id != late.id;
        check_in(&w, v, enabled);
    }
    let (plan, claimed) = one(&w).await;
    assert!(claimed.is_empty() && plan.create == 0, "{:#?}", plan.reasons);
    for v in [busy, idle, &late] {
        assert_eq!(w.store.get(&v.id).await.unwrap().unwrap().state, InstanceState::Draining, "{}", v.id);
        assert!(!w.kasm.server(&v.kasm_server_id).unwrap().enabled, "{} still takes sessions", v.id);
    }
    let rep = reap(&w.ctx).await;
    assert_eq!(rep.waiting_for_sessions, vec![busy.id.clone()]);
    assert_eq!(rep.deleted.len(), 2, "{rep:?}");
    assert_eq!(w.provider.vms().len(), 1, "the VM with a session was deleted");

    // Tuesday 08:30: active again. The busy VM, still draining, is re-enabled before anything is
    // created, and the scale-up leaves no downscale clock running.
    w.clock.advance(Duration::minutes(13 * 60 + 30));
    check_in(&w, busy, false);
    let (plan, claimed) = one(&w).await;
    assert!(
        plan.actions.iter().any(|a| matches!(a, crate::engine::Action::Undrain { claim, .. } if claim == &busy.id)),
        "{:?} {:#?}",
        plan.actions,
        plan.reasons
    );
    assert_eq!(w.store.get(&busy.id).await.unwrap().unwrap().state, InstanceState::Running);
    assert!(w.kasm.server(&busy.kasm_server_id).unwrap().enabled);
    assert_eq!(claimed.len(), 1, "8 standby cores: the busy VM gives 4, one more VM: {:#?}", plan.reasons);
    let control = w.store.control("agents").await.unwrap().value;
    assert_eq!(control.request_downscale_at, None);
    assert_eq!(control.last_provision, Some(w.clock.now()));
}

// ---------- staging configs and queued requests (issue 23 points 1 and 2) ----------

fn kasm_staging(
    id: &str,
    autoscale_id: Option<&str>,
    autoscale_name: Option<&str>,
    zone: &str,
) -> crate::kasm::KasmStagingConfig {
    crate::kasm::KasmStagingConfig {
        staging_config_id: id.into(),
        zone_id: zone.into(),
        server_pool_id: None,
        autoscale_config_id: autoscale_id.map(str::to_string),
        autoscale_config_name: autoscale_name.map(str::to_string),
        image_id: format!("img-{id}"),
        image_name: Some(format!("Image {id}")),
        num_sessions: 3,
        image_size: Resources::new(2.0, 2000.0, 0.0),
    }
}

fn staged_session(kasm_id: &str, staging: &str) -> crate::kasm::KasmSession {
    crate::kasm::KasmSession {
        kasm_id: kasm_id.into(),
        server_id: "somewhere".into(),
        status: "running".into(),
        is_standby: true,
        staging_config_id: Some(staging.into()),
        ..Default::default()
    }
}

#[test]
fn kasm_staging_configs_link_by_kasm_id_else_by_name_and_zone() {
    let mut cfg = AutoscaleConfig::docker_agent("agents", "prov");
    let kasm = vec![
        kasm_staging("by-id", Some("AAAA-1111"), Some("renamed in Kasm"), "zone"),
        kasm_staging("other-id", Some("bbbb2222"), Some("agents"), "zone"),
        kasm_staging("no-config", None, None, "zone"),
        kasm_staging("other-zone", Some("cccc3333"), Some("agents"), "elsewhere"),
    ];
    let sessions = vec![
        staged_session("k1", "by-id"),
        staged_session("k2", "BY-ID"),
        crate::kasm::KasmSession { is_standby: false, ..staged_session("k3", "by-id") },
    ];
    // With Kasm's id: that id decides (case and dashes aside), whatever the names say.
    cfg.autoscale_config_id = Some("aaaa1111".into());
    let (d, notes) = evaluate::staging_of(&cfg, &[], &evaluate::KasmView::new(vec![], sessions.clone(), kasm.clone()));
    assert!(notes.is_empty());
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].staging_config_id, "by-id");
    assert_eq!(d[0].current_sessions, 2, "sessions with is_standby naming it; a user's session is not staged");
    assert_eq!(d[0].image, "Image by-id");
    // Without: Kasm's name of its autoscale config, in the same zone.
    cfg.autoscale_config_id = None;
    let (d, _) = evaluate::staging_of(&cfg, &[], &evaluate::KasmView::new(vec![], sessions.clone(), kasm.clone()));
    let ids: Vec<&str> = d.iter().map(|s| s.staging_config_id.as_str()).collect();
    assert_eq!(ids, ["other-id"]);
}

#[test]
fn staging_configs_of_the_files_count_unless_kasm_stages_that_image_in_that_zone() {
    let cfg = AutoscaleConfig::docker_agent("agents", "prov");
    let file = |image: &str| crate::config::StagingConfig {
        autoscale_config: "agents".into(),
        staging_config_id: None,
        image_id: image.into(),
        num_sessions: 2,
        image_cores: 1.0,
        image_memory_mb: 1000.0,
        image_gpus: 0.0,
        zone_id: None,
        server_pool_id: None,
    };
    let files = vec![
        file("img-a"),
        file("img-mine"),
        crate::config::StagingConfig { autoscale_config: "other".into(), ..file("img-x") },
    ];
    let kasm = vec![kasm_staging("a", None, None, "zone")];
    let sessions = vec![staged_session("k1", "agents/img-mine")];
    let (d, notes) = evaluate::staging_of(&cfg, &files, &evaluate::KasmView::new(vec![], sessions, kasm));
    let ids: Vec<&str> = d.iter().map(|s| s.staging_config_id.as_str()).collect();
    assert_eq!(
        ids,
        ["agents/img-mine"],
        "img-a is Kasm's (one staging config per zone and image); img-x is another config's"
    );
    assert_eq!(d[0].current_sessions, 1);
    assert_eq!(d[0].image_size, Resources::new(1.0, 1000.0, 0.0));
    assert_eq!(notes.len(), 1);
    assert!(notes[0].contains("Kasm's staging config a stages image img-a"), "{notes:?}");
}

#[test]
fn queued_requests_belong_to_the_config_kasm_queued_them_for_and_wait_on_no_record() {
    let mut cfg = AutoscaleConfig::docker_agent("agents", "prov");
    let req = |id: &str, server: &str, autoscale: &str, status: &str| crate::kasm::KasmSession {
        kasm_id: id.into(),
        server_id: server.into(),
        status: status.into(),
        autoscale_config_id: Some(autoscale.into()),
        ..Default::default()
    };
    let mine = KasmServer {
        server_id: "mine".into(),
        kind: ServerKind::Agent,
        hostname: None,
        public_ip: None,
        zone_id: "zone".into(),
        friendly_name: None,
        autoscale_config_id: None,
        server_pool_id: Some("pool".into()),
        enabled: true,
        operational_status: "running".into(),
        last_reported: None,
        reported: Resources::default(),
        overridden: Resources::default(),
        allocated: Resources::default(),
        max_sessions: None,
        agent_installed: false,
    };
    let sessions = vec![
        req("waiting", "", "ID-1", "requested"),
        req("provisioning", "", "id1", "provisioning"),
        req("on-mine", "mine", "id1", "assigned"),
        req("gone", "no-such-record", "id1", "assigned"),
        req("running", "", "id1", "running"),
        req("theirs", "", "id2", "requested"),
    ];
    assert!(
        evaluate::queued_for(&cfg, &evaluate::KasmView::new(vec![mine.clone()], sessions.clone(), vec![])).is_empty(),
        "no Kasm id, no link"
    );
    cfg.autoscale_config_id = Some("id-1".into());
    let got: Vec<String> = evaluate::queued_for(&cfg, &evaluate::KasmView::new(vec![mine], sessions, vec![]))
        .into_iter()
        .map(|k| k.kasm_id)
        .collect();
    assert_eq!(got, ["waiting", "provisioning", "gone"], "the one on a listed record waits for that record");
}

#[tokio::test]
async fn an_evaluation_provisions_for_kasms_staging_configs_and_queued_requests() {
    let mut set = configs(10, 0.0);
    set.autoscale_configs[0].autoscale_config_id = Some("kasm-agents".into());
    let w = world(set);
    // Nothing asked for: nothing created.
    let out = evaluate(&w.ctx, None, "test").await;
    assert_eq!(out[0].claimed.len(), 0);
    // Kasm stages 3 sessions of 2 cores for this config (by id): 6 cores on VMs of 4 → 2 VMs.
    w.kasm.upsert_staging_config(kasm_staging("s1", Some("KASM-AGENTS"), None, "zone"));
    let out = evaluate(&w.ctx, None, "test").await;
    let plan = out[0].result.as_ref().unwrap();
    assert_eq!(out[0].claimed.len(), 2, "{:#?}", plan.reasons);
    assert!(
        plan.reasons.iter().any(|r| r.contains("staging config s1 (Image s1): 3 desired, 0 staged")),
        "{:#?}",
        plan.reasons
    );
    // A request Kasm queued for this config adds 2 more cores: 6 + 2 = 8 free needed, 8 pending → nothing more.
    w.kasm.queue_session("q1", "kasm-agents", Resources::new(2.0, 1000.0, 0.0));
    let out = evaluate(&w.ctx, None, "test").await;
    assert_eq!(out[0].claimed.len(), 0, "{:#?}", out[0].result.as_ref().unwrap().reasons);
    // Two more: 12 cores, 8 pending → one more VM.
    w.kasm.queue_session("q2", "kasm-agents", Resources::new(2.0, 1000.0, 0.0));
    w.kasm.queue_session("q3", "kasm-agents", Resources::new(2.0, 1000.0, 0.0));
    let out = evaluate(&w.ctx, None, "test").await;
    let plan = out[0].result.as_ref().unwrap();
    assert_eq!(out[0].claimed.len(), 1, "{:#?}", plan.reasons);
    assert_eq!(plan.summary.queued_requests, 3);
}
