use super::*;
use crate::clock::SystemClock;
use crate::config::{ConfigFile, ConfigSet};
use crate::kasm::memory::MemoryKasm;
use crate::providers::memory::MemoryProvider;
use crate::secrets::StaticSecrets;
use crate::store::{MemoryStore, Store};
use secrecy::SecretString;
use std::collections::HashMap;

fn ctx() -> (Ctx, Arc<MemoryStore>, Arc<MemoryProvider>) {
    let doc = r#"
autoscale_configs:
  - autoscale_config_name: agents
    server_pool_id: pool
    zone_id: zone
    vm_provider_config: prov
    standby_cores: 8
    agent_cores_override: 4
    agent_memory_override_gb: 8
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
"#;
    let f: ConfigFile = serde_yaml_ng::from_str(doc).unwrap();
    let mut set = ConfigSet::default();
    set.merge(f);
    let store = Arc::new(MemoryStore::new());
    let provider = Arc::new(MemoryProvider::new());
    let mut providers: HashMap<String, Arc<dyn crate::ports::VmProvider>> = HashMap::new();
    providers.insert("prov".into(), provider.clone());
    let ctx = Ctx {
        store: store.clone(),
        kasm: Arc::new(MemoryKasm::new()),
        secrets: Arc::new(StaticSecrets::default()),
        clock: Arc::new(SystemClock),
        providers: providers.into(),
        dns: Default::default(),
        configs: Arc::new(set),
        holder: "daemon-test".into(),
        tuning: app::Tuning::default(),
    };
    (ctx, store, provider)
}

struct Running {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(ctx: Ctx, interval: Duration) -> Running {
    let opts = Options {
        interval,
        listen: Some("127.0.0.1:0".parse().unwrap()),
        keys: webhook::Keys {
            hmac_secret: Some(SecretString::from("s3cret".to_string())),
            hec_token: Some(SecretString::from("tok".to_string())),
            max_body_bytes: 0,
        },
        grace: Duration::from_secs(2),
        debounce: Duration::from_millis(50),
    };
    let (stop, rx) = watch::channel(false);
    let (btx, brx) = tokio::sync::oneshot::channel();
    let handle = tokio::spawn(run(ctx, opts, Arc::new(Metrics::default()), rx, Some(btx)));
    let addr = brx.await.expect("listener bound");
    Running { addr, stop, handle }
}

async fn wait_for(mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached in 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_a_signed_webhook_that_triggers_provisioning() {
    let (ctx, store, provider) = ctx();
    // A long interval: only the first tick runs on its own; later work must come from the webhook.
    let d = start(ctx, Duration::from_secs(3600)).await;
    let http = crate::http::build_client(&Default::default()).unwrap();
    let base = format!("http://{}", d.addr);
    let h = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(h.status(), 200);

    // The first tick evaluates: 8 standby cores / 4 per agent = 2 claims, provisioned via the feed.
    wait_for(async || provider.vms().len() == 2).await;

    // Bad signature: 401, nothing happens.
    let r = http.post(&base).body(r#"{"type":"session.created"}"#).send().await.unwrap();
    assert_eq!(r.status(), 401);

    let body = r#"{"type":"session.created","autoscale_config":"agents"}"#;
    let ts = chrono::Utc::now().timestamp();
    let sig = webhook::sign(&SecretString::from("s3cret".to_string()), ts, body.as_bytes());
    let r = http
        .post(&base)
        .header(webhook::TIMESTAMP_HEADER, ts.to_string())
        .header(webhook::SIGNATURE_HEADER, sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_for(async || store.decisions(Some("agents"), 10).await.unwrap().iter().any(|d| d.trigger == "webhook")).await;

    let m = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("kasm_autoscale_evaluations_total{autoscale_config=\"agents\",result=\"ok\"}"), "{m}");
    assert!(m.contains("kasm_autoscale_vms{autoscale_config=\"agents\",state=\"booting\"} 2"), "{m}");
    assert!(m.contains("kasm_autoscale_webhooks_total{status=\"401\"} 1"), "{m}");

    let t = std::time::Instant::now();
    d.stop.send(true).unwrap();
    d.handle.await.unwrap().unwrap();
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_prompt_and_keeps_claims() {
    let (ctx, store, _) = ctx();
    let d = start(ctx, Duration::from_millis(100)).await;
    wait_for(async || !store.list(&InstanceFilter::default()).await.unwrap().is_empty()).await;
    let t = std::time::Instant::now();
    d.stop.send(true).unwrap();
    d.handle.await.unwrap().unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "took {:?}", t.elapsed());
    assert_eq!(store.list(&InstanceFilter::default()).await.unwrap().len(), 2);
}
