//! The handler over the in-memory ports, fed the payloads in `events/provisioner/`.

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
use shared::model::{Instance, OsFamily};
use shared::ports::{Store, VmProvider};
use shared::providers::memory::MemoryProvider;
use shared::secrets::StaticSecrets;
use shared::store::MemoryStore;

const A: &str = "01kjb7x2m4n6p8q0r2s4t6v8w0";
const B: &str = "01kjb7x2m4n6p8q0r2s4t6v8w1";

fn json(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/provisioner").join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// A fixture read the way the function reads its payload: into its typed event.
fn event(name: &str) -> Event {
    Event::from_json(json(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// What the function answers to a fixture, as the JSON the caller receives.
async fn invoke(ctx: &Ctx, name: &str) -> Value {
    serde_json::to_value(handle(ctx, event(name), &shared::daemon::Metrics::default()).await).unwrap()
}

async fn world() -> (Ctx, Arc<MemoryStore>, Arc<MemoryProvider>) {
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
    let now = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
    for id in [A, B] {
        let c = Instance::new_claim(ClaimId(id.into()), "agents", "prov", "proxmox", OsFamily::Linux, now);
        assert!(store.try_claim(&c, 10).await.unwrap());
    }
    let ctx = Ctx {
        store: store.clone(),
        kasm: Arc::new(MemoryKasm::new()),
        secrets: Arc::new(StaticSecrets::default()),
        clock: Arc::new(VirtualClock::new(now)),
        providers: providers.into(),
        dns: Default::default(),
        configs: Arc::new(set),
        holder: "test".into(),
        tuning: Tuning::default(),
    };
    (ctx, store, provider)
}

#[tokio::test]
async fn a_stream_batch_provisions_each_new_claim_once() {
    let (ctx, _store, provider) = world().await;
    let out = invoke(&ctx, "dynamodb-stream-two-new-claims.json").await;
    assert_eq!(out["batchItemFailures"], serde_json::json!([]), "{out}");
    assert_eq!(provider.vms().len(), 2);
    // The same batch delivered again (Lambda retries, duplicate delivery): nothing more is created.
    let again = invoke(&ctx, "dynamodb-stream-two-new-claims.json").await;
    assert_eq!(again["batchItemFailures"], serde_json::json!([]));
    assert_eq!(provider.vms().len(), 2);
    assert_eq!(provider.create_calls(), 2);
}

#[tokio::test]
async fn a_malformed_record_is_reported_and_does_not_block_the_others() {
    let (ctx, _store, provider) = world().await;
    let out = invoke(&ctx, "dynamodb-stream-with-malformed-record.json").await;
    let failures = out["batchItemFailures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{out}");
    assert_eq!(failures[0]["itemIdentifier"], "222200000000000000000004");
    assert_eq!(provider.vms().len(), 2, "the records around the bad one were provisioned");
}

#[tokio::test]
async fn a_store_failure_is_reported_for_retry() {
    let (mut ctx, _store, provider) = world().await;
    // A claim the store does not know (deleted under our feet): a retry may find it; it is reported.
    ctx.store = Arc::new(MemoryStore::new());
    let out = invoke(&ctx, "dynamodb-stream-two-new-claims.json").await;
    assert_eq!(out["batchItemFailures"].as_array().unwrap().len(), 2, "{out}");
    assert!(provider.vms().is_empty());
}

#[tokio::test]
async fn direct_invocations_provision_named_or_all_pending_claims() {
    let (ctx, _store, provider) = world().await;
    let out = invoke(&ctx, "direct-claim-ids.json").await;
    assert_eq!(out["provisioned"][0]["claim"], A, "{out}");
    assert!(out["provisioned"][0]["created"].is_string(), "{out}");
    assert_eq!(provider.vms().len(), 1);
    let out = invoke(&ctx, "direct-all-pending.json").await;
    assert_eq!(out["provisioned"].as_array().unwrap().len(), 1, "only B was still pending: {out}");
    assert_eq!(provider.vms().len(), 2);
}

#[test]
fn the_store_s_own_sample_record_parses() {
    let Event::Stream(batch) = event("dynamodb-stream-new-claim.json") else { panic!("not a stream batch") };
    let c = change_from_stream_record(&batch.records[0]).unwrap().unwrap();
    assert_eq!(c.new_state, InstanceState::Requested);
}

#[test]
fn every_fixture_reads_as_its_typed_event() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/provisioner");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let ev = event(&name);
        let expected = match name.split('-').next().unwrap() {
            "dynamodb" => matches!(&ev, Event::Stream(b) if !b.records.is_empty()),
            "direct" => matches!(ev, Event::Direct(_)),
            other => panic!("{name}: unknown trigger prefix {other}"),
        };
        assert!(expected, "{name} read as {ev:?}");
        n += 1;
    }
    assert!(n >= 5);
}

#[test]
fn payloads_it_does_not_take_are_refused_with_the_field() {
    for (payload, says) in [
        (serde_json::json!({"claims": [A, 7]}), "direct invocation: claims[1]: invalid type: integer `7`"),
        (serde_json::json!({"claim": [A]}), "direct invocation: unknown field `claim`"),
        (serde_json::json!({"Records": [{"eventName": "INSERT"}]}), "DynamoDB stream event: Records[0]: missing field"),
    ] {
        let e = Event::from_json(payload.clone()).expect_err("refused");
        assert!(e.0.starts_with(says) && e.0.contains("the provisioner takes"), "{payload}: {e}");
    }
    let schedule = serde_json::json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
    let e = Event::from_json(schedule).expect_err("refused");
    assert!(e.0.starts_with("unrecognised event: a schedule trigger"), "{e}");
}
