//! A scheduled evaluation of many autoscale configs against the DynamoDB store on moto, with every
//! DynamoDB request counted: the world behind the per-config call budget test and the
//! `evaluate_moto` benchmark.
//!
//! The VM side is in memory ([`MemoryProvider`], [`MemoryKasm`]); only the store is DynamoDB.
//! [`EvalWorld::reach_steady_state`] walks every config through a real cycle (evaluate claims a VM,
//! the provisioner creates it, its agent checks in, evaluate activates it) until an evaluation
//! creates and destroys nothing and changes no control record.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use chrono::{TimeZone, Utc};
use shared::app::{self, Ctx, EvalOutcome, Tuning};
use shared::clock::{Clock, VirtualClock};
use shared::config::ConfigSet;
use shared::kasm::memory::MemoryKasm;
use shared::kasm::{KasmServer, ServerKind};
use shared::model::{InstanceState, Resources};
use shared::providers::memory::MemoryProvider;
use shared::secrets::StaticSecrets;
use shared::store::InstanceFilter;
use shared::store::dynamodb::{DynamoDbStore, create_table, table_definition};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::moto::Moto;

/// Counts DynamoDB requests by operation (`x-amz-target` without the API version), as sent, and
/// the time from sending each to its response.
#[derive(Debug, Clone, Default)]
pub struct DynamoCalls(Arc<Mutex<BTreeMap<String, OpStats>>>);

/// Requests of one operation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OpStats {
    /// How many were sent.
    pub count: u64,
    /// Time from sending to the response, summed over those answered.
    pub waited: Duration,
    /// Of those sent, how many the server answered with a 5xx (the SDK sends them again).
    pub server_errors: u64,
}

/// A request in flight: its operation and when it was sent.
#[derive(Debug, Clone)]
struct Sent(String, Instant);

impl Storable for Sent {
    type Storer = StoreReplace<Self>;
}

impl Intercept for DynamoCalls {
    fn name(&self) -> &'static str {
        "dynamodb-call-counter"
    }

    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = ctx.request().headers().get("x-amz-target").unwrap_or("?");
        let op = target.rsplit('.').next().unwrap_or(target).to_string();
        self.0.lock().expect("call counter").entry(op.clone()).or_default().count += 1;
        cfg.interceptor_state().store_put(Sent(op, Instant::now()));
        Ok(())
    }

    fn read_before_deserialization(
        &self,
        ctx: &BeforeDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(Sent(op, at)) = cfg.load::<Sent>() {
            let mut calls = self.0.lock().expect("call counter");
            let stats = calls.entry(op.clone()).or_default();
            stats.waited += at.elapsed();
            if ctx.response().status().is_server_error() {
                stats.server_errors += 1;
            }
        }
        Ok(())
    }
}

impl DynamoCalls {
    /// Requests so far, by operation.
    pub fn by_operation(&self) -> BTreeMap<String, OpStats> {
        self.0.lock().expect("call counter").clone()
    }

    /// Requests so far.
    pub fn total(&self) -> u64 {
        self.by_operation().values().map(|s| s.count).sum()
    }

    /// Forgets the requests so far.
    pub fn reset(&self) {
        self.0.lock().expect("call counter").clear();
    }
}

/// `configs` autoscale configs (`asc-000`, ...) in one zone, each its own pool, spread over
/// `providers` provider configs (`prov-0`, ...): each wants 4 standby cores, one 4-core VM.
pub fn config_set(configs: usize, providers: usize) -> ConfigSet {
    let providers = providers.max(1);
    let mut doc = String::from("autoscale_configs:\n");
    for i in 0..configs {
        doc.push_str(&format!(
            "  - autoscale_config_name: asc-{i:03}\n    server_pool_id: pool-{i:03}\n    zone_id: zone\n    \
             vm_provider_config: prov-{}\n    standby_cores: 4\n    agent_cores_override: 4\n    \
             agent_memory_override_gb: 8\n    downscale_backoff: 600\n",
            i % providers
        ));
    }
    doc.push_str("vm_provider_configs:\n");
    for p in 0..providers {
        doc.push_str(&format!(
            "  - provider: proxmox\n    name: prov-{p}\n    max_instances: 1000\n    host: pve.example.com:8006\n    \
             username: kasm@pve\n    token_name: autoscale\n    token_value: env:PVE_TOKEN\n    verify_ssl: true\n    \
             vmid_range_lower: 9000\n    vmid_range_upper: 9999\n    full_clone: true\n    template_name: ubuntu-kasm\n    \
             cluster_node_name: pve1\n    vm_cores: 4\n    vm_memory: 8\n    installed_os_type: linux\n    \
             startup_script_path: /tmp/kasm-startup.sh\n    startup_script: \"#!/bin/sh\\necho {{server_id}}\"\n"
        ));
    }
    let file = shared::config::parse_config(&doc, "evaluation world").expect("the generated configs parse");
    let mut set = ConfigSet::default();
    set.merge(file);
    set
}

/// The DynamoDB store on a fresh moto table, in-memory Kasm and VMs, and the request counter.
#[derive(Debug)]
pub struct EvalWorld {
    /// The handler context (store: DynamoDB).
    pub ctx: Ctx,
    /// Every request the store sends.
    pub calls: DynamoCalls,
    /// The Kasm cluster.
    pub kasm: Arc<MemoryKasm>,
    /// The clock (fixed unless advanced).
    pub clock: Arc<VirtualClock>,
    /// The store's table.
    pub table: String,
}

