//! The handler over the in-memory ports, fed every payload in `events/scale-evaluator/`.

use chrono::{TimeZone, Utc};
use secrecy::SecretString;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::*;
use shared::app::Tuning;
use shared::clock::VirtualClock;
use shared::config::{ConfigFile, ConfigSet};
use shared::kasm::memory::MemoryKasm;
use shared::ports::{Store, VmProvider};
use shared::providers::memory::MemoryProvider;
use shared::secrets::StaticSecrets;
use shared::store::{InstanceFilter, MemoryStore};

fn json(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/scale-evaluator").join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A fixture read the way the function reads its payload: into its typed event.
fn event(name: &str) -> Event {
    Event::from_json(json(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// What the function answers, as the JSON the caller receives.
async fn invoke(ctx: &Ctx, keys: &Keys, name: &str) -> Result<Value, HandlerError> {
    handle(ctx, keys, event(name), &shared::daemon::Metrics::default()).await.map(|r| serde_json::to_value(r).unwrap())
}

fn world() -> (Ctx, Keys, Arc<MemoryStore>) {
    let doc = r#"
autoscale_configs:
  - {autoscale_config_name: agents, server_pool_id: pool, zone_id: zone, vm_provider_config: prov,
     standby_cores: 8, agent_cores_override: 4, agent_memory_override_gb: 8}
  - {autoscale_config_name: other, server_pool_id: pool2, zone_id: zone2, vm_provider_config: prov,
     standby_cores: 4, agent_cores_override: 4, agent_memory_override_gb: 8}
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
    let mut providers: HashMap<String, Arc<dyn VmProvider>> = HashMap::new();
    providers.insert("prov".into(), Arc::new(MemoryProvider::new()));
    let ctx = Ctx {
        store: store.clone(),
        kasm: Arc::new(MemoryKasm::new()),
        secrets: Arc::new(StaticSecrets::default()),
        // The fixtures are signed at 2026-03-02T09:00:00Z.
        clock: Arc::new(VirtualClock::new(Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 30).unwrap())),
        providers: providers.into(),
        dns: Default::default(),
        configs: Arc::new(set),
        holder: "test".into(),
        tuning: Tuning::default(),
    };
    let keys = Keys {
        hmac_secret: Some(SecretString::from("fixture-webhook-secret".to_string())),
        hec_token: Some(SecretString::from("fixture-hec-token".to_string())),
        max_body_bytes: 0,
        ..Default::default()
    };
    (ctx, keys, store)
}

async fn claims_of(store: &MemoryStore, config: &str) -> usize {
    store.list(&InstanceFilter { autoscale_config: Some(config.into()), ..Default::default() }).await.unwrap().len()
}

#[test]
fn every_fixture_reads_as_its_typed_event() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/scale-evaluator");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let ev = event(&name);
        let expected = match name.split('-').next().unwrap() {
            "schedule" => matches!(&ev, Event::Schedule(e) if e.detail_type == "Scheduled Event"),
            "webhook" => matches!(&ev, Event::Webhook(r) if r.request_context.http.method.as_deref() == Some("POST")),
            "direct" => matches!(ev, Event::Direct(_)),
            other => panic!("{name}: unknown trigger prefix {other}"),
        };
        assert!(expected, "{name} read as {ev:?}");
        n += 1;
    }
    assert!(n >= 10);
}

#[test]
fn payloads_it_does_not_take_are_refused_with_the_field() {
    for (payload, says) in [
        (serde_json::json!({"autoscale_config": 5}), "direct invocation: autoscale_config: invalid type: integer `5`"),
        (serde_json::json!({"autoscale_confg": "agents"}), "direct invocation: unknown field `autoscale_confg`"),
        (serde_json::json!("agents"), "unrecognised event: expected a JSON object"),
        (serde_json::json!({"Records": []}), "unrecognised event: a DynamoDB stream batch"),
    ] {
        let e = Event::from_json(payload.clone()).expect_err("refused");
        assert!(!e.retryable && e.message.starts_with(says), "{payload}: {e}");
        assert!(e.message.contains("takes an EventBridge scheduled event"), "{e}");
    }
    let mut no_flag = json("webhook-signed-session-created.json");
    no_flag.as_object_mut().unwrap().remove("isBase64Encoded");
    let e = Event::from_json(no_flag).expect_err("refused");
    assert!(e.message.starts_with("Function URL request: missing field `isBase64Encoded`"), "{e}");
}

#[tokio::test]
async fn a_scheduled_event_evaluates_every_config() {
    let (ctx, keys, store) = world();
    let out = invoke(&ctx, &keys, "schedule-every-minute.json").await.unwrap();
    assert_eq!(out["evaluations"].as_array().unwrap().len(), 2, "{out}");
    assert_eq!(claims_of(&store, "agents").await, 2);
    assert_eq!(claims_of(&store, "other").await, 1);
}

#[tokio::test]
async fn direct_invocations_evaluate_one_or_all() {
    let (ctx, keys, store) = world();
    invoke(&ctx, &keys, "direct-one-config.json").await.unwrap();
    assert_eq!(claims_of(&store, "agents").await, 2);
    assert_eq!(claims_of(&store, "other").await, 0);
    let out = invoke(&ctx, &keys, "direct-all-configs.json").await.unwrap();
    assert_eq!(out["evaluations"].as_array().unwrap().len(), 2);
    let err = invoke(&ctx, &keys, "direct-unknown-config.json").await.unwrap_err();
    assert!(!err.retryable && err.message.contains("no-such-config"), "{err}");
}

#[tokio::test]
async fn a_signed_session_webhook_evaluates_its_config() {
    for name in ["webhook-signed-session-created.json", "webhook-signed-base64-body.json"] {
        let (ctx, keys, store) = world();
        let out = invoke(&ctx, &keys, name).await.unwrap();
        assert_eq!(out["statusCode"], 200, "{name}: {out}");
        assert_eq!(claims_of(&store, "agents").await, 2, "{name}");
        assert_eq!(claims_of(&store, "other").await, 0, "{name}: only the named config");
    }
}

#[tokio::test]
async fn rejected_webhooks_change_nothing() {
    for (name, status) in [
        ("webhook-bad-signature.json", 401),
        ("webhook-splunk-hec-bad-token.json", 401),
        ("webhook-signed-malformed-body.json", 400),
    ] {
        let (ctx, keys, store) = world();
        let out = invoke(&ctx, &keys, name).await.unwrap();
        assert_eq!(out["statusCode"], status, "{name}: {out}");
        assert!(store.list(&InstanceFilter::default()).await.unwrap().is_empty(), "{name} created claims");
        assert!(store.decisions(None, 10).await.unwrap().is_empty(), "{name} ran an evaluation");
    }
}

#[tokio::test]
async fn an_expired_signature_is_refused() {
    let (mut ctx, keys, store) = world();
    ctx.clock = Arc::new(VirtualClock::new(Utc.with_ymd_and_hms(2026, 3, 2, 9, 5, 1).unwrap()));
    let out = invoke(&ctx, &keys, "webhook-signed-session-created.json").await.unwrap();
    assert_eq!(out["statusCode"], 401, "a replay 301 s later must fail: {out}");
    assert!(store.list(&InstanceFilter::default()).await.unwrap().is_empty());
}

#[tokio::test]
async fn kasm_log_shipping_batches_trigger_the_zone() {
    let (ctx, keys, store) = world();
    let out = invoke(&ctx, &keys, "webhook-splunk-hec-session-batch.json").await.unwrap();
    assert_eq!(out["statusCode"], 200, "{out}");
    assert_eq!(out["body"], r#"{"text":"Success","code":0}"#);
    assert_eq!(out["headers"]["content-type"], "application/json", "{out}");
    assert_eq!(out["isBase64Encoded"], false, "{out}");
    assert_eq!(claims_of(&store, "agents").await, 2, "the event's zone is agents'");
    assert_eq!(claims_of(&store, "other").await, 0);
}
