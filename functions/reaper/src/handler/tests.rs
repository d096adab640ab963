//! The handler over the in-memory ports, fed the payloads in `events/reaper/`.

use chrono::{TimeZone, Utc};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::*;
use shared::app::Tuning;
use shared::clock::VirtualClock;
use shared::config::{ConfigFile, ConfigSet};
use shared::kasm::memory::MemoryKasm;
use shared::model::{ClaimId, Instance, InstanceState, OsFamily};
use shared::ports::{Store, VmProvider};
use shared::providers::memory::MemoryProvider;
use shared::secrets::StaticSecrets;
use shared::store::{MemoryStore, moved};

fn json(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/reaper").join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// A fixture read the way the function reads its payload: into its typed event.
fn event(name: &str) -> Event {
    read(json(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// What the function answers to a fixture, as the JSON the caller receives.
async fn invoke(ctx: &Ctx, name: &str) -> Value {
    serde_json::to_value(handle(ctx, event(name), &Metrics::default()).await).unwrap()
}

fn world() -> (Ctx, Arc<MemoryStore>, Arc<MemoryProvider>) {
    let doc = r#"
autoscale_configs:
  - {autoscale_config_name: agents, server_pool_id: pool, zone_id: zone, vm_provider_config: prov}
vm_provider_configs:
  - {provider: proxmox, name: prov, max_instances: 10, host: "pve:8006", username: kasm@pve,
     token_name: t, token_value: "env:PVE_TOKEN", verify_ssl: true, vmid_range_lower: 9000,
     vmid_range_upper: 9099, full_clone: true, template_name: tpl, cluster_node_name: pve1,
     vm_cores: 4, vm_memory: 8, installed_os_type: linux, startup_script_path: /tmp/s.sh}
"#;
    let f: ConfigFile = serde_yaml_ng::from_str(doc).unwrap();
    let mut set = ConfigSet::default();
    set.merge(f);
    let store = Arc::new(MemoryStore::new());
    let provider = Arc::new(MemoryProvider::new());
    let mut providers: HashMap<String, Arc<dyn VmProvider>> = HashMap::new();
    providers.insert("prov".into(), provider.clone());
    let ctx = Ctx {
        store: store.clone(),
        kasm: Arc::new(MemoryKasm::new()),
        secrets: Arc::new(StaticSecrets::default()),
        clock: Arc::new(VirtualClock::new(Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap())),
        providers: providers.into(),
        dns: Default::default(),
        configs: Arc::new(set),
        holder: "test".into(),
        tuning: Tuning::default(),
    };
    (ctx, store, provider)
}

/// A claim whose VM exists and which the evaluator marked for draining.
async fn draining_vm(ctx: &Ctx, store: &MemoryStore) -> ClaimId {
    let now = ctx.clock.now();
    let c = Instance::new_claim(ClaimId::generate(now), "agents", "prov", "proxmox", OsFamily::Linux, now);
    assert!(store.try_claim(&c, 10).await.unwrap());
    app::provision(ctx, &c.id).await.unwrap();
    let booted = store.get(&c.id).await.unwrap().unwrap();
    let running = store.update(&moved(&booted, InstanceState::Running, now).unwrap()).await.unwrap();
    store.update(&moved(&running, InstanceState::Draining, now).unwrap()).await.unwrap();
    c.id
}

#[test]
fn every_fixture_reads_as_its_typed_event() {
    assert!(matches!(event("schedule-every-minute.json"), Event::Schedule(e) if e.detail_type == "Scheduled Event"));
    assert!(matches!(event("dynamodb-stream-draining.json"), Event::Stream(b) if b.records.len() == 1));
    assert!(matches!(event("direct-reap-now.json"), Event::Direct));
    let n = std::fs::read_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/reaper")).unwrap().count();
    assert_eq!(n, 3, "a new fixture: add it above");
}

#[test]
fn payloads_it_does_not_take_are_refused_with_the_field() {
    for (payload, says) in [
        (serde_json::json!({"now": true}), "direct invocation: unknown field `now`"),
        (serde_json::json!({"Records": [{"eventName": "MODIFY"}]}), "DynamoDB stream event: Records[0]: missing field"),
        (serde_json::json!(null), "unrecognised event: expected a JSON object, got null"),
    ] {
        let e = read(payload.clone()).expect_err("refused");
        assert!(e.0.starts_with(says) && e.0.contains("the reaper takes"), "{payload}: {e}");
    }
}

#[tokio::test]
async fn every_trigger_runs_a_reaper_pass() {
    for name in ["schedule-every-minute.json", "dynamodb-stream-draining.json", "direct-reap-now.json"] {
        let (ctx, store, provider) = world();
        let id = draining_vm(&ctx, &store).await;
        let out = invoke(&ctx, name).await;
        assert_eq!(out["deleted"][0], id.to_string(), "{name}: {out}");
        assert!(provider.vms().is_empty(), "{name}");
        assert_eq!(out.get("batchItemFailures").is_some(), name.starts_with("dynamodb"), "{name}: {out}");
    }
}

#[tokio::test]
async fn a_duplicate_stream_batch_is_a_no_op() {
    let (ctx, store, provider) = world();
    draining_vm(&ctx, &store).await;
    invoke(&ctx, "dynamodb-stream-draining.json").await;
    let again = invoke(&ctx, "dynamodb-stream-draining.json").await;
    assert_eq!(again["deleted"].as_array().unwrap().len(), 0, "{again}");
    assert_eq!(provider.delete_calls(), 1);
}

#[tokio::test]
async fn a_delete_the_provider_refuses_is_counted_by_class_for_the_embedded_metrics() {
    let (ctx, store, provider) = world();
    let id = draining_vm(&ctx, &store).await;
    provider.fail_next_deletes(
        shared::providers::ProviderError::Transient { provider: "memory", message: "503 from the API".into() },
        1,
    );
    let metrics = Metrics::default();
    let out = serde_json::to_value(handle(&ctx, event("direct-reap-now.json"), &metrics).await).unwrap();
    assert_eq!(out["deleted"].as_array().unwrap().len(), 0, "{out}");
    assert!(out["errors"][0].as_str().unwrap().contains("failed to destroy"), "{out}");
    let snap = metrics.snapshot(&[], ctx.clock.now());
    assert_eq!(snap.provider_errors.get("transient"), Some(&1), "{:?}", snap.provider_errors);
    let docs = shared::wiring::emf::documents("KasmAutoscale", "test", 0, &snap);
    let errors: Vec<_> = docs.iter().filter(|d| d.get("ProviderErrors").is_some()).collect();
    assert!(errors.iter().any(|d| d["Class"] == "transient" && d["ProviderErrors"].as_f64() == Some(1.0)), "{docs:?}");

    // The next pass deletes the VM and counts nothing.
    let metrics = Metrics::default();
    let out = serde_json::to_value(handle(&ctx, event("direct-reap-now.json"), &metrics).await).unwrap();
    assert_eq!(out["deleted"][0], id.to_string(), "{out}");
    assert!(metrics.snapshot(&[], ctx.clock.now()).provider_errors.is_empty());
}