impl EvalWorld {
    /// A fresh table as [`create_table`] makes it and `configs` autoscale configs over `providers`
    /// provider configs; nothing claimed.
    pub async fn new(moto: &Moto, configs: usize, providers: usize) -> EvalWorld {
        Self::build(moto, configs, providers, true).await
    }

    /// As [`EvalWorld::new`], on a table without a stream. moto deep-copies the whole table, stream
    /// records included, on every TransactWriteItems (its rollback snapshot), so with a stream each
    /// transaction costs time and memory in proportion to every write so far; DynamoDB's do not. The
    /// store itself never reads the stream.
    pub async fn new_without_stream(moto: &Moto, configs: usize, providers: usize) -> EvalWorld {
        Self::build(moto, configs, providers, false).await
    }

    async fn build(moto: &Moto, configs: usize, providers: usize, stream: bool) -> EvalWorld {
        static N: AtomicU32 = AtomicU32::new(0);
        let sdk = moto.sdk_config().await;
        let table = format!(
            "eval-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        let plain = aws_sdk_dynamodb::Client::new(&sdk);
        if stream {
            create_table(&plain, &table).await.expect("create table");
        } else {
            let def = table_definition();
            plain
                .create_table()
                .table_name(&table)
                .set_attribute_definitions(Some(def.attribute_definitions))
                .set_key_schema(Some(def.key_schema))
                .billing_mode(def.billing_mode)
                .send()
                .await
                .expect("create table");
        }
        let calls = DynamoCalls::default();
        let client = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(calls.clone()).build(),
        );
        let set = config_set(configs, providers);
        let provider = Arc::new(MemoryProvider::new());
        let mut providers_by_name: HashMap<String, Arc<dyn shared::ports::VmProvider>> = HashMap::new();
        for p in &set.vm_provider_configs {
            providers_by_name.insert(p.name().to_string(), provider.clone());
        }
        let clock = Arc::new(VirtualClock::new(Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()));
        let kasm = Arc::new(MemoryKasm::new());
        let ctx = Ctx {
            store: Arc::new(DynamoDbStore::new(client, table.clone())),
            kasm: kasm.clone(),
            secrets: Arc::new(StaticSecrets::default()),
            clock: clock.clone(),
            providers: providers_by_name.into(),
            dns: Default::default(),
            configs: Arc::new(set),
            holder: "evaluator-1".into(),
            tuning: Tuning::default(),
        };
        EvalWorld { ctx, calls, kasm, clock, table }
    }

    /// One scheduled evaluation of every config.
    pub async fn evaluate(&self) -> Vec<EvalOutcome> {
        app::evaluate(&self.ctx, None, "schedule").await
    }

    /// Every config gets its VM up and running, then one evaluation confirms nothing is left to do.
    pub async fn reach_steady_state(&self) {
        assert_done(&self.evaluate().await, "the first evaluation");
        for (id, r) in app::provision_pending(&self.ctx).await {
            r.unwrap_or_else(|e| panic!("provisioning {id} failed: {e}"));
        }
        let booting = InstanceFilter { states: vec![InstanceState::Booting], ..Default::default() };
        let booted = self.ctx.store.list(&booting).await.expect("list");
        assert_eq!(booted.len(), self.ctx.configs.autoscale_configs.len(), "one VM per config");
        for inst in &booted {
            let cfg = self.ctx.configs.autoscale(&inst.autoscale_config).expect("its config");
            // Registered disabled, as Kasm does without auto_agent: the evaluator enables it.
            self.kasm.upsert_server(KasmServer {
                server_id: inst.kasm_server_id.clone(),
                kind: ServerKind::Agent,
                hostname: Some(inst.vm_name.clone()),
                public_ip: None,
                zone_id: cfg.zone_id.clone(),
                friendly_name: None,
                autoscale_config_id: None,
                server_pool_id: Some(cfg.server_pool_id.clone()),
                enabled: false,
                operational_status: "running".into(),
                last_reported: Some(self.clock.now()),
                reported: Resources::new(4.0, 8192.0, 0.0),
                overridden: Resources::default(),
                allocated: Resources::default(),
                max_sessions: None,
                agent_installed: false,
            });
        }
        assert_done(&self.evaluate().await, "the activating evaluation");
        let running = InstanceFilter { states: vec![InstanceState::Running], ..Default::default() };
        let n = self.ctx.store.list(&running).await.expect("list").len();
        assert_eq!(n, self.ctx.configs.autoscale_configs.len(), "every config's VM runs");
        let controls = self.control_versions().await;
        let out = self.evaluate().await;
        assert_done(&out, "a steady-state evaluation");
        for o in &out {
            let plan = o.result.as_ref().expect("evaluated");
            assert!(
                plan.create == 0 && plan.actions.is_empty(),
                "{} is not steady: create {}, actions {:?}, reasons {:?}",
                o.autoscale_config,
                plan.create,
                plan.actions,
                plan.reasons
            );
        }
        assert_eq!(self.control_versions().await, controls, "a steady-state evaluation wrote a control record");
    }

    async fn control_versions(&self) -> Vec<u64> {
        let mut v = vec![];
        for c in &self.ctx.configs.autoscale_configs {
            v.push(self.ctx.store.control(&c.autoscale_config_name).await.expect("control").version);
        }
        v
    }
}

/// Every config was evaluated (none failed, none skipped).
fn assert_done(out: &[EvalOutcome], what: &str) {
    for o in out {
        if let Err(e) = &o.result {
            panic!("{what}: {} failed: {e}", o.autoscale_config);
        }
    }
}
