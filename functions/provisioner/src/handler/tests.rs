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

fn event(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/provisioner").join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
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
    let out = handle(&ctx, event("dynamodb-stream-two-new-claims.json")).await;
    assert_eq!(out["batchItemFailures"], serde_json::json!([]), "{out}");
    assert_eq!(provider.vms().len(), 2);
    // The same batch delivered again (Lambda retries, duplicate delivery): nothing more is created.
    let again = handle(&ctx, event("dynamodb-stream-two-new-claims.json")).await;
    assert_eq!(again["batchItemFailures"], serde_json::json!([]));
    assert_eq!(provider.vms().len(), 2);
    assert_eq!(provider.create_calls(), 2);
}

#[tokio::test]
async fn a_malformed_record_is_reported_and_does_not_block_the_others() {
    let (ctx, _store, provider) = world().await;
    let out = handle(&ctx, event("dynamodb-stream-with-malformed-record.json")).await;
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
    let out = handle(&ctx, event("dynamodb-stream-two-new-claims.json")).await;
    assert_eq!(out["batchItemFailures"].as_array().unwrap().len(), 2, "{out}");
    assert!(provider.vms().is_empty());
}

#[tokio::test]
async fn direct_invocations_provision_named_or_all_pending_claims() {
    let (ctx, _store, provider) = world().await;
    let out = handle(&ctx, event("direct-claim-ids.json")).await;
    assert_eq!(out["provisioned"][0]["claim"], A, "{out}");
    assert!(out["provisioned"][0]["created"].is_string(), "{out}");
    assert_eq!(provider.vms().len(), 1);
    let out = handle(&ctx, event("direct-all-pending.json")).await;
    assert_eq!(out["provisioned"].as_array().unwrap().len(), 1, "only B was still pending: {out}");
    assert_eq!(provider.vms().len(), 2);
}

#[test]
fn the_store_s_own_sample_record_parses() {
    let r = &event("dynamodb-stream-new-claim.json")["Records"][0];
    let c = change_from_stream_record(r).unwrap().unwrap();
    assert_eq!(c.new_state, InstanceState::Requested);
}
